"""Shared state: what workers and replicas must agree on (sessions, budget counters, ...).

In process by default (`MemoryStore`). With `state: redis://...` the same interface is backed by
Redis, so several workers and replicas see one state; a Redis outage degrades to in-process
state with a warning and a metric, and never fails a request.

Values are JSON-able (dict, list, str, number). Keys are namespaced by the caller
("session:<id>", "budget:<policy>:<bucket>"...). Every method is async: the proxy is async, and
redis-py's asyncio client is the one the Redis store uses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from router.core.config import ConfigError

log = logging.getLogger("router.serving.state")
T = TypeVar("T")


class StateStore(Protocol):
    """The state interface every shared feature is written against."""

    async def get(self, key: str) -> Any | None:
        """The value stored at `key`, or None (absent or expired)."""

    async def set(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        """Store `value` at `key`; it expires after `ttl_s` seconds (None: never)."""

    async def incr(self, key: str, amount: float = 1.0, ttl_s: float | None = None) -> float:
        """Add `amount` to the number at `key` (absent: 0) and return the new value.

        `ttl_s` sets the expiry when the key is created (a window's bucket, say)."""

    async def delete(self, key: str) -> None:
        """Forget `key` (absent: nothing happens)."""

    async def close(self) -> None:
        """Release connections."""


class MemoryStore:
    """`StateStore` in this process: a dict with expiry times, bounded in size."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._data: dict[str, tuple[str, float | None]] = {}
        self.max_keys = max_keys

    def _live(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        raw, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._data[key]
            return None
        return raw

    def _evict(self) -> None:
        # Expired keys first; then the oldest inserted (dicts keep insertion order).
        if len(self._data) < self.max_keys:
            return
        now = time.monotonic()
        for k in [k for k, (_, e) in self._data.items() if e is not None and e <= now]:
            del self._data[k]
        while len(self._data) >= self.max_keys:
            del self._data[next(iter(self._data))]

    async def get(self, key: str) -> Any | None:
        raw = self._live(key)
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        self._data.pop(key, None)
        self._evict()
        # Stored as JSON so a value behaves exactly as it would after a Redis round trip.
        expires = None if ttl_s is None else time.monotonic() + ttl_s
        self._data[key] = (json.dumps(value), expires)

    async def incr(self, key: str, amount: float = 1.0, ttl_s: float | None = None) -> float:
        raw = self._live(key)
        if raw is None:
            await self.set(key, amount, ttl_s)
            return float(amount)
        value = float(json.loads(raw)) + amount
        self._data[key] = (json.dumps(value), self._data[key][1])
        return value

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def close(self) -> None:
        self._data.clear()


class RedisStore:
    """`StateStore` in Redis, shared by every worker and replica that names the same URL.

    Redis is a help, never a dependency of a request: every call has short socket time-outs
    and no retry (but one immediate reconnect of a broken connection), and when Redis does not
    answer the call is served by an in-process
    `MemoryStore` instead. A refused or broken connection, or time-outs that go on for
    `degrade_after_s`, start an outage (`degraded` is True). While degraded, Redis is tried
    again at most every `retry_s` seconds; the first call that succeeds ends the outage. What
    was written in process during an outage stays there: state is per process until Redis is
    back, as it is without Redis. The process logs one warning when an outage begins and one
    when it ends, naming its pid (`_OutageLog`), however many stores and clients of it meet it.

    Keys are prefixed (`router:` by default) so the router can share a Redis with other users.
    One client per event loop: the SDK may call from several `asyncio.run`s.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.5,
        retry_s: float = 1.0,
        degrade_after_s: float = 2.0,
        prefix: str = "router:",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        # A time-out may be this process's own busy event loop rather than Redis (concurrent
        # calls then time out together): only time-outs that go on for `degrade_after_s`
        # without an answer start an outage. A refused or broken connection starts one at once.
        self.degrade_after_s = degrade_after_s
        self._timing_out_since: float | None = None
        self.prefix = prefix
        self.clock = clock
        self.fallback = MemoryStore()
        self.degraded = False
        self.outages = 0  # outages begun, ever
        self.fallbacks = 0  # calls served in process because Redis did not answer
        self._retry_at = 0.0
        # One client per event loop (the proxy's, the SDK's background loop...): a client's
        # connections belong to the loop that opened them.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    # ---- the client -------------------------------------------------------------------------

    def client(self) -> Any:
        """The redis-py asyncio client of the running event loop (made on first use)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            from redis.asyncio import Redis

            client = self._clients[loop] = Redis.from_url(
                self.url,
                socket_timeout=self.timeout_s,
                socket_connect_timeout=self.timeout_s,
                retry=one_reconnect(),
                health_check_interval=0,
                decode_responses=True,
                max_connections=64,
            )
        return client

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def _call(
        self, remote: Callable[[Any], Awaitable[T]], local: Callable[[], Awaitable[T]] | None
    ) -> T:
        """`remote(client)`, or `local()` when Redis is out (and then for `retry_s`); without
        `local`, `StateUnavailable` instead."""
        if not self.available():
            if local is None:
                raise StateUnavailable(f"Redis at {self._where} is not answering")
            self.fallbacks += 1
            return await local()
        try:
            # The socket time-outs bound each step; this bounds the whole call (a pool wait).
            async with asyncio.timeout(self.timeout_s * 4):
                result = await remote(self.client())
        except Exception as e:
            if not _is_outage(e):
                raise
            self.mark_outage(e, served=local is not None)
            if local is None:
                raise StateUnavailable(f"Redis at {self._where}: {type(e).__name__}: {e}") from e
            return await local()
        self.mark_ok()
        return result

    def shared_only(self) -> StateStore:
        """This store without its in-process fallback: a call Redis does not answer raises
        `StateUnavailable` instead. For writes that must reach the other replicas or be kept
        to be sent again (budget counters): served in process, they would stay there for good,
        and the totals read back would be this process's outage-time counts alone."""
        return _SharedOnly(self)

    # Other Redis users of this process (the rate limiter's own client) share this health:
    # one outage, one warning, one metric.

    def available(self) -> bool:
        """Worth asking Redis now: no outage, or the outage is due for another try."""
        return not self.degraded or self.clock() >= self._retry_at

    def mark_ok(self) -> None:
        """Redis answered: an outage, if any, is over."""
        self._timing_out_since = None
        self.degraded = False
        if OUTAGE_LOG.logged:  # any store's answer ends the process's outage of that Redis
            OUTAGE_LOG.ended(self._where)

    @property
    def _where(self) -> str:
        # Never log a password given in the URL.
        rest = self.url.split("://", 1)[-1]
        return rest.rsplit("@", 1)[-1]

    def mark_outage(self, exc: Exception, served: bool = True) -> None:
        """Redis did not answer (`exc`): serve in process (`served`), warn once, try again
        later."""
        if served:
            self.fallbacks += 1
        # The rate limiter's client (the `limits` library) wraps Redis' error in its own
        # StorageError: its time-outs are time-outs too, given `degrade_after_s` like ours.
        inner = getattr(exc, "storage_error", None)
        exc = inner if isinstance(inner, Exception) else exc
        if not self.degraded and _is_timeout(exc):
            now = self.clock()
            if self._timing_out_since is None:
                self._timing_out_since = now
            if now - self._timing_out_since < self.degrade_after_s:
                return  # this call was served in process; the next one asks Redis again
        self._retry_at = self.clock() + self.retry_s
        if not self.degraded:
            self.degraded = True
            self.outages += 1
            OUTAGE_LOG.began(self._where, exc)

    # ---- StateStore -------------------------------------------------------------------------

    async def get(self, key: str, *, fallback: bool = True) -> Any | None:
        async def remote(r: Any) -> Any | None:
            return await r.get(self._key(key))

        async def local() -> str | None:
            value = await self.fallback.get(key)
            return None if value is None else json.dumps(value)

        raw = await self._call(remote, local if fallback else None)
        return None if raw is None else json.loads(raw)

    async def set(
        self, key: str, value: Any, ttl_s: float | None = None, *, fallback: bool = True
    ) -> None:
        raw = json.dumps(value)

        async def remote(r: Any) -> None:
            await r.set(self._key(key), raw, px=_ms(ttl_s))

        local = partial(self.fallback.set, key, value, ttl_s)
        await self._call(remote, local if fallback else None)

    async def incr(
        self, key: str, amount: float = 1.0, ttl_s: float | None = None, *, fallback: bool = True
    ) -> float:
        async def remote(r: Any) -> float:
            k = self._key(key)
            # One transaction: create with the expiry only if absent, then add.
            async with r.pipeline(transaction=True) as pipe:
                if ttl_s is not None:
                    pipe.set(k, 0, px=_ms(ttl_s), nx=True)
                pipe.incrbyfloat(k, amount)
                results = await pipe.execute()
            return float(results[-1])

        local = partial(self.fallback.incr, key, amount, ttl_s)
        return await self._call(remote, local if fallback else None)

    async def delete(self, key: str, *, fallback: bool = True) -> None:
        async def remote(r: Any) -> None:
            await r.delete(self._key(key))

        await self._call(remote, partial(self.fallback.delete, key) if fallback else None)

    async def ping(self) -> bool:
        """Does Redis answer now? (Ends an outage when it does.)"""

        async def remote(r: Any) -> bool:
            return bool(await r.ping())

        async def local() -> bool:
            return False

        self._retry_at = 0.0  # a health check always asks Redis
        return await self._call(remote, local)

    async def close(self) -> None:
        """Close this loop's client (others' loops may be gone: theirs are dropped)."""
        try:
            client = self._clients.pop(asyncio.get_running_loop(), None)
        finally:
            self._clients.clear()
        if client is not None:
            try:
                await client.aclose()
            except Exception:  # noqa: BLE001  (closing a client of a dead loop or server)
                pass
        await self.fallback.close()


class _OutageLog:
    """One warning per Redis outage in this process, and one when it is over, whatever number
    of stores (the state's, the answer cache's) and clients (the rate limiter's) meet it: the
    first to find Redis gone begins the outage, the first answer ends it. Each line names the
    pid, so the one line of each worker (`router serve --workers N`) reads as that worker's;
    the processes are not coordinated."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}  # Redis location (host:port/db) -> outage start
        self._pid = os.getpid()

    @property
    def logged(self) -> bool:
        """Whether an outage logged by this process is going on (of any Redis)."""
        return bool(self._since)

    def began(self, where: str, exc: Exception) -> None:
        if self._pid != os.getpid():  # a forked child: its parent's outages are not its own
            self._since, self._pid = {}, os.getpid()
        if where in self._since:
            return  # already logged by another store of this process
        self._since[where] = time.monotonic()
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        log.warning(
            "state: Redis at %s is not answering (%s); this process (pid %d) keeps its state in "
            "memory until it is back",
            where,
            f"{type(exc).__name__}: {text}" if text else type(exc).__name__,
            os.getpid(),
            extra={"redis": where, "pid": os.getpid()},
        )

    def ended(self, where: str) -> None:
        """Redis at `where` answered: the outage logged for it, if any, is over."""
        if self._pid != os.getpid():
            return
        since = self._since.pop(where, None)
        if since is None:
            return
        seconds = time.monotonic() - since
        log.warning(
            "state: Redis at %s answers again after %.1f s; this process (pid %d) shares its "
            "state again",
            where,
            seconds,
            os.getpid(),
            extra={"redis": where, "pid": os.getpid(), "outage_s": round(seconds, 3)},
        )


OUTAGE_LOG = _OutageLog()


class StateUnavailable(ConnectionError):
    """Redis did not answer a call of `RedisStore.shared_only()` (nothing served in process)."""


class _SharedOnly:
    """A `RedisStore` whose calls raise `StateUnavailable` rather than fall back to memory."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    async def get(self, key: str) -> Any | None:
        return await self.store.get(key, fallback=False)

    async def set(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        await self.store.set(key, value, ttl_s, fallback=False)

    async def incr(self, key: str, amount: float = 1.0, ttl_s: float | None = None) -> float:
        return await self.store.incr(key, amount, ttl_s, fallback=False)

    async def delete(self, key: str) -> None:
        await self.store.delete(key, fallback=False)

    async def close(self) -> None:
        """Nothing: the connections are the store's."""


def _is_outage(exc: Exception) -> bool:
    """Redis down, unreachable or slow, or a client of another loop: serve in process."""
    from redis.exceptions import RedisError  # redis is imported by then (lazy: start-up time)

    return isinstance(exc, RedisError | OSError | TimeoutError | RuntimeError)


def one_reconnect() -> Any:
    """redis-py's retry policy for the router's clients: a broken connection (one the pool kept
    from before a Redis restart) is reconnected once at once; a time-out is not retried. A
    down Redis refuses that reconnect at once: the outage is handled by the caller."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def _is_timeout(exc: Exception) -> bool:
    from redis.exceptions import TimeoutError as RedisTimeout

    return isinstance(exc, TimeoutError | RedisTimeout)


def _ms(ttl_s: float | None) -> int | None:
    return None if ttl_s is None else max(1, int(ttl_s * 1000))


def open_state(url: str | None, source: str | Path = "config") -> StateStore:
    """The store a `state:` setting names: None -> `MemoryStore`; redis:// or rediss:// ->
    `RedisStore` (degrading to memory during an outage). A URL Redis cannot be reached by
    (a bad port, database or option) is a ConfigError of `source`'s `state` field."""
    if url is None:
        return MemoryStore()
    check_state_url(url, source)
    return RedisStore(url)


def check_state_url(url: str, source: str | Path = "config") -> None:
    """A ConfigError of `source`'s `state` field (the password hidden) when redis-py cannot
    use `url` (`state_url_problem`); nothing is connected to."""
    problem = state_url_problem(url)
    if problem is not None:
        from router.serving.decision_log import safe_url  # password and ?password= hidden

        raise ConfigError(source, "state", f"{safe_url(url)!r}: {problem}")


def state_url_problem(url: str) -> str | None:
    """Why a `state:` URL cannot be used, or None. Checked at start-up: redis-py reads the
    URL only at the first call, and would then fail every call (or the rate limiter the
    start-up) with a traceback. Nothing is connected to."""
    if not url.startswith(("redis://", "rediss://")):
        return "not a redis:// or rediss:// URL (or null)"
    database = urlsplit(url).path.strip("/")
    if database and not database.isdigit():
        return f"the database after the host is a number (0-15 by default), not {database!r}"
    from redis.asyncio import Redis

    try:
        # Parses host, port, database and every ?option into a connection (not opened).
        Redis.from_url(url).connection_pool.make_connection()
    except TypeError as e:  # an ?option redis-py does not know
        return f"an option of the URL is not a Redis connection option ({e})"
    except Exception as e:  # noqa: BLE001  (ValueError, RedisError: a bad port or value)
        return str(e)
    return None


class StateCollector:
    """Prometheus collector of a store's health: `router_state_degraded` (1 while Redis is out)
    and `router_state_fallbacks_total` (calls served in process instead of by Redis)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        shared = isinstance(self.store, RedisStore)
        yield GaugeMetricFamily(
            "router_state_degraded",
            "1 while the shared state (Redis) is not answering and state is per process.",
            value=1.0 if shared and self.store.degraded else 0.0,
        )
        yield CounterMetricFamily(
            "router_state_fallbacks",
            "State calls served in process because Redis did not answer.",
            value=float(self.store.fallbacks) if shared else 0.0,
        )
        yield CounterMetricFamily(
            "router_state_outages",
            "Redis outages begun (each logged once).",
            value=float(self.store.outages) if shared else 0.0,
        )
