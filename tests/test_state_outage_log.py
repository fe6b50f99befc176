"""A Redis outage in the log: one warning per process when it begins and one when it ends,
naming the process (each worker of `router serve --workers N` logs its own pair), however many
stores (the state's, the answer cache's) and clients (the rate limiter's, the wrong keys')
of that process meet it; a stall the rate limiter's client meets is no outage, as for the
store's own calls."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest

from router.core.config import ServerSpec
from router.server.auth import Principal
from router.server.ratelimit import FailedKeys, RateLimits
from router.serving.state import RedisStore


def url_of(redis_server, db: int) -> str:
    # A database of its own: this test's lines are told apart from those of any other store
    # of the session still talking to the same server (each names host:port/db).
    return redis_server.url.rsplit("/", 1)[0] + f"/{db}"


def lines(caplog, text: str, where: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "router.serving.state" and text in r.getMessage() and where in r.getMessage()
    ]


async def test_one_line_per_process_per_outage_whatever_meets_it(redis_server, caplog):
    redis_server.start()
    url = url_of(redis_server, 9)
    where = url.split("://", 1)[1]
    state = RedisStore(url, retry_s=0.1)
    cache = RedisStore(url, prefix="router:cache:", retry_s=0.1)  # as cache.py makes its own
    limits = RateLimits(ServerSpec(rate_limit="1000/minute"), state)
    wrong_keys = FailedKeys(state, "20/minute", "key-failures")
    key = Principal("team-a")

    async def calls() -> None:
        # The rate limiter first: its client (the `limits` library) wraps Redis' errors.
        await limits.check(key)
        await wrong_keys.attempt("10.0.0.1", lambda: True)
        await state.set("k", 1)
        await cache.get("k")

    await calls()
    caplog.set_level(logging.WARNING, logger="router.serving.state")
    redis_server.kill()
    try:
        for _ in range(4):
            await calls()
            await asyncio.sleep(0.15)  # past retry_s: every store asks Redis again, and fails
        assert state.degraded and cache.degraded
    finally:
        redis_server.start()
    down = lines(caplog, "not answering", where)
    assert len(down) == 1, [r.getMessage() for r in down]
    message = down[0].getMessage()
    assert f"pid {os.getpid()}" in message and down[0].pid == os.getpid()
    assert "ConnectionError" in message and "StorageError" not in message  # the real error
    assert down[0].redis == where

    for _ in range(3):
        await asyncio.sleep(0.15)
        await calls()
    assert not state.degraded and not cache.degraded
    up = lines(caplog, "answers again", where)
    assert len(up) == 1, [r.getMessage() for r in up]
    assert f"pid {os.getpid()}" in up[0].getMessage() and up[0].outage_s > 0

    # The next outage is a new one, logged again, once.
    redis_server.kill()
    try:
        for _ in range(3):
            await calls()
    finally:
        redis_server.start()
    assert len(lines(caplog, "not answering", where)) == 2
    await asyncio.sleep(0.15)
    await calls()
    assert len(lines(caplog, "answers again", where)) == 2
    await state.close()
    await cache.close()


async def test_a_stall_the_rate_limiter_meets_is_no_outage(redis_server, caplog):
    """Time-outs start an outage once they have gone on for `degrade_after_s` (they may be the
    process's own busy event loop): the rate limiter's time-outs too. Its client wraps them in
    the `limits` library's StorageError, which began an outage (and a line) at the first."""
    redis_server.start()
    url = url_of(redis_server, 10)
    store = RedisStore(url, timeout_s=0.2, degrade_after_s=5.0, retry_s=0.0)
    limits = RateLimits(ServerSpec(rate_limit="1000/minute"), store)
    key = Principal("team-a")
    await limits.check(key)
    caplog.set_level(logging.WARNING, logger="router.serving.state")
    # CLIENT PAUSE: Redis holds every command for a while, as a stalled server would.
    assert redis_server.command("CLIENT", "PAUSE", "1500") == b"+OK\r\n"
    try:
        for _ in range(3):
            await limits.check(key)  # timed out: counted in process
        assert store.fallbacks >= 3
        assert not store.degraded and store.outages == 0
    finally:
        redis_server.command("CLIENT", "UNPAUSE", timeout=30)
    await limits.check(key)
    assert not store.degraded
    assert not lines(caplog, "not answering", url.split("://", 1)[1])
    await store.close()


@pytest.fixture(autouse=True)
def _redis_back(redis_server):
    yield
    redis_server.start()  # for the tests after these, whatever happened here
