"""The admin key against guessing: wrong keys are throttled per client address (on `/admin/*`,
the dashboard's login form and the endpoints where the admin key reads every key's data), in
Redis when the proxy shares state; a right key is never counted; and a key too short to resist
guessing is refused at start-up, naming its variable."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from typer.testing import CliRunner

from router.core.config import ConfigError, ServerSpec
from router.server import create_app
from router.server.auth import KeyRing
from tests.learning import ADMIN_KEY, USER_KEY, router_for, serve, write_config

SERVER = {"keys": [{"name": "user", "key": USER_KEY}], "keys_env": None, "admin_key": ADMIN_KEY}
ALLOWED = 5  # wrong keys an address may send a minute (admin.ADMIN_FAILURES)
WRONG = {"authorization": "Bearer not-the-admin-key-0000000"}
RIGHT = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory, upstream, router):
    cfg = write_config(tmp_path_factory.mktemp("admin"), upstream.base_url, server=SERVER)
    proxy = serve(router_for(cfg, like=router))
    yield proxy
    proxy.stop()


@contextmanager
def client_from(address: str, url: str) -> Iterator[httpx.Client]:
    """A client whose connections come from `address` (any 127.x.y.z reaches a proxy on
    127.0.0.1): each test is an address of its own, with failures of its own."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=url, transport=transport, timeout=60) as c:
        yield c


def assert_throttled(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["retry-after"]) <= 60
    if r.headers["content-type"].startswith("application/json"):
        assert r.json()["error"]["code"] == "too_many_attempts"


def test_wrong_admin_keys_are_throttled_per_address(served):
    with client_from("127.0.0.2", served.url) as guesser:
        for _ in range(ALLOWED - 1):
            assert guesser.get("/admin/stats", headers=WRONG).status_code == 401
        # A valid API key that is not the admin key is a wrong admin key too.
        user = {"authorization": f"Bearer {USER_KEY}"}
        assert guesser.post("/admin/reload", headers=user).status_code == 403
        for path in ("/admin/stats", "/dashboard", "/dashboard/panel"):
            assert_throttled(guesser.get(path, headers=WRONG))
        assert_throttled(guesser.post("/admin/reload", headers=WRONG))
        # Now the right key is refused the same way: a refusal tells no key from another.
        assert_throttled(guesser.get("/admin/stats", headers=RIGHT))
        # No key at all is no guess: still the 401 that says what is missing.
        assert guesser.get("/admin/stats").status_code == 401
    # Another address is not held back by this one's failures.
    with client_from("127.0.0.3", served.url) as admin:
        assert admin.get("/admin/stats", headers=RIGHT).status_code == 200


def test_a_right_key_is_never_counted(served):
    with client_from("127.0.0.4", served.url) as admin:
        for _ in range(3 * ALLOWED):
            assert admin.get("/admin/stats", headers=RIGHT).status_code == 200
        for _ in range(ALLOWED):
            assert admin.get("/admin/stats", headers=WRONG).status_code == 401
        assert_throttled(admin.get("/admin/stats", headers=WRONG))


def test_the_login_form_is_throttled(served):
    with client_from("127.0.0.5", served.url) as guesser:
        for i in range(ALLOWED):
            r = guesser.post("/dashboard/login", data={"key": f"guess-number-{i:04d}-abcdef"})
            assert r.status_code == 401 and "not the admin key" in r.text
        r = guesser.post("/dashboard/login", data={"key": ADMIN_KEY})
        assert_throttled(r)
        assert "Too many wrong keys" in r.text and "set-cookie" not in r.headers
        # ... and the Bearer way from the same address is closed as well.
        assert_throttled(guesser.get("/admin/stats", headers=WRONG))


