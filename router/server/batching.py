"""Concurrent requests' encoder and scorer calls: at most `lanes` calls at once, taken in
arrival order, each request answered as soon as its own call ends.

`Router.achat` routes in worker threads; each calls `encoder.encode([text])`, then
`scorer.predict(X, [text])`. A caller that finds a lane free calls at once. Otherwise it waits
in line, and a caller whose call ends hands its lane to the first in line, so nobody waits
behind a request that came later. Where calls can be shared (`batch` > 1) the caller takes
into its call what is already waiting behind it, up to `batch`; it never waits for more to
come. There is no leader working through the line for others: the old one returned its own
vector only once the whole burst behind it was encoded, which made the proxy's tail.

- The encoder: `lanes` and `batch` as measured at start-up (router/core/autotune.py);
  minilm-l2-q8 and minilm-q8 encode one text per call (`batch` 1), so a request waits only for
  the calls ahead of it.
- The scorer: one call at a time, up to 64 rows. Its cost is mostly one pass over the kNN
  memory, the same for 1 row or 8 (2.1 ms against 4.3 ms measured): rows that are waiting
  anyway share it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

SCORER_BATCH = 64  # rows per scorer call (the scorer runs up to this many on one BLAS thread)


class _Job:
    __slots__ = ("size", "args", "turn", "done", "result", "error")

    def __init__(self, size: int, args: Any) -> None:
        self.size = size
        self.args = args
        self.turn = threading.Event()  # set: it holds a lane now, or its call is done
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class CallLine:
    """At most `lanes` calls of `run(jobs)` at once; callers in arrival order; a call takes
    its caller's job and the jobs waiting longest, up to `batch` in size."""

    def __init__(self, run: Callable[[list[_Job]], None], lanes: int, batch: int) -> None:
        self._run_jobs = run
        self.lanes = max(1, lanes)
        self.batch = max(1, batch)
        self._lock = threading.Lock()
        self._free = self.lanes
        self._waiting: deque[_Job] = deque()
        self.calls = 0  # calls made (for tests and curiosity)

    @property
    def waiting(self) -> int:
        """Callers in line for a lane."""
        return len(self._waiting)

    def call(self, size: int, args: Any) -> Any:
        job = _Job(size, args)
        with self._lock:
            queued = not self._free or bool(self._waiting)
            if queued:
                self._waiting.append(job)
            else:
                self._free -= 1
        if queued:
            job.turn.wait()
            if job.done:  # it shared the call of a caller ahead of it
                return job.outcome()
        try:
            with self._lock:
                jobs = self._take(job)
            self._run(jobs)
        finally:
            self._pass_lane()
        return job.outcome()

    def _take(self, job: _Job) -> list[_Job]:
        jobs, size = [job], job.size
        while self._waiting and size + self._waiting[0].size <= self.batch:
            other = self._waiting.popleft()
            jobs.append(other)
            size += other.size
        return jobs

    def _run(self, jobs: list[_Job]) -> None:
        try:
            self.calls += 1
            self._run_jobs(jobs)
        except BaseException as e:  # noqa: BLE001 - every caller of the call must wake up
            for j in jobs:
                j.error = e
        for j in jobs:
            j.done = True
        for j in jobs[1:]:
            j.turn.set()

    def _pass_lane(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().turn.set()  # the lane passes on, never freed between
            else:
                self._free += 1


class BatchingEncoder:
    """Wraps an encoder; same `encode()` contract, same identity. `lanes` and `batch` default
    to the encoder's measured plan (`encoder.plan`), else one call at a time, one text each."""

    def __init__(self, inner: Any, lanes: int | None = None, batch: int | None = None) -> None:
        plan = getattr(inner, "plan", None)
        self.inner = inner
        self._line = CallLine(
            self._encode,
            lanes or (plan.lanes if plan is not None else 1),
            batch or (plan.batch if plan is not None else 1),
        )

    def __getattr__(self, name: str) -> Any:  # identity, dim, cache, plan ...
        return getattr(self.inner, name)

    lanes = property(lambda self: self._line.lanes)
    batch = property(lambda self: self._line.batch)
    waiting = property(lambda self: self._line.waiting)
    calls = property(lambda self: self._line.calls)

    def encode(self, texts: Sequence[str], *args: Any, **kwargs: Any) -> np.ndarray:
        if args or kwargs:  # progress bars, batch sizes: a bulk caller, not a request
            return self.inner.encode(texts, *args, **kwargs)
        texts = list(texts)
        # Cached texts need no lane (the decision log's writer asks for every routed text).
        hit = self.inner.cached(texts) if hasattr(self.inner, "cached") else None
        if hit is not None:
            return hit
        return self._line.call(len(texts), texts)

    def _encode(self, jobs: list[_Job]) -> None:
        X = self.inner.encode([t for j in jobs for t in j.args])
        row = 0
        for j in jobs:
            j.result = X[row : row + j.size]
            row += j.size


class BatchingScorer:
    """Wraps a scorer; same `predict()` contract. One call at a time; the rows waiting when it
    ends share the next (up to SCORER_BATCH)."""

    def __init__(self, inner: Any, batch: int = SCORER_BATCH) -> None:
        self.inner = inner
        self._line = CallLine(self._predict, 1, batch)

    def __getattr__(self, name: str) -> Any:  # domains_, models_, heads_ ...
        return getattr(self.inner, name)

    waiting = property(lambda self: self._line.waiting)
    calls = property(lambda self: self._line.calls)

    def predict(self, X: np.ndarray, texts: Sequence[str]):
        X = np.atleast_2d(np.asarray(X))
        texts = list(texts)
        if len(X) >= self._line.batch:  # a bulk caller: nothing to share
            return self.inner.predict(X, texts)
        return self._line.call(len(X), (X, texts))

    def _predict(self, jobs: list[_Job]) -> None:
        if len(jobs) == 1:
            jobs[0].result = self.inner.predict(*jobs[0].args)
            return
        X = np.concatenate([np.asarray(j.args[0], dtype=np.float64) for j in jobs])
        out = self.inner.predict(X, [t for j in jobs for t in j.args[1]])
        row = 0
        for j in jobs:
            rows = slice(row, row + j.size)
            j.result = replace(
                out,
                domain_probs=out.domain_probs[rows],
                difficulty=out.difficulty[rows],
                gain=out.gain[rows],
                success=out.success[rows],
                evidence=None if out.evidence is None else out.evidence[rows],
            )
            row += j.size


def install(router: Any) -> BatchingEncoder:
    """Wrap `router.encoder` and `router.scorer` once (several apps may share a router)."""
    if not isinstance(router.encoder, BatchingEncoder):
        router.encoder = BatchingEncoder(router.encoder)
    if not isinstance(router.scorer, BatchingScorer):
        router.scorer = BatchingScorer(router.scorer)
    return router.encoder
