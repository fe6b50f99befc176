"""API keys: Bearer auth in constant time, per-key policy and allowed models, no key leaks."""

from __future__ import annotations

import httpx
import openai
import pytest

from router.core.config import APIKeySpec, ServerSpec
from router.server import create_app
from router.server.auth import KeyRing
from tests.proxy import Proxy, shared_server_router

ALICE = "sk-alice-0123456789"
BOB = "sk-bob-9876543210"
CAROL = "sk-carol-from-env-list"


@pytest.fixture(scope="module")
def server_router(test_config, tmp_path_factory, upstream):
    return shared_server_router(test_config, tmp_path_factory, upstream)


@pytest.fixture(scope="module")
def proxy(server_router, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("ROUTER_TEST_BOB_KEY", BOB)
    mp.setenv("ROUTER_TEST_KEYS", f" {CAROL} ,")
    spec = ServerSpec(
        keys=(
            APIKeySpec(name="alice", key=ALICE, policy="flaky", models=("router", "large")),
            APIKeySpec(name="bob", key_env="ROUTER_TEST_BOB_KEY"),
        ),
        keys_env="ROUTER_TEST_KEYS",
        decision_log=str(tmp_path_factory.mktemp("authlog") / "d.db"),
    )
    p = Proxy(create_app(server_router, spec)).start()
    yield p
    p.stop()
    mp.undo()


def client(proxy, key):
    return openai.OpenAI(base_url=proxy.base_url, api_key=key, max_retries=0)


MSG = [{"role": "user", "content": "hello there"}]


def test_401_without_or_with_a_wrong_key(proxy):
    r = httpx.post(proxy.base_url + "/chat/completions", json={"model": "router", "messages": MSG})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert r.headers["www-authenticate"] == "Bearer"
    with pytest.raises(openai.AuthenticationError):
        client(proxy, "sk-wrong").chat.completions.create(model="router", messages=MSG)
    with pytest.raises(openai.AuthenticationError):
        client(proxy, ALICE + "x").models.list()
    # Basic auth with the right secret is not Bearer.
    r = httpx.get(proxy.base_url + "/models", headers={"authorization": f"Basic {ALICE}"})
    assert r.status_code == 401


def test_keys_from_config_env_and_env_list(proxy):
    for key in (ALICE, BOB, CAROL):
        assert client(proxy, key).models.list().data


def test_key_policy_and_allowed_models(proxy):
    raw = client(proxy, ALICE).chat.completions.with_raw_response.create(
        model="router", messages=MSG
    )
    assert raw.headers["x-router-policy"] == "flaky"  # alice's own policy
    assert raw.parse().model == "large"
    with pytest.raises(openai.PermissionDeniedError) as e:
        client(proxy, ALICE).chat.completions.create(model="small-general", messages=MSG)
    assert e.value.body["param"] == "model"
    assert {m.id for m in client(proxy, ALICE).models.list()} == {"router", "large"}
    # bob has no restrictions and the default policy
    raw = client(proxy, BOB).chat.completions.with_raw_response.create(model="router", messages=MSG)
    assert raw.headers["x-router-policy"] == "balanced"
    assert client(proxy, BOB).chat.completions.create(model="small-general", messages=MSG)


def test_open_endpoints_and_no_key_in_responses_or_log(proxy):
    import sqlite3

    assert httpx.get(proxy.url + "/health").status_code == 200
    assert httpx.get(proxy.url + "/metrics").status_code == 200
    raw = client(proxy, ALICE).chat.completions.with_raw_response.create(
        model="router", messages=MSG
    )
    text = raw.http_response.text + str(dict(raw.headers))
    r = httpx.get(proxy.url + "/metrics")
    proxy.decision_log.flush()
    con = sqlite3.connect(proxy.decision_log.path)
    dump = "\n".join(con.iterdump())
    con.close()
    assert "alice" in dump  # keys are known by name
    for secret in (ALICE, BOB, CAROL):
        assert secret not in text and secret not in r.text and secret not in dump


def test_key_env_unset_fails_at_start(monkeypatch):
    monkeypatch.delenv("ROUTER_TEST_UNSET_KEY", raising=False)
    spec = ServerSpec(keys=(APIKeySpec(name="x", key_env="ROUTER_TEST_UNSET_KEY"),), keys_env=None)
    with pytest.raises(ValueError, match="ROUTER_TEST_UNSET_KEY"):
        KeyRing(spec)


def test_no_keys_means_auth_off(monkeypatch):
    monkeypatch.delenv("ROUTER_API_KEYS", raising=False)
    assert not KeyRing(ServerSpec()).enabled
