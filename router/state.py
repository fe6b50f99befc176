"""Shared state: what workers and replicas must agree on (sessions, budget counters, ...).

In process by default (`MemoryStore`). With `state: redis://...` the same interface is backed by
Redis, so several workers and replicas see one state; a Redis outage degrades to in-process
state with a warning and a metric, and never fails a request.

Values are JSON-able (dict, list, str, number). Keys are namespaced by the caller
("session:<id>", "budget:<policy>:<bucket>"...). Every method is async: the proxy is async, and
redis-py's asyncio client is the one the Redis store uses.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol


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
