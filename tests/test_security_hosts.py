"""DNS rebinding: with auth off, a request is answered only when its Host is this machine (a
loopback name or address, the address it came in on, the bound host) or a name the operator
listed in `server.allowed_hosts`; a web page that rebinds its own name to 127.0.0.1 is
refused before any model is called. And the admin's endpoints stay out of /openapi.json.

The proxy runs on a real socket (uvicorn on 127.0.0.1), so the Host a client sends is the one
the guard reads; the rebinding page is a client sending its own name as the Host."""

from __future__ import annotations

import httpx
import pytest

from router.core.config import ServerSpec
from router.server import create_app
from tests.proxy import Proxy

CHAT = {"model": "large", "messages": [{"role": "user", "content": "spend it"}]}
REBOUND = ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example")


def start(router, tmp_path, **server) -> Proxy:
    spec = ServerSpec(keys_env=None, decision_log=str(tmp_path / "d.db"), **server)
    return Proxy(create_app(router, spec)).start()


@pytest.fixture(scope="module")
def auth_off(router, tmp_path_factory):
    p = start(router, tmp_path_factory.mktemp("hosts"))
    yield p
    p.stop()


def test_a_rebound_host_is_refused_with_auth_off(auth_off, upstream):
    before = len(upstream.requests)
    for host in REBOUND:
        headers = {"host": host}
        r = httpx.post(auth_off.base_url + "/chat/completions", json=CHAT, headers=headers)
        assert r.status_code == 421, (host, r.text)
        err = r.json()["error"]
        assert err["code"] == "host_not_allowed" and "server.allowed_hosts" in err["message"]
        assert "x-request-id" in r.headers
        for path in ("/v1/models", "/metrics", "/ready", "/dashboard", "/admin/stats"):
            assert httpx.get(auth_off.url + path, headers=headers).status_code == 421, path
    # Anthropic's API answers in its own shape.
    r = httpx.post(auth_off.base_url + "/messages", json={}, headers={"host": "evil.example"})
    assert r.status_code == 421 and r.json()["type"] == "error"
    assert len(upstream.requests) == before  # no model was called for a rebound page


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "LOCALHOST.", "[::1]", "127.0.0.2", "app.localhost"]
)
def test_loopback_hosts_are_answered(auth_off, host):
    port = auth_off.port
    for value in (host, f"{host}:{port}"):
        r = httpx.get(auth_off.base_url + "/models", headers={"host": value})
        assert r.status_code == 200, (value, r.text)
    # The Host httpx sends on its own (127.0.0.1:<port>), as every local client does.
    assert httpx.get(auth_off.base_url + "/models").status_code == 200


def test_the_hosts_the_operator_lists_are_answered(router, tmp_path):
    p = start(router, tmp_path, allowed_hosts=["router.internal", "*.corp.example"])
    try:
        for host in ("router.internal", "router.internal:8000", "a.corp.example", "127.0.0.1"):
            r = httpx.get(p.base_url + "/models", headers={"host": host})
            assert r.status_code == 200, host
        for host in ("corp.example", "evil.example", "router.internal.evil.example"):
            r = httpx.get(p.base_url + "/models", headers={"host": host})
            assert r.status_code == 421, host
    finally:
        p.stop()
    p = start(router, tmp_path, allowed_hosts=["*"])  # the operator's choice: any host
    try:
        assert httpx.get(p.base_url + "/models", headers={"host": "x.example"}).status_code == 200
    finally:
        p.stop()


def test_with_auth_on_any_host_is_answered_with_a_key(router, tmp_path):
    """A rebound page has no key: with auth on, the key is the check, whatever the Host."""
    key = "sk-host-test-key-0123456789"
    p = start(router, tmp_path, keys=[{"name": "k", "key": key}])
    try:
        host = {"host": "proxy.example"}
        assert httpx.get(p.base_url + "/models", headers=host).status_code == 401
        auth = {**host, "authorization": f"Bearer {key}"}
        assert httpx.get(p.base_url + "/models", headers=auth).status_code == 200
    finally:
        p.stop()


def test_allowed_hosts_are_checked_with_the_config():
    spec = ServerSpec(allowed_hosts=["Router.Internal.", "[::1]", "*.Corp.Example"])
    assert spec.allowed_hosts == ("router.internal", "::1", "*.corp.example")
    for bad in ("http://router.internal", "router.internal:8000", "a/b", "", "*corp.example"):
        with pytest.raises(ValueError, match="allowed_hosts"):
            ServerSpec(allowed_hosts=[bad])


def test_the_admin_endpoints_are_not_in_the_openapi_schema(auth_off):
    paths = httpx.get(auth_off.url + "/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/admin", "/dashboard"))], sorted(paths)
    assert "/v1/chat/completions" in paths  # the public API is still documented
    # Hidden, not gone: still there, still behind the admin key.
    assert httpx.post(auth_off.url + "/admin/reload").status_code == 401
    assert httpx.get(auth_off.url + "/admin/stats").status_code == 401
