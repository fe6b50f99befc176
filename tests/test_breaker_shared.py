"""Circuit breakers shared between workers and replicas: `BreakerSync` over a shared store.

First on fake clocks with one in-process store standing for Redis, then two proxies sharing a
real, throwaway redis-server: a breaker one opens is seen (and honoured) by the other, a
session started on one sticks on the other, and a Redis outage leaves both answering.
"""

from __future__ import annotations

import shutil
import time

import httpx
import pytest
import yaml

from router.server.app import create_app
from router.serving.breaker import CLOSED, HALF_OPEN, OPEN, Breakers, BreakerSync
from router.serving.state import MemoryStore, RedisStore
from tests.proxy import Proxy, router_from


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def replica(store, wall: Clock, name: str, cooldown_s: float = 30):
    # Monotonic clocks differ between processes; only the wall clock is shared.
    mono = Clock(5000.0 if name == "a" else 123.0)
    b = Breakers(failures=2, cooldown_s=cooldown_s, clock=mono, wall=wall)
    return b, mono, BreakerSync(b, store, ["m", "n"], replica=name)


def state(b: Breakers, model: str) -> str:
    return b.snapshot().get(model, {"state": CLOSED})["state"]


async def test_an_open_is_seen_elsewhere_for_the_rest_of_its_cooldown():
    store, wall = MemoryStore(), Clock(1_000_000.0)
    a, mono_a, sync_a = replica(store, wall, "a")
    b, mono_b, sync_b = replica(store, wall, "b")
    a.failure("m")
    a.failure("m")
    assert state(a, "m") == OPEN and b.allow("m")  # nothing shared before a sync round
    await sync_a.sync_once()
    wall.t += 10
    mono_a.t += 10
    mono_b.t += 10
    await sync_b.sync_once()
    assert state(b, "m") == OPEN and not b.allow("m")
    assert b.retry_after("m") == pytest.approx(20)  # the same moment as at a, not a new 30 s
    assert state(b, "n") == CLOSED and b.allow("n")
    assert b.snapshot()["m"]["trips"] == 0  # trips count this process's own opens
    wall.t += 20
    mono_b.t += 20
    assert state(b, "m") == HALF_OPEN and b.allow("m")


async def test_a_successful_trial_elsewhere_closes_it_here():
    store, wall = MemoryStore(), Clock(1_000_000.0)
    a, mono_a, sync_a = replica(store, wall, "a")
    b, mono_b, sync_b = replica(store, wall, "b")
    for _ in range(2):
        a.failure("m")
    await sync_a.sync_once()
    await sync_b.sync_once()
    assert state(b, "m") == OPEN
    wall.t += 30
    mono_a.t += 30
    mono_b.t += 30
    assert a.allow("m")  # a's trial
    a.success("m")
    await sync_a.sync_once()
    await sync_b.sync_once()
    assert state(b, "m") == CLOSED and b.allow("m")


async def test_a_newer_local_open_is_not_closed_by_an_older_close():
    store, wall = MemoryStore(), Clock(1_000_000.0)
    a, _, sync_a = replica(store, wall, "a")
    b, _, sync_b = replica(store, wall, "b")
    for _ in range(2):
        a.failure("m")
    a.success("m")  # closed at t0 ...
    await sync_a.sync_once()
    wall.t += 1
    for _ in range(2):
        b.failure("m")  # ... b opened after it
    await sync_b.sync_once()  # b publishes its open, then reads its own record back
    assert state(b, "m") == OPEN
    await sync_a.sync_once()
    assert state(a, "m") == OPEN  # a adopts b's newer open


async def test_sync_rounds_survive_a_store_error():
    class Broken(MemoryStore):
        async def get(self, key):
            raise ConnectionError("down")

    b = Breakers(failures=1)
    sync = BreakerSync(b, Broken(), ["m"], interval_s=0.01)
    task = sync.start()
    b.failure("m")
    import asyncio

    await asyncio.sleep(0.1)
    assert not task.done()  # a failed round does not end the loop
    await sync.stop()
    assert b.listener is None


async def test_two_breakers_share_through_real_redis(redis_url):
    wall = Clock(time.time())
    stores = [RedisStore(redis_url), RedisStore(redis_url)]
    a, _, sync_a = replica(stores[0], wall, "a")
    b, _, sync_b = replica(stores[1], wall, "b")
    for _ in range(2):
        a.failure("n")
    await sync_a.sync_once()
    await sync_b.sync_once()
    assert state(b, "n") == OPEN and not b.allow("n")
    assert not stores[0].degraded and not stores[1].degraded
    for s in stores:
        await s.close()


# ---- two proxies (replicas) sharing a real Redis ----------------------------------------------


@pytest.fixture
def shared_config(test_config, tmp_path, redis_url):
    dest = tmp_path / "cfg"
    shutil.copytree(test_config.parent, dest)
    path = dest / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["state"] = redis_url
    cfg["breaker"] = {"failures": 2, "cooldown_s": 300}
    cfg["server"] = {"decision_log": None}
    path.write_text(yaml.safe_dump(cfg))
    (dest / "policies" / "onlybroken.yaml").write_text("default: [broken]\nlarge: [broken]\n")
    return path


