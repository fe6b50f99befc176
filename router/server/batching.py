"""Micro-batching of routing: the texts of concurrent requests go to the encoder in one call.

`Router.achat` routes in worker threads; each calls `encoder.encode([text])`. This wrapper lets
the first caller become the leader: it encodes everything that queued up meanwhile in one call,
hands each caller its rows, and repeats until the queue is empty. There is no waiting window
(nothing timing-based): batches form only while the encoder is already busy, so a lone request
pays nothing and a burst shares one encoder call instead of contending for the cores.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np


class _Job:
    __slots__ = ("texts", "done", "result", "error")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.done = threading.Event()
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None


class BatchingEncoder:
    """Wraps an encoder; same `encode()` contract, same identity, shared work."""

    def __init__(self, inner: Any, max_batch: int = 64) -> None:
        self.inner = inner
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Job] = []
        self._leading = False
        self.calls = 0  # encoder calls made (for tests and curiosity)

    def __getattr__(self, name: str) -> Any:  # identity, dim, cache ...
        return getattr(self.inner, name)

    def encode(self, texts: Sequence[str], *args: Any, **kwargs: Any) -> np.ndarray:
        if args or kwargs:  # progress bars, batch sizes: a bulk caller, not a request
            return self.inner.encode(texts, *args, **kwargs)
        job = _Job(list(texts))
        with self._lock:
            self._queue.append(job)
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def _lead(self) -> None:
        while True:
            with self._lock:
                batch, size = [], 0
                while self._queue and (
                    not batch or size + len(self._queue[0].texts) <= self.max_batch
                ):
                    job = self._queue.pop(0)
                    batch.append(job)
                    size += len(job.texts)
                if not batch:
                    self._leading = False
                    return
            try:
                self.calls += 1
                X = self.inner.encode([t for j in batch for t in j.texts])
                row = 0
                for j in batch:
                    j.result = X[row : row + len(j.texts)]
                    row += len(j.texts)
            except BaseException as e:  # noqa: BLE001 - every waiting caller must wake up
                for j in batch:
                    j.error = e
            for j in batch:
                j.done.set()


def install(router: Any) -> BatchingEncoder:
    """Wrap `router.encoder` once (several apps may share a router)."""
    if not isinstance(router.encoder, BatchingEncoder):
        router.encoder = BatchingEncoder(router.encoder)
    return router.encoder
