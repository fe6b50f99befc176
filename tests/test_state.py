"""Shared state: the in-process store and the Redis store (a real, throwaway redis-server),
the same behaviour from both, and a Redis outage that degrades to per-process state."""

from __future__ import annotations

import asyncio
import logging

import pytest

from router.core.config import ConfigError, load_config
from router.serving.state import MemoryStore, RedisStore, StateCollector, open_state


@pytest.fixture(params=["memory", "redis"])
async def store(request):
    if request.param == "memory":
        s = MemoryStore()
    else:
        s = RedisStore(request.getfixturevalue("redis_url"))
    yield s
    await s.close()


async def test_get_set_delete_roundtrip_json(store):
    assert await store.get("absent") is None
    value = {"model": "small", "turns": [1, 2.5], "ok": True, "none": None}
    await store.set("session:a", value)
    assert await store.get("session:a") == value
    await store.set("session:a", "replaced")
    assert await store.get("session:a") == "replaced"
    await store.delete("session:a")
    assert await store.get("session:a") is None
    await store.delete("session:a")  # absent: nothing happens


async def test_incr_adds_and_sets_expiry_only_on_create(store):
    assert await store.incr("budget:x") == 1.0
    assert await store.incr("budget:x", 2.5) == 3.5
    assert float(await store.get("budget:x")) == 3.5
    assert await store.incr("budget:w", 0.25, ttl_s=0.3) == 0.25
    assert await store.incr("budget:w", 0.25, ttl_s=30) == 0.5  # keeps the first expiry
    await asyncio.sleep(0.6)
    assert await store.get("budget:w") is None
    assert await store.incr("budget:w", 1, ttl_s=30) == 1.0  # a new window


async def test_ttl_expires(store):
    await store.set("k", 1, ttl_s=0.2)
    await store.set("forever", 2)
    assert await store.get("k") == 1
    await asyncio.sleep(0.5)
    assert await store.get("k") is None
    assert await store.get("forever") == 2


async def test_two_redis_stores_share_state_and_keys_are_prefixed(redis_url, redis_server):
    a, b = RedisStore(redis_url), RedisStore(redis_url)
    await a.set("session:s", {"model": "m"})
    assert await b.get("session:s") == {"model": "m"}
    await a.incr("n", 1)
    assert await b.incr("n", 1) == 2.0
    assert redis_server.command("EXISTS", "router:session:s") == b":1\r\n"
    assert not a.degraded and not b.degraded
    await a.close()
    await b.close()


async def test_outage_degrades_to_memory_warns_once_and_recovers(redis_server, redis_url, caplog):
    # A database of its own, so this store's warnings are told apart from those of any other
    # store of the session still talking to the same server (each names host:port/db).
    url = redis_url.rsplit("/", 1)[0] + "/7"
    store = RedisStore(url, retry_s=0.2)
    await store.set("shared", "from redis")
    metrics = {m.name: m.samples[0].value for m in StateCollector(store).collect()}
    assert metrics["router_state_degraded"] == 0

    redis_server.kill()
    with caplog.at_level(logging.WARNING, logger="router.serving.state"):
        # Every call still answers, from this process's memory.
        await store.set("during", {"x": 1})
        assert await store.get("during") == {"x": 1}
        assert await store.incr("count", 2) == 2.0
        assert await store.get("shared") is None  # Redis's data is out of reach
        await asyncio.sleep(0.3)  # past retry_s: Redis is tried (and fails) again
        assert await store.incr("count", 1) == 3.0
        assert store.degraded
        metrics = {m.name: m.samples[0].value for m in StateCollector(store).collect()}
        assert metrics["router_state_degraded"] == 1
        assert metrics["router_state_fallbacks"] >= 5
        assert metrics["router_state_outages"] == 1
    where = url.split("://", 1)[1]
    outage_warnings = [
        r for r in caplog.records if "not answering" in r.getMessage() and where in r.getMessage()
    ]
    assert len(outage_warnings) == 1  # once per outage, not once per call

    redis_server.start()  # back, empty (nothing persisted)
    await asyncio.sleep(0.3)
    with caplog.at_level(logging.WARNING, logger="router.serving.state"):
        await store.set("after", "in redis")
    assert not store.degraded
    assert any("answers again" in r.getMessage() for r in caplog.records)
    other = RedisStore(url)
    assert await other.get("after") == "in redis"  # really in Redis again
    assert await store.ping()
    await other.close()
    await store.close()


