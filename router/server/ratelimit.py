"""Rate limits per API key (`server.keys[].rate_limit`, default `server.rate_limit`), and the
throttle of wrong keys per client address (`FailedKeys`: admin key and API keys).

Counted by the `limits` library with a moving window: in this process by default, in Redis
when `state:` names one, so every worker and replica draws on one allowance per key. A Redis
outage falls back to counting in process (each process then allows the full rate) and is
reported through the state store, like every other Redis user: one warning, one metric. An
exhausted limit is a 429 in OpenAI's error shape with Retry-After and x-ratelimit-* headers.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from router.core.config import ServerSpec
from router.server.auth import Principal
from router.server.errors import APIError
from router.serving.state import RedisStore, StateStore, one_reconnect

T = TypeVar("T")


class RateLimits:
    """The proxy's per-key limits; `check(principal)` counts one request or raises a 429."""

    def __init__(self, spec: ServerSpec, store: StateStore) -> None:
        self._notation = {k.name: k.rate_limit for k in spec.keys if k.rate_limit}
        self._default = spec.rate_limit
        self.enabled = bool(self._notation or self._default)
        self.store = store
        self._items: dict[str | None, list[Any]] = {}
        self._local: Any = None
        self._shared: Any = None
        if self.enabled:
            self._build()

    def _build(self) -> None:
        # `limits` takes 0.15 s to import: only when a limit is configured.
        from limits import parse_many

        for name, notation in self._notation.items():
            self._items[name] = parse_many(notation)
        self._items[None] = parse_many(self._default) if self._default else []
        self._local, self._shared = limiters(self.store, "ratelimit")

    def limits_of(self, principal: Principal) -> list[Any]:
        """The limits that apply to this caller (its own, else the default)."""
        return self._items.get(principal.name) or self._items.get(None, [])

    async def check(self, principal: Principal) -> None:
        """Count one request of `principal`; a 429 APIError when a limit is used up."""
        if not self.enabled:
            return
        items = self.limits_of(principal)
        if not items:
            return
        limiter = self._local
        if self._shared is not None and self.store.available():
            limiter = self._shared
        try:
            refused = await self._hit(limiter, items, principal.name)
            if limiter is self._shared:
                self.store.mark_ok()
        except Exception as e:
            if limiter is not self._shared or not _is_storage_outage(e):
                raise
            self.store.mark_outage(e)  # one warning and metric for every Redis user
            limiter = self._local
            refused = await self._hit(limiter, items, principal.name)
        if refused is None:
            return
        stats = await limiter.get_window_stats(refused, principal.name)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise APIError(
            429,
            f"rate limit reached for API key {principal.name!r}: {refused}; "
            f"retry after {retry_after} s",
            None,
            "rate_limit_exceeded",
            {
                "retry-after": str(retry_after),
                "x-ratelimit-limit-requests": str(refused.amount),
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{retry_after}s",
            },
        )

    async def _hit(self, limiter: Any, items: list[Any], key: str) -> Any | None:
        """Count one hit against each limit; the first one that is used up, or None."""
        if limiter is self._shared:
            async with asyncio.timeout(self.store.timeout_s * 4):
                return await self._hit_all(limiter, items, key)
        return await self._hit_all(limiter, items, key)

    @staticmethod
    async def _hit_all(limiter: Any, items: list[Any], key: str) -> Any | None:
        # With several limits ("100/minute;2/second"), a request refused by one must not be
        # counted against the others: a client retrying through a burst would otherwise use
        # up its minute without a single answer. So every limit is tested before any is hit.
        # (A race between the test and the hit can still count a refused request once.)
        if len(items) > 1:
            for item in items:
                if not await limiter.test(item, key):
                    return item
        for item in items:
            if not await limiter.hit(item, key):
                return item
        return None


def limiters(store: StateStore, name: str) -> tuple[Any, Any | None]:
    """Moving-window limiters of `limits`: one counting in this process, and one counting in
    Redis under `<prefix><name>` when `store` is Redis (else None)."""
    from limits.aio.storage import MemoryStorage, RedisStorage
    from limits.aio.strategies import MovingWindowRateLimiter

    local = MovingWindowRateLimiter(MemoryStorage())
    if not isinstance(store, RedisStore):
        return local, None
    storage = RedisStorage(
        "async+" + limits_url(store.url),
        wrap_exceptions=True,
        implementation="redispy",
        key_prefix=store.prefix + name,
        socket_timeout=store.timeout_s,
        socket_connect_timeout=store.timeout_s,
        retry=one_reconnect(),
    )
    return local, MovingWindowRateLimiter(storage)