@pytest.fixture
def replicas(shared_config, router):
    proxies = []
    for _ in range(2):
        r = router_from(shared_config, router)  # same encoder and scorer: quick to build
        spec = r.config.server.model_copy(update={"keys_env": None, "decision_log": None})
        proxies.append(Proxy(create_app(r, spec)).start())
    yield proxies
    for p in proxies:
        p.stop()


def chat(proxy: Proxy, policy: str) -> httpx.Response:
    body = {"model": f"router/{policy}", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(proxy.base_url + "/chat/completions", json=body, timeout=60)


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def circuits(proxy: Proxy) -> dict:
    return httpx.get(proxy.url + "/ready", timeout=30).json()["circuits"]


def test_a_breaker_opened_by_one_replica_is_seen_and_honoured_by_the_other(replicas, upstream):
    one, two = replicas
    assert httpx.get(two.url + "/ready", timeout=30).json()["state"] == "redis"
    for _ in range(2):
        assert chat(one, "onlybroken").status_code == 502  # the upstream fails: 2 faults
    assert circuits(one)["broken"] == "open"
    assert wait_for(lambda: circuits(two).get("broken") == "open")
    # The second replica never called `broken`, yet refuses it without calling upstream.
    calls = sum(1 for r in upstream.requests if r.get("model") == "fail-500")
    resp = chat(two, "onlybroken")
    assert resp.status_code == 503 and "circuit" in resp.text.lower()
    assert sum(1 for r in upstream.requests if r.get("model") == "fail-500") == calls
    # A healthy policy still answers on both.
    assert chat(two, "balanced").status_code == 200


def metric(proxy: Proxy, name: str) -> float:
    for line in httpx.get(proxy.url + "/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_redis_outage_degrades_and_never_fails_requests(replicas, redis_server):
    one, two = replicas
    assert chat(one, "balanced").status_code == 200
    redis_server.kill()
    try:
        for p in (one, two):
            for _ in range(3):
                assert chat(p, "balanced").status_code == 200
        # The breaker sync touches the store twice a second: the outage shows.
        assert wait_for(lambda: metric(one, "router_state_degraded") == 1)
        assert httpx.get(one.url + "/ready", timeout=30).json()["state"] == "degraded"
        assert httpx.get(one.url + "/ready", timeout=30).status_code == 200  # still ready
        assert metric(one, "router_state_fallbacks_total") > 0
    finally:
        redis_server.start()
    assert wait_for(lambda: metric(one, "router_state_degraded") == 0)
    assert httpx.get(one.url + "/ready", timeout=30).json()["state"] == "redis"
    assert chat(two, "balanced").status_code == 200


async def test_an_open_during_an_outage_is_shared_once_redis_is_back(redis_url, redis_server):
    wall = Clock(time.time())
    store_a, store_b = RedisStore(redis_url, retry_s=0.2), RedisStore(redis_url)
    a, _, sync_a = replica(store_a, wall, "a")
    b, _, sync_b = replica(store_b, wall, "b")
    redis_server.kill()
    try:
        for _ in range(2):
            a.failure("m")
        await sync_a.sync_once()  # served in process: not shared, so still pending
        assert store_a.degraded
    finally:
        redis_server.start()
    await sync_b.sync_once()
    assert state(b, "m") == CLOSED  # Redis came back empty: nothing to see yet
    import asyncio

    await asyncio.sleep(0.3)  # past store_a's retry_s
    await sync_a.sync_once()
    assert not store_a.degraded
    await sync_b.sync_once()
    assert state(b, "m") == OPEN
    await store_a.close()
    await store_b.close()


async def test_the_catalogue_is_read_every_round():
    store, wall = MemoryStore(), Clock(1_000_000.0)
    a, _, sync_a = replica(store, wall, "a")
    catalogue = ["m"]
    b = Breakers(failures=2, cooldown_s=30, clock=Clock(0.0), wall=wall)
    sync_b = BreakerSync(b, store, lambda: catalogue, replica="b")
    for _ in range(2):
        a.failure("n")  # a model b's catalogue does not have yet
    await sync_a.sync_once()
    await sync_b.sync_once()
    assert state(b, "n") == CLOSED
    catalogue.append("n")  # a hot reload added it
    await sync_b.sync_once()
    assert state(b, "n") == OPEN


def test_a_session_started_on_one_replica_sticks_on_the_other(replicas):
    one, two = replicas

    def turn(proxy: Proxy, text: str) -> httpx.Response:
        body = {"model": "router", "messages": [{"role": "user", "content": text}]}
        headers = {"x-session-id": "replica-test"}
        return httpx.post(
            proxy.base_url + "/chat/completions", json=body, headers=headers, timeout=60
        )

    first = turn(one, "Prove that there are infinitely many primes.")
    assert first.status_code == 200
    assert first.headers["x-router-sticky"] == "false"  # a new session
    second = turn(two, "thanks")
    assert second.status_code == 200
    # The other replica found the session in Redis: it stays on the first turn's model.
    assert second.headers["x-router-session"] == "replica-test"
    assert second.headers["x-router-sticky"] == "true"
    assert second.headers["x-router-model"] == first.headers["x-router-model"]
