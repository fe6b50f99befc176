"""API keys against guessing: with auth on, wrong keys on the model endpoints are throttled per
client address as wrong admin keys are (one implementation: ratelimit.FailedKeys), counted
together by replicas sharing Redis; a right key is never counted, a missing key is no guess,
and with auth off nothing is counted."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from router.server.auth import API_KEY_FAILURES
from router.server.errors import APIError
from router.server.ratelimit import FailedKeys
from router.serving.state import MemoryStore, RedisStore
from tests.learning import ADMIN_KEY, USER_KEY, router_for, serve, write_config
from tests.test_auth_admin import client_from

ALLOWED = 20  # wrong API keys an address may send a minute (auth.API_KEY_FAILURES)
SERVER = {"keys": [{"name": "user", "key": USER_KEY}], "keys_env": None, "admin_key": ADMIN_KEY}
RIGHT = {"authorization": f"Bearer {USER_KEY}"}
CHAT = {"model": "router", "messages": [{"role": "user", "content": "hi"}]}


def assert_throttled(r: httpx.Response) -> None:
    """A 429 with Retry-After, in OpenAI's error shape or (on /v1/messages) Anthropic's."""
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert "too many wrong keys from this address" in r.json()["error"]["message"]
    if "code" in r.json()["error"]:
        assert r.json()["error"]["code"] == "too_many_attempts"


def wrong(i: int) -> dict[str, str]:
    return {"authorization": f"Bearer sk-guess-{i:06d}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory, upstream, router):
    cfg = write_config(tmp_path_factory.mktemp("keys"), upstream.base_url, server=SERVER)
    proxy = serve(router_for(cfg, like=router))
    yield proxy
    proxy.stop()


def guess(c: httpx.Client, i: int) -> httpx.Response:
    """One wrong key, on one of the model endpoints in turn (each sends its key its own way)."""
    match i % 7:
        case 0:
            return c.post("/v1/chat/completions", json=CHAT, headers=wrong(i))
        case 1:
            return c.get("/v1/models", headers=wrong(i))
        case 2:
            return c.post("/v1/route", json=CHAT, headers=wrong(i))
        case 3:  # Anthropic's clients send `x-api-key`
            return c.post("/v1/messages", json=CHAT, headers={"x-api-key": f"sk-guess-{i:06d}"})
        case 4:
            return c.post("/v1/embeddings", json={"model": "cheap", "input": "x"}, headers=wrong(i))
        case 5:
            return c.post("/v1/responses", json={"model": "router", "input": "x"}, headers=wrong(i))
        case _:
            return c.post("/v1/feedback", json={"request_id": "r", "score": 1}, headers=wrong(i))


def test_the_limit_is_twenty_wrong_keys_a_minute():
    assert API_KEY_FAILURES == f"{ALLOWED}/minute"


def test_wrong_api_keys_are_throttled_per_address(served):
    with client_from("127.0.1.2", served.url) as guesser:
        for i in range(ALLOWED):
            r = guess(guesser, i)
            assert r.status_code == 401, (i, r.text)
        for i in range(ALLOWED, ALLOWED + 7):  # every endpoint, every way of sending a key
            assert_throttled(guess(guesser, i))
        # The right key is refused the same way: a refusal tells no key from another.
        assert_throttled(guesser.get("/v1/models", headers=RIGHT))
        assert_throttled(guesser.post("/v1/chat/completions", json=CHAT, headers=RIGHT))
        # No key at all is no guess: still the 401 that says what is missing.
        r = guesser.get("/v1/models")
        assert r.status_code == 401 and "missing API key" in r.text
    # Another address is not held back by this one's failures.
    with client_from("127.0.1.3", served.url) as client:
        assert client.get("/v1/models", headers=RIGHT).status_code == 200
        assert client.post("/v1/chat/completions", json=CHAT, headers=RIGHT).status_code == 200


def test_a_right_api_key_is_never_counted(served):
    with client_from("127.0.1.4", served.url) as client:
        for _ in range(3 * ALLOWED):
            assert client.get("/v1/models", headers=RIGHT).status_code == 200
        for i in range(ALLOWED):
            assert client.get("/v1/models", headers=wrong(i)).status_code == 401
        assert_throttled(client.get("/v1/models", headers=wrong(ALLOWED)))


def test_missing_keys_are_not_counted(served):
    with client_from("127.0.1.5", served.url) as client:
        for _ in range(2 * ALLOWED):
            assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/models", headers=RIGHT).status_code == 200


def test_the_admin_endpoints_are_no_way_around_it(tmp_path, upstream, router):
    """/admin/* tells a valid API key (403) from a wrong one (401): without an admin key no
    admin failure is counted there, so its wrong API keys count as on the model endpoints."""
    server = {**SERVER, "admin_key": None, "admin_key_env": None}
    cfg = write_config(tmp_path, upstream.base_url, server=server)
    proxy = serve(router_for(cfg, like=router))
    try:
        with client_from("127.0.1.6", proxy.url) as guesser:
            assert guesser.post("/admin/reload", headers=RIGHT).status_code == 403
            for i in range(ALLOWED):
                assert guesser.post("/admin/reload", headers=wrong(i)).status_code == 401
            assert_throttled(guesser.post("/admin/reload", headers=RIGHT))
            assert_throttled(guesser.get("/v1/models", headers=RIGHT))
    finally:
        proxy.stop()


def test_with_auth_off_no_key_is_counted(tmp_path, upstream, router):
    cfg = write_config(tmp_path, upstream.base_url)  # no keys: auth off, any key is let in
    proxy = serve(router_for(cfg, like=router))
    try:
        with client_from("127.0.1.7", proxy.url) as client:
            for i in range(ALLOWED + 5):
                assert client.get("/v1/models", headers=wrong(i)).status_code == 200
            assert (
                client.post("/v1/chat/completions", json=CHAT, headers=wrong(0)).status_code == 200
            )
        assert proxy.app.state.live.key_failures.limit is None  # never even built
    finally:
        proxy.stop()


def test_wrong_api_keys_are_counted_across_replicas_sharing_redis(
    tmp_path, upstream, router, redis_url, redis_server
):
    cfg = write_config(tmp_path, upstream.base_url, server=SERVER, state=redis_url)
    first, second = serve(router_for(cfg, like=router)), serve(router_for(cfg, like=router))
    try:
        with (
            client_from("127.0.1.8", first.url) as a,
            client_from("127.0.1.8", second.url) as b,
        ):
            for i in range(ALLOWED):
                c = a if i % 2 else b
                assert c.get("/v1/models", headers=wrong(i)).status_code == 401
            for c in (a, b):
                assert_throttled(c.get("/v1/models", headers=wrong(ALLOWED)))
                assert_throttled(c.post("/v1/chat/completions", json=CHAT, headers=RIGHT))
        with client_from("127.0.1.9", second.url) as other:
            assert other.get("/v1/models", headers=RIGHT).status_code == 200
        # The counts live in Redis, under the router's prefix, apart from the admin key's.
        assert b"router:key-failures" in redis_server.command("KEYS", "router:key-failures*")
    finally:
        first.stop()
        second.stop()


# ---- FailedKeys itself ----------------------------------------------------------------------


async def attempts(failures: FailedKeys, results: list[object]) -> list[object]:
    """One attempt per result (what the key comparison finds), all at once."""

    async def one(found: object) -> object:
        try:
            return await failures.attempt("10.0.0.1", lambda: found)
        except APIError as e:
            assert e.status == 429 and e.code == "too_many_attempts"
            return "429"

    return await asyncio.gather(*(one(r) for r in results))


@pytest.mark.parametrize("shared", [False, True], ids=["in process", "in redis"])
async def test_concurrent_guesses_cannot_pass_before_they_are_counted(shared, request):
    store = RedisStore(request.getfixturevalue("redis_url")) if shared else MemoryStore()
    failures = FailedKeys(store, "5/minute", f"test-concurrent-{shared}")
    try:
        out = await attempts(failures, [None] * 40)
        assert out.count(None) == 5 and out.count("429") == 35
        assert await attempts(failures, ["the right key"]) == ["429"]
        assert await attempts(failures, [None]) == ["429"]
    finally:
        await store.close()


async def test_failures_age_out_of_the_window():
    failures = FailedKeys(MemoryStore(), "3/second", "test-window")
    assert await attempts(failures, ["right"] * 10) == ["right"] * 10  # never counted
    assert await attempts(failures, [None, None, None]) == [None] * 3
    assert await attempts(failures, ["right", None]) == ["429", "429"]
    await asyncio.sleep(1.1)
    assert await attempts(failures, ["right", None]) == ["right", None]
