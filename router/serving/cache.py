"""The response cache: answers kept under their key, served again on an exact or a semantic hit.

`ResponseCache.lookup` tries the exact key first; in semantic mode it then looks for the
nearest earlier question with the same context key (same model, parameters, system prompt and
earlier turns) at cosine >= `similarity`, using the vector the router already computed for
routing (no second embedding), and accepts it only if `questions.difference` finds nothing
that tells the two questions apart. Entries expire after `ttl_s`; beyond `max_entries` the
oldest go first.

Two stores behind one interface:

- `MemoryCacheStore`: this process (a dict and one small vector matrix per context).
- `RedisCacheStore` (`cache.store: redis://...`): entries in Redis, shared by every worker and
  replica. Each process keeps a mirror of the vectors, fed from a Redis stream of additions
  (read incrementally before each semantic lookup), and searches it locally: Redis needs no
  vector-search module, and a lookup costs one stream read and one GET. Redis outages degrade
  to misses (the request is answered by the model as without a cache), never to failures.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from router.core.cache_keys import CacheKey
from router.core.config import CacheSpec
from router.core.questions import difference

log = logging.getLogger("router.serving.cache")

CANDIDATES = 4  # nearest entries checked by the question guard before a semantic miss


@dataclass(frozen=True)
class Hit:
    """A cached answer for a request: the stored entry, and how it matched."""

    entry: dict
    kind: str  # "exact" | "semantic"
    similarity: float


@dataclass(frozen=True)
class Miss:
    """No cached answer; `nearest`/`guard`: the best semantic candidate and why the question
    guard refused it (None when none was close enough)."""

    nearest: float | None = None
    guard: str | None = None


class VectorIndex:
    """Unit vectors by key, searched by dot product (one matrix, grown by doubling)."""

    def __init__(self, dim: int) -> None:
        self.keys: list[str] = []
        self._pos: dict[str, int] = {}
        self._m = np.zeros((8, dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: str, vector: np.ndarray) -> None:
        if key in self._pos:
            self._m[self._pos[key]] = vector
            return
        if len(self.keys) == len(self._m):
            self._m = np.concatenate([self._m, np.zeros_like(self._m)])
        self._pos[key] = len(self.keys)
        self._m[len(self.keys)] = vector
        self.keys.append(key)

    def remove(self, key: str) -> None:
        i = self._pos.pop(key, None)
        if i is None:
            return
        last = len(self.keys) - 1
        if i != last:  # move the last row into the hole
            moved = self.keys[last]
            self._m[i] = self._m[last]
            self.keys[i] = moved
            self._pos[moved] = i
        self.keys.pop()

    def nearest(self, vector: np.ndarray, threshold: float, k: int) -> list[tuple[str, float]]:
        """Up to `k` (key, cosine) at or above `threshold`, best first."""
        n = len(self.keys)
        if not n:
            return []
        sims = self._m[:n] @ vector.astype(np.float32)
        top = np.flatnonzero(sims >= threshold)
        if len(top) > k:
            top = top[np.argpartition(-sims[top], k - 1)[:k]]
        order = top[np.argsort(-sims[top])]
        return [(self.keys[i], float(sims[i])) for i in order]


class CacheStore(Protocol):
    async def get(self, exact: str) -> dict | None: ...

    async def nearest(
        self, context: str, vector: np.ndarray, threshold: float, k: int
    ) -> list[tuple[str, float]]: ...

    async def put(self, key: CacheKey, vector: np.ndarray | None, entry: dict) -> None: ...

    async def close(self) -> None: ...


class MemoryCacheStore:
    """Entries in this process: insertion order is age, so eviction takes the first ones."""

    def __init__(self, ttl_s: float, max_entries: int, clock=time.monotonic) -> None:
        self.ttl_s, self.max_entries, self.clock = ttl_s, max_entries, clock
        # exact key -> (entry, expires at, context key)
        self._entries: OrderedDict[str, tuple[dict, float, str | None]] = OrderedDict()
        self._index: dict[str, VectorIndex] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, exact: str) -> None:
        item = self._entries.pop(exact, None)
        if item is not None and item[2] is not None:
            index = self._index.get(item[2])
            if index is not None:
                index.remove(exact)
                if not len(index):
                    del self._index[item[2]]

    async def get(self, exact: str) -> dict | None:
        item = self._entries.get(exact)
        if item is None:
            return None
        if item[1] <= self.clock():
            self._drop(exact)
            return None
        return item[0]

    async def nearest(
        self, context: str, vector: np.ndarray, threshold: float, k: int
    ) -> list[tuple[str, float]]:
        index = self._index.get(context)
        return [] if index is None else index.nearest(vector, threshold, k)

    async def put(self, key: CacheKey, vector: np.ndarray | None, entry: dict) -> None:
        self._drop(key.exact)
        while len(self._entries) >= self.max_entries:
            self._drop(next(iter(self._entries)))
        context = key.context if vector is not None else None
        self._entries[key.exact] = (entry, self.clock() + self.ttl_s, context)
        if context is not None:
            self._index.setdefault(context, VectorIndex(len(vector))).add(key.exact, vector)

    async def close(self) -> None:
        self._entries.clear()
        self._index.clear()


class RedisCacheStore:
    """Entries in Redis (shared by replicas); vectors mirrored in process from a stream.

    Keys under `router:cache:` (see `RedisStore`'s prefix): `e:<exact>` the entry (JSON, with
    a TTL), `order` a sorted set of entries by time (to drop the oldest beyond
    `max_entries`), `log` the stream of additions (exact key, context key, int8 vector)."""

    def __init__(self, url: str, ttl_s: float, max_entries: int, clock=time.time) -> None:
        from router.serving.state import RedisStore

        # The state store's client and outage handling (short time-outs, one warning).
        self.redis = RedisStore(url, prefix="router:cache:")
        self.ttl_s, self.max_entries, self.clock = ttl_s, max_entries, clock
        self._index: dict[str, VectorIndex] = {}
        self._where: dict[str, tuple[str, float]] = {}  # exact -> (context, expires at)
        self._last_id = "0-0"

    def _k(self, name: str) -> str:
        return self.redis.prefix + name

    async def get(self, exact: str) -> dict | None:
        async def remote(r: Any) -> str | None:
            return await r.get(self._k("e:" + exact))

        async def local() -> None:
            return None

        raw = await self.redis._call(remote, local)
        if raw is None:
            self._forget(exact)
            return None
        return json.loads(raw)

    def _forget(self, exact: str) -> None:
        where = self._where.pop(exact, None)
        if where is not None and where[0] in self._index:
            self._index[where[0]].remove(exact)

    async def _sync(self) -> None:
        """Read the additions made since the last read (by any replica) into the mirror."""

        async def remote(r: Any) -> list:
            out = []
            while True:
                got = await r.xread({self._k("log"): self._last_id}, count=1000)
                rows = got[0][1] if got else []
                out.extend(rows)
                if rows:
                    self._last_id = rows[-1][0]
                if len(rows) < 1000:
                    return out

        async def local() -> list:
            return []

        now = self.clock()
        for _, fields in await self.redis._call(remote, local):
            expires = float(fields["t"])
            if expires <= now:
                continue
            vec = np.frombuffer(base64.b64decode(fields["v"]), dtype=np.int8).astype(np.float32)
            vec /= max(float(np.linalg.norm(vec)), 1e-12)
            self._forget(fields["k"])
            self._index.setdefault(fields["c"], VectorIndex(len(vec))).add(fields["k"], vec)
            self._where[fields["k"]] = (fields["c"], expires)
        # The mirror is bounded like the store: expired and oldest additions leave it.
        if len(self._where) > self.max_entries:
            for exact in list(self._where)[: len(self._where) - self.max_entries]:
                self._forget(exact)

    async def nearest(
        self, context: str, vector: np.ndarray, threshold: float, k: int
    ) -> list[tuple[str, float]]:
        await self._sync()
        index = self._index.get(context)
        if index is None:
            return []
        now = self.clock()
        found = index.nearest(vector, threshold, k)
        for exact, _ in found:
            if self._where.get(exact, ("", 0.0))[1] <= now:
                self._forget(exact)
        return [(e, s) for e, s in found if e in self._where]

    async def put(self, key: CacheKey, vector: np.ndarray | None, entry: dict) -> None:
        now = self.clock()
        raw = json.dumps(entry, ensure_ascii=False)
        ms = max(1, int(self.ttl_s * 1000))

        async def remote(r: Any) -> None:
            async with r.pipeline(transaction=False) as pipe:
                pipe.set(self._k("e:" + key.exact), raw, px=ms)
                pipe.zadd(self._k("order"), {key.exact: now})
                pipe.zremrangebyscore(self._k("order"), "-inf", now - self.ttl_s)
                if vector is not None and key.context is not None:
                    q = np.clip(
                        np.round(vector * 127 / max(np.abs(vector).max(), 1e-12)), -127, 127
                    )
                    pipe.xadd(
                        self._k("log"),
                        {
                            "k": key.exact,
                            "c": key.context,
                            "v": base64.b64encode(q.astype(np.int8).tobytes()).decode(),
                            "t": repr(now + self.ttl_s),
                        },
                        maxlen=self.max_entries,
                        approximate=True,
                    )
                pipe.zcard(self._k("order"))
                results = await pipe.execute()
            excess = int(results[-1]) - self.max_entries
            if excess > 0:  # the oldest entries go
                oldest = await r.zpopmin(self._k("order"), excess)
                if oldest:
                    await r.delete(*[self._k("e:" + e) for e, _ in oldest])

        async def local() -> None:
            return None  # Redis is out: nothing is kept (a miss next time, never an error)

        await self.redis._call(remote, local)

    async def close(self) -> None:
        await self.redis.close()


def open_cache(spec: CacheSpec, policies: Iterable[Any] = ()) -> ResponseCache | None:
    """The cache a config asks for; None when neither `cache.mode` nor any policy's turns it
    on."""
    modes = {spec.mode} | {p.cache.mode for p in policies if p.cache is not None and p.cache.mode}
    return ResponseCache(spec) if modes - {"off"} else None


def open_store(spec: CacheSpec) -> CacheStore:
    if spec.store is None:
        return MemoryCacheStore(spec.ttl_s, spec.max_entries)
    return RedisCacheStore(spec.store, spec.ttl_s, spec.max_entries)


class ResponseCache:
    """Lookups and additions for the SDK (`Router.chat` / `achat`); counts what it served."""

    def __init__(self, spec: CacheSpec, store: CacheStore | None = None) -> None:
        self.spec = spec
        self.store = store if store is not None else open_store(spec)
        self.hits = 0
        self.misses = 0

    async def lookup(
        self, key: CacheKey, vector: np.ndarray | None, semantic: bool, similarity: float
    ) -> Hit | Miss:
        """The exact entry, else (semantic) the nearest one whose question the guard accepts.
        A store that fails is a miss (logged), never an error."""
        try:
            found = await self._lookup(key, vector, semantic, similarity)
        except Exception:  # noqa: BLE001 - the cache is a help, never a cause of failure
            log.warning("cache lookup failed; answering without it", exc_info=True)
            found = Miss()
        if isinstance(found, Hit):
            self.hits += 1
        else:
            self.misses += 1
        return found

    async def _lookup(
        self, key: CacheKey, vector: np.ndarray | None, semantic: bool, similarity: float
    ) -> Hit | Miss:
        entry = await self.store.get(key.exact)
        if entry is not None:
            return Hit(entry, "exact", 1.0)
        if not semantic or key.context is None or key.question is None or vector is None:
            return Miss()
        best: Miss = Miss()
        for exact, sim in await self.store.nearest(key.context, vector, similarity, CANDIDATES):
            entry = await self.store.get(exact)
            if entry is None:
                continue
            why = difference(entry.get("question") or "", key.question)
            if why is None:
                return Hit(entry, "semantic", sim)
            if best.nearest is None:
                best = Miss(round(sim, 4), why)
        return best

    async def put(self, key: CacheKey, vector: np.ndarray | None, entry: dict) -> None:
        try:
            await self.store.put(key, vector if key.context is not None else None, entry)
        except Exception:  # noqa: BLE001
            log.warning("cache entry not stored", exc_info=True)

    async def close(self) -> None:
        await self.store.close()
