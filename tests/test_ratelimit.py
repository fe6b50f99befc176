"""Rate limits per API key: 429 in OpenAI's shape with Retry-After, counted in process or in a
real, throwaway Redis shared by two proxies, and still answering through a Redis outage."""

from __future__ import annotations

import shutil
import time

import httpx
import openai
import pytest
import yaml

from router.core.config import ConfigError, load_config
from router.server.app import create_app
from tests.proxy import Proxy, router_from

KEYS = [
    {"name": "alice", "key": "alice-key-0001", "rate_limit": "3/minute"},
    {"name": "bob", "key": "bob-key-000001"},  # no limit of its own: the server default
    {"name": "carol", "key": "carol-key-0001", "rate_limit": "4/minute"},
]


def write_config(test_config, dest, state=None, default=None):
    shutil.copytree(test_config.parent, dest)
    path = dest / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["state"] = state
    cfg["server"] = {"keys": KEYS, "keys_env": None, "rate_limit": default, "decision_log": None}
    path.write_text(yaml.safe_dump(cfg))
    return path


def start(cfg_path, like) -> Proxy:
    r = router_from(cfg_path, like)
    return Proxy(create_app(r, r.config.server)).start()


def chat(proxy: Proxy, key: str) -> httpx.Response:
    body = {"model": "router", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(
        proxy.base_url + "/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=60,
    )


@pytest.fixture
def local_proxy(test_config, tmp_path, router):
    p = start(write_config(test_config, tmp_path / "cfg", default="2/minute"), router)
    yield p
    p.stop()


def test_a_key_over_its_limit_gets_a_429_with_retry_after(local_proxy):
    for _ in range(3):
        assert chat(local_proxy, "alice-key-0001").status_code == 200
    resp = chat(local_proxy, "alice-key-0001")
    assert resp.status_code == 429
    err = resp.json()["error"]
    assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded"
    assert "alice" in err["message"] and "alice-key" not in err["message"]
    assert 1 <= int(resp.headers["retry-after"]) <= 60
    assert resp.headers["x-ratelimit-limit-requests"] == "3"
    assert resp.headers["x-ratelimit-remaining-requests"] == "0"
    # The OpenAI SDK sees its own RateLimitError.
    client = openai.OpenAI(base_url=local_proxy.base_url, api_key="alice-key-0001", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="router", messages=[{"role": "user", "content": "x"}])
    # Other keys have their own allowance; a key without one takes the server default (2).
    assert chat(local_proxy, "carol-key-0001").status_code == 200
    assert [chat(local_proxy, "bob-key-000001").status_code for _ in range(3)] == [200, 200, 429]


def test_without_a_limit_nothing_is_counted(test_config, tmp_path, router):
    cfg = write_config(test_config, tmp_path / "cfg")
    r = router_from(cfg, router)
    p = Proxy(create_app(r, r.config.server)).start()
    try:
        assert [chat(p, "bob-key-000001").status_code for _ in range(5)] == [200] * 5
    finally:
        p.stop()


def test_rate_limit_notation_is_validated_naming_the_field(test_config, tmp_path):
    path = write_config(test_config, tmp_path / "cfg")
    cfg = yaml.safe_load(path.read_text())
    cfg["server"]["keys"][0]["rate_limit"] = "lots/minute"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"server\.keys\[0\]\.rate_limit.*'100/minute'"):
        load_config(path)
    cfg["server"]["keys"][0]["rate_limit"] = "10/second;1000/hour"
    cfg["server"]["rate_limit"] = "5/fortnight"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"server\.rate_limit"):
        load_config(path)