async def test_an_unreachable_redis_never_raises(free_port_url):
    store = RedisStore(free_port_url)
    await store.set("k", 1)
    assert await store.get("k") == 1
    assert store.degraded and not await store.ping()
    await store.close()


@pytest.fixture
def free_port_url():
    from tests.servers import free_port

    return f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there


def test_open_state():
    assert isinstance(open_state(None), MemoryStore)
    assert isinstance(open_state("redis://127.0.0.1:6379/0"), RedisStore)
    assert isinstance(open_state("rediss://example.invalid:6380/1"), RedisStore)
    with pytest.raises(ValueError, match="redis://"):
        open_state("memcached://x")


def test_a_state_url_redis_cannot_use_is_a_config_error_naming_the_field():
    # Accepted before, then every Redis call failed with a traceback (or the start-up did).
    bad = {
        "redis://cache:63a9/0": "Port",
        "redis://:secret@cache:6379/0?timeout=5": "not a Redis connection option",
        "redis://cache:6379/main": "database",
        "rediss://cache:6380/0?ssl_cert_reqs=sometimes": "ssl",
    }
    for url, why in bad.items():
        with pytest.raises(ConfigError, match=r"^c\.yaml: state: '.*': ") as e:
            open_state(url, "c.yaml")
        assert why.lower() in str(e.value).lower(), str(e.value)
        assert "secret" not in str(e.value)
    assert isinstance(open_state("redis://cache/0?socket_timeout=1"), RedisStore)


async def test_shared_only_raises_instead_of_serving_in_process(free_port_url):
    from router.serving.state import StateUnavailable

    store = RedisStore(free_port_url)
    shared = store.shared_only()
    with pytest.raises(StateUnavailable):
        await shared.incr("n", 2.0)
    with pytest.raises(StateUnavailable):  # during the outage, without asking Redis
        await shared.get("n")
    assert store.degraded and store.fallbacks == 0
    assert await store.get("n") is None  # nothing was kept in process
    await store.close()


def test_password_is_not_logged():
    assert "secret" not in RedisStore("redis://:secret@127.0.0.1:1/0")._where


def test_config_state_is_validated(tmp_path, test_config):
    import yaml

    cfg = yaml.safe_load(test_config.read_text())
    for good in (None, "redis://127.0.0.1:6379/0", "rediss://user:pw@cache:6380/2"):
        cfg["state"] = good
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(cfg))
        assert load_config(path).state == good
    cfg["state"] = "http://127.0.0.1:6379"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"c\.yaml: line \d+: state: .*redis://"):
        load_config(path)


def test_router_holds_the_configured_store(router):
    assert isinstance(router.state, MemoryStore)  # the test config sets no `state:`


def test_one_store_serves_several_event_loops(redis_url):
    import threading

    store = RedisStore(redis_url)
    background = asyncio.new_event_loop()
    thread = threading.Thread(target=background.run_forever, daemon=True)
    thread.start()
    try:
        for i in range(3):  # interleaved: each loop keeps its own client
            asyncio.run(store.set("k", i))
            got = asyncio.run_coroutine_threadsafe(store.get("k"), background).result(30)
            assert got == i
        assert not store.degraded and store.fallbacks == 0
        asyncio.run_coroutine_threadsafe(store.close(), background).result(30)
    finally:
        background.call_soon_threadsafe(background.stop)
        thread.join(30)


async def test_a_slow_answer_is_served_in_process_without_an_outage(redis_server, redis_url):
    # CLIENT PAUSE: Redis holds every command for a while, as a stalled server would.
    store = RedisStore(redis_url, timeout_s=0.2, degrade_after_s=0.5, retry_s=0.0)
    await store.set("k", "in redis")
    assert redis_server.command("CLIENT", "PAUSE", "6000") == b"+OK\r\n"
    try:
        assert await store.get("k") is None  # timed out: answered from this process
        assert not store.degraded and store.fallbacks == 1
        # Concurrent calls time out together: still no outage (a busy loop looks the same).
        assert await asyncio.gather(*(store.get("k") for _ in range(5))) == [None] * 5
        # Time-outs that go on past degrade_after_s: an outage.
        for _ in range(20):
            if store.degraded:
                break
            assert await store.get("k") is None
        assert store.degraded and store.outages == 1
    finally:
        # Waits until the pause is over (a paused Redis holds this command too).
        redis_server.command("CLIENT", "UNPAUSE", timeout=30)
    assert await store.get("k") == "in redis"
    assert not store.degraded
    await store.close()