def test_the_admin_key_on_a_keys_data_is_throttled_too(served):
    """Where the admin key reads any key's data (stored responses, feedback), a key that is
    neither an API key nor the admin key counts as a guess at the admin key."""
    with client_from("127.0.0.6", served.url) as guesser:
        for _ in range(ALLOWED):
            r = guesser.get("/v1/responses/resp_0123", headers=WRONG)
            assert r.status_code == 401, r.text
        assert_throttled(guesser.get("/v1/responses/resp_0123", headers=WRONG))
        assert_throttled(guesser.get("/admin/stats", headers=RIGHT))
    with client_from("127.0.0.7", served.url) as admin:
        r = admin.get("/v1/responses/resp_0123", headers=RIGHT)
        assert r.status_code == 404  # the admin may look: there is no such response
        user = {"authorization": f"Bearer {USER_KEY}"}
        for _ in range(ALLOWED + 1):  # an API key is no guess at the admin key
            assert admin.get("/v1/responses/resp_0123", headers=user).status_code == 404


def test_failures_are_counted_across_replicas_sharing_redis(tmp_path, upstream, router, redis_url):
    cfg = write_config(tmp_path, upstream.base_url, server=SERVER, state=redis_url)
    first, second = serve(router_for(cfg, like=router)), serve(router_for(cfg, like=router))
    try:
        with (
            client_from("127.0.0.8", first.url) as a,
            client_from("127.0.0.8", second.url) as b,
        ):
            for i in range(ALLOWED):
                c = a if i % 2 else b
                assert c.get("/admin/stats", headers=WRONG).status_code == 401
            assert_throttled(a.get("/admin/stats", headers=WRONG))
            assert_throttled(b.get("/admin/stats", headers=WRONG))
    finally:
        first.stop()
        second.stop()


def test_ipv6_clients_are_counted_by_their_64():
    from router.server.admin import ADMIN_FAILURES
    from router.server.ratelimit import client_address

    assert ADMIN_FAILURES == f"{ALLOWED}/minute"
    assert client_address("2001:db8:1:2:aaaa::1") == client_address("2001:db8:1:2:bbbb::9")
    assert client_address("2001:db8:1:2::1") != client_address("2001:db8:1:3::1")
    assert client_address("::ffff:10.0.0.1") == "10.0.0.1"
    assert client_address("10.0.0.1") != client_address("10.0.0.2")
    assert client_address(None) == "unknown"


SHORT = "only-12-char"


def test_a_short_admin_key_from_the_environment_is_refused_at_start_up(
    monkeypatch, router, tmp_path
):
    monkeypatch.setenv("ROUTER_ADMIN_KEY", SHORT)
    with pytest.raises(ConfigError, match=r"\$ROUTER_ADMIN_KEY.*at least 16") as e:
        KeyRing(ServerSpec(keys_env=None))
    assert SHORT not in str(e.value)  # named, never shown
    with pytest.raises(ConfigError, match="ROUTER_ADMIN_KEY"):
        create_app(router, ServerSpec(keys_env=None, decision_log=None))
    # Another variable named by server.admin_key_env is named in its turn.
    monkeypatch.setenv("OPS_ADMIN", "x" * 15)
    with pytest.raises(ConfigError, match=r"\$OPS_ADMIN"):
        KeyRing(ServerSpec(keys_env=None, admin_key_env="OPS_ADMIN"))
    monkeypatch.setenv("OPS_ADMIN", "x" * 16)
    KeyRing(ServerSpec(keys_env=None, admin_key_env="OPS_ADMIN"))  # long enough
    # An inline key is checked with the config, as before.
    with pytest.raises(ValueError, match="admin_key"):
        ServerSpec(admin_key="short")


def test_router_serve_says_which_variable_holds_a_short_admin_key(monkeypatch, tmp_path, upstream):
    """Before any worker starts, and before a single process loads its router."""
    from router.cli import app as cli
    from router.server import run

    def started(*_a, **_k):
        raise AssertionError("the workers started with a 12-character admin key")

    monkeypatch.setattr(run, "_serve_workers", started)
    monkeypatch.setenv("ROUTER_ADMIN_KEY", SHORT)
    cfg = write_config(tmp_path, upstream.base_url)
    with socket.socket() as s:  # a free port: the command claims it before the keys are read
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    monkeypatch.setattr(run, "_serve_one", started)  # one worker: before its router loads
    for workers in ("2", "1"):
        args = ["serve", "--config", str(cfg), "--port", port, "--workers", workers]
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 2, res.output
        assert "ROUTER_ADMIN_KEY" in res.output and "at least 16" in res.output
        assert SHORT not in res.output