def test_a_redis_url_without_a_port_counts_in_redis_on_the_default_port():
    """redis-py takes 6379 for a URL without a port; `limits` refused such a URL, so a
    `state:` like redis://cache/0 with a rate limit stopped the proxy's start-up."""
    from router.core.sections import ServerSpec
    from router.server.ratelimit import RateLimits, limits_url
    from router.serving.state import RedisStore

    limits = RateLimits(ServerSpec(rate_limit="5/minute"), RedisStore("redis://cache.internal/0"))
    assert limits._shared is not None
    assert limits_url("rediss://:pw@cache/2?ssl_cert_reqs=none") == (
        "rediss://:pw@cache:6379/2?ssl_cert_reqs=none"
    )
    assert limits_url("redis://[::1]:6380/0") == "redis://[::1]:6380/0"
    assert limits_url("redis://[::1]/0") == "redis://[::1]:6379/0"


@pytest.fixture
def shared_proxies(test_config, tmp_path, router, redis_url):
    cfg = write_config(test_config, tmp_path / "cfg", state=redis_url)
    proxies = [start(cfg, router), start(cfg, router)]
    yield proxies
    for p in proxies:
        p.stop()


def test_replicas_sharing_redis_share_one_allowance_per_key(shared_proxies, redis_server):
    one, two = shared_proxies
    codes = [chat(p, "carol-key-0001").status_code for p in (one, two, one, two)]
    assert codes == [200] * 4  # carol: 4/minute, spent across both replicas
    assert chat(one, "carol-key-0001").status_code == 429
    assert chat(two, "carol-key-0001").status_code == 429
    assert chat(two, "alice-key-0001").status_code == 200  # a key of its own
    # The counts live in Redis, under the router's prefix.
    assert b"router:ratelimit" in redis_server.command("KEYS", "router:ratelimit*")


def test_a_redis_outage_counts_in_process_and_never_fails(shared_proxies, redis_server):
    one, two = shared_proxies
    assert chat(one, "alice-key-0001").status_code == 200
    redis_server.kill()
    try:
        # Counted per process now: alice still gets her 3 on each replica, then a 429.
        assert [chat(one, "alice-key-0001").status_code for _ in range(4)] == [200] * 3 + [429]
        assert chat(two, "alice-key-0001").status_code == 200
        ready = httpx.get(one.url + "/ready", timeout=30).json()
        assert ready["state"] == "degraded"
    finally:
        redis_server.start()
    # Back: one allowance for both replicas again (carol: 4/minute, fresh in the new Redis).
    assert wait_for(lambda: all(state(p) == "redis" for p in (one, two)))
    codes = [chat(p, "carol-key-0001").status_code for p in (one, two, one, two, one)]
    assert codes == [200] * 4 + [429]


def state(proxy: Proxy) -> str:
    return httpx.get(proxy.url + "/ready", timeout=30).json()["state"]


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_request_refused_by_one_limit_is_not_counted_against_the_others():
    """ "5/minute;2/second": a burst refused by the per-second limit leaves the minute alone."""
    import asyncio

    from router.core.config import ServerSpec
    from router.server.auth import Principal
    from router.server.errors import APIError
    from router.server.ratelimit import RateLimits
    from router.serving.state import MemoryStore

    spec = ServerSpec(
        keys=[{"name": "dave", "key": "dave-key-0001", "rate_limit": "5/minute;2/second"}],
        keys_env=None,
    )
    limits = RateLimits(spec, MemoryStore())
    dave = Principal(name="dave")

    async def burst(n: int) -> list[str]:
        out = []
        for _ in range(n):
            try:
                await limits.check(dave)
                out.append("ok")
            except APIError as e:
                out.append(e.headers["x-ratelimit-limit-requests"])
        return out

    async def scenario() -> tuple[list[str], list[str]]:
        first = await burst(6)  # 2 answered, 4 refused by the per-second limit
        await asyncio.sleep(1.1)
        return first, await burst(2)  # 2 of the minute's 5 used: room for 2 more

    first, second = asyncio.run(scenario())
    assert first == ["ok", "ok", "2", "2", "2", "2"]
    assert second == ["ok", "ok"]
