"""Rate limits per API key (`server.keys[].rate_limit`, default `server.rate_limit`).

Counted by the `limits` library with a moving window: in this process by default, in Redis
when `state:` names one, so every worker and replica draws on one allowance per key. A Redis
outage falls back to counting in process (each process then allows the full rate) and is
reported through the state store, like every other Redis user: one warning, one metric. An
exhausted limit is a 429 in OpenAI's error shape with Retry-After and x-ratelimit-* headers.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from router.core.config import ServerSpec
from router.server.auth import Principal
from router.server.errors import APIError
from router.serving.state import RedisStore, StateStore, one_reconnect


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
        from limits.aio.storage import MemoryStorage, RedisStorage
        from limits.aio.strategies import MovingWindowRateLimiter

        for name, notation in self._notation.items():
            self._items[name] = parse_many(notation)
        self._items[None] = parse_many(self._default) if self._default else []
        self._local = MovingWindowRateLimiter(MemoryStorage())
        if isinstance(self.store, RedisStore):
            storage = RedisStorage(
                "async+" + limits_url(self.store.url),
                wrap_exceptions=True,
                implementation="redispy",
                key_prefix=self.store.prefix + "ratelimit",
                socket_timeout=self.store.timeout_s,
                socket_connect_timeout=self.store.timeout_s,
                retry=one_reconnect(),
            )
            self._shared = MovingWindowRateLimiter(storage)

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