# ---- wrong keys per client address ------------------------------------------------------------


def client_address(host: str | None) -> str:
    """The address failures are counted against: the client's IPv4 address, or the /64 of an
    IPv6 one (a single host is given a whole /64 to pick addresses from)."""
    try:
        ip = ipaddress.ip_address(host or "")
    except ValueError:
        return host or "unknown"  # a Unix socket, a test client
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def address_of(request: Any) -> str:
    """`client_address` of a request's client (X-Forwarded-For's, behind a trusted proxy)."""
    return client_address(request.client.host if request.client else None)


class FailedKeys:
    """Wrong keys per client address, counted in a moving window as `RateLimits` counts
    requests: in this process, or in Redis when `state:` names one (every worker and replica
    then counts together; an outage falls back to this process and is reported by the store,
    as for every Redis user). One instance per kind of key: the admin key's (admin.py) and the
    API keys' (app.py), each with its own limit and counts.

    `attempt(address, match)` compares a key (`match()`) and counts a mismatch against the
    address. Once `limit` mismatches are in the window, every attempt from the address is a
    429 with Retry-After whatever key is sent, the right one included, so a refusal never
    tells a right key from a wrong one. A right key is never counted, so one that is used
    often is never blocked by its own past.
    """

    def __init__(self, store: StateStore, limit: str, name: str) -> None:
        self.store = store
        self.notation = limit
        self.name = name  # the counts' Redis keys: `<prefix><name>...`
        self.limit: Any = None
        self._local: Any = None
        self._shared: Any = None

    def _build(self) -> None:
        # `limits` takes 0.15 s to import: on the first key compared, not at start-up.
        from limits import parse

        self.limit = parse(self.notation)
        self._local, self._shared = limiters(self.store, self.name)

    async def attempt(self, address: str, match: Callable[[], T | Awaitable[T]]) -> T:
        """`match()` (the key comparison; a coroutine function too), unless `address` has used
        up its failures (a 429 APIError). A falsy result is a mismatch, counted against the
        address; so is an APIError `match` raises (another throttle's refusal), which is then
        raised again."""
        if self._local is None:
            self._build()
        try:
            found = match()
            if inspect.isawaitable(found):
                found = await found
        except APIError:
            await self._call("hit", address)
            raise
        # The key is compared first and the counts asked after, in one call either way: a
        # hit is counted only while the window has room ("acquire"), atomically in Redis and
        # in process, so concurrent guesses cannot all pass a test before one is counted.
        if not await self._call("test" if found else "hit", address):
            await self._refuse(address)
        return found

    async def _call(self, method: str, address: str) -> Any:
        """`test` or `hit` on the shared counts, or on this process's when Redis is out."""
        if self._shared is not None and self.store.available():
            try:
                async with asyncio.timeout(self.store.timeout_s * 4):
                    result = await getattr(self._shared, method)(self.limit, address)
                self.store.mark_ok()
                return result
            except Exception as e:
                if not _is_storage_outage(e):
                    raise
                self.store.mark_outage(e)  # one warning and metric for every Redis user
        return await getattr(self._local, method)(self.limit, address)

    async def _refuse(self, address: str) -> None:
        limiter = self._local
        if self._shared is not None and self.store.available():
            limiter = self._shared
        try:
            stats = await limiter.get_window_stats(self.limit, address)
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        except Exception:  # noqa: BLE001 - the refusal stands; only its hint is unknown
            retry_after = self.limit.get_expiry()
        raise APIError(
            429,
            f"too many wrong keys from this address (at most {self.limit.amount} a "
            f"{self.limit.GRANULARITY.name}); retry after {retry_after} s",
            None,
            "too_many_attempts",
            {"retry-after": str(retry_after)},
        )


def limits_url(url: str) -> str:
    """A Redis URL as the `limits` library reads it: without a port it refuses the URL,
    where redis-py (and the rest of the router) take Redis' default, 6379."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is not None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc + ":6379"))


def _is_storage_outage(exc: Exception) -> bool:
    from limits.errors import StorageError
    from redis.exceptions import RedisError

    return isinstance(exc, StorageError | RedisError | OSError | TimeoutError)
