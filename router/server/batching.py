"""Concurrent requests' encoder calls: at most `lanes` at once, taken in arrival order, each
request answered as soon as its own call ends.

`Router.achat` routes in worker threads; each calls `encoder.encode([text])`. A caller that finds
a lane free encodes at once. Otherwise it waits in line, and a caller whose call ends hands its
lane to the first in line, so nobody waits behind a request that came later. Where the encoder
shares calls (`batch` > 1, measured at start-up: router/core/autotune.py) the caller takes into
its call the texts already waiting behind it, up to `batch`; it never waits for more to come.
There is no leader that works through the line for others: the old one returned its own
vector only when the whole burst behind it was encoded, which made the proxy's tail.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np


class _Job:
    __slots__ = ("texts", "turn", "done", "result", "error")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.turn = threading.Event()  # set: it holds a lane now, or its call is done
        self.done = False
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None

    def outcome(self) -> np.ndarray:
        if self.error is not None:
            raise self.error
        return self.result


class BatchingEncoder:
    """Wraps an encoder; same `encode()` contract, same identity. `lanes` and `batch` default
    to the encoder's measured plan (`encoder.plan`), else one call at a time, one text each."""

    def __init__(self, inner: Any, lanes: int | None = None, batch: int | None = None) -> None:
        plan = getattr(inner, "plan", None)
        self.inner = inner
        self.lanes = max(1, lanes or (plan.lanes if plan is not None else 1))
        self.batch = max(1, batch or (plan.batch if plan is not None else 1))
        self._lock = threading.Lock()
        self._free = self.lanes
        self._waiting: deque[_Job] = deque()
        self.calls = 0  # encoder calls made (for tests and curiosity)

    def __getattr__(self, name: str) -> Any:  # identity, dim, cache, plan ...
        return getattr(self.inner, name)

    @property
    def waiting(self) -> int:
        """Callers in line for a lane."""
        return len(self._waiting)

    def encode(self, texts: Sequence[str], *args: Any, **kwargs: Any) -> np.ndarray:
        if args or kwargs:  # progress bars, batch sizes: a bulk caller, not a request
            return self.inner.encode(texts, *args, **kwargs)
        job = _Job(list(texts))
        with self._lock:
            queued = not self._free or bool(self._waiting)
            if queued:
                self._waiting.append(job)
            else:
                self._free -= 1
        if queued:
            job.turn.wait()
            if job.done:  # encoded in the call of a caller ahead of it
                return job.outcome()
        try:
            with self._lock:
                batch = self._take(job)
            self._run(batch)
        finally:
            self._pass_lane()
        return job.outcome()

    def _take(self, job: _Job) -> list[_Job]:
        """The caller's own texts, then those of the callers waiting longest, up to `batch`."""
        batch, size = [job], len(job.texts)
        while self._waiting and size + len(self._waiting[0].texts) <= self.batch:
            other = self._waiting.popleft()
            batch.append(other)
            size += len(other.texts)
        return batch

    def _run(self, batch: list[_Job]) -> None:
        try:
            self.calls += 1
            X = self.inner.encode([t for j in batch for t in j.texts])
            row = 0
            for j in batch:
                j.result = X[row : row + len(j.texts)]
                row += len(j.texts)
        except BaseException as e:  # noqa: BLE001 - every caller of the call must wake up
            for j in batch:
                j.error = e
        for j in batch:
            j.done = True
        for j in batch[1:]:
            j.turn.set()

    def _pass_lane(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().turn.set()  # the lane passes on, never freed between
            else:
                self._free += 1


def install(router: Any) -> BatchingEncoder:
    """Wrap `router.encoder` once (several apps may share a router)."""
    if not isinstance(router.encoder, BatchingEncoder):
        router.encoder = BatchingEncoder(router.encoder)
    return router.encoder
