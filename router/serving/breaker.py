"""Circuit breakers, one per model: stop calling a model that keeps failing, try it again later.

closed ──(`failures` faults in a row)──► open ──(`cooldown_s` passed)──► half-open
   ▲                                        ▲                               │
   └──────────── the trial call succeeds ───┼───── the trial call fails ────┘

In half-open one trial call at a time goes through; the others are refused as if open. A trial
whose outcome never arrives (its caller was cancelled) frees the slot after another cool-down,
so a lost trial cannot keep a model shut for good. Thread-safe: the SDK's sync chain runs in
worker threads and the async one on the event loop.

Shared between workers and replicas (`state: redis://...`): `BreakerSync` publishes this
process's opens and closes to the shared store and applies the others' every `interval_s`, in
the background. The route path only ever reads local state: no network round trip per request,
and a Redis outage leaves each process with its own breakers, as without Redis.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("router.serving.breaker")

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"


@dataclass
class _State:
    failures: int = 0  # consecutive faults
    opened_at: float | None = None  # None: closed
    trial_at: float | None = None  # when the half-open trial call started
    trips: int = 0  # times opened, ever
    opened_wall: float | None = None  # wall-clock time of the open (compared across hosts)


class Breakers:
    """Per-model breakers. `failures=0` turns them off (every call allowed)."""

    def __init__(
        self,
        failures: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.clock = clock  # injectable so tests need not sleep
        self.wall = wall
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}
        # Called with (model, record) after this process opens or closes a breaker (not after
        # applying another process's record): BreakerSync publishes them. Must not block.
        self.listener: Callable[[str, dict], None] | None = None

    @property
    def enabled(self) -> bool:
        return self.failures > 0

    def _get(self, model: str) -> _State:
        return self._states.setdefault(model, _State())

    def _state_of(self, s: _State, now: float) -> str:
        if s.opened_at is None:
            return CLOSED
        return HALF_OPEN if now - s.opened_at >= self.cooldown_s else OPEN

    def allow(self, model: str) -> bool:
        """May `model` be called now? In half-open this claims the one trial slot."""
        if not self.enabled:
            return True
        with self._lock:
            s, now = self._get(model), self.clock()
            state = self._state_of(s, now)
            if state == CLOSED:
                return True
            if state == OPEN:
                return False
            if s.trial_at is None or now - s.trial_at >= self.cooldown_s:
                s.trial_at = now
                return True
            return False

    def success(self, model: str) -> None:
        """A call answered: close the breaker."""
        if not self.enabled:
            return
        with self._lock:
            s = self._get(model)
            was_open = s.opened_at is not None
            s.failures, s.opened_at, s.trial_at, s.opened_wall = 0, None, None, None
        if was_open:
            self._tell(model, {"closed_at": self.wall()})

    def failure(self, model: str) -> None:
        """A call failed with an upstream fault: count it; open (again) at the threshold."""
        if not self.enabled:
            return
        with self._lock:
            s, now = self._get(model), self.clock()
            s.failures += 1
            if s.opened_at is not None:
                # A failed trial (or a late call that started before the trip): shut again
                # for a full cool-down.
                s.opened_at, s.trial_at = now, None
            elif s.failures >= self.failures:
                s.opened_at, s.trial_at = now, None
                s.trips += 1
            else:
                return
            wall = s.opened_wall = self.wall()
        self._tell(model, {"open_until": wall + self.cooldown_s, "opened_at": wall})

    def _tell(self, model: str, record: dict) -> None:
        if self.listener is not None:
            self.listener(model, record)

    def apply_shared(self, model: str, record: dict | None) -> None:
        """Take another process's record of `model`'s breaker (see `BreakerSync`).

        `{"open_until": t, "opened_at": t0}`: open here too until wall time t (then half-open,
        as if opened here) unless already open for longer. `{"closed_at": t}`: a trial elsewhere
        succeeded; close here if this breaker opened before t. Nothing is told back."""
        if not self.enabled or not record:
            return
        with self._lock:
            s, now, wall = self._get(model), self.clock(), self.wall()
            if "open_until" in record:
                remaining = float(record["open_until"]) - wall
                if remaining <= 0:
                    return  # that cool-down is over: nothing to adopt
                mine = (
                    None
                    if s.opened_at is None
                    else self.cooldown_s - (now - s.opened_at)  # my remaining cool-down
                )
                if mine is None or mine < remaining:
                    s.opened_at = now - max(0.0, self.cooldown_s - remaining)
                    s.trial_at = None
                    s.opened_wall = float(record.get("opened_at", wall))
            elif "closed_at" in record:
                closed_at = float(record["closed_at"])
                if s.opened_at is not None and (s.opened_wall or 0.0) < closed_at:
                    s.failures, s.opened_at, s.trial_at, s.opened_wall = 0, None, None, None

    def release(self, model: str) -> None:
        """A call ended in a way that says nothing about health: free a claimed trial slot."""
        if not self.enabled:
            return
        with self._lock:
            s = self._states.get(model)
            if s is not None:
                s.trial_at = None

    def retry_after(self, model: str) -> float:
        """Seconds until `model` may be tried again (0 when it may be now)."""
        with self._lock:
            s = self._states.get(model)
            if s is None or s.opened_at is None:
                return 0.0
            return max(0.0, self.cooldown_s - (self.clock() - s.opened_at))

    def snapshot(self) -> dict[str, dict]:
        """{model: {state, failures, trips}} for every model seen (for /ready and /metrics)."""
        with self._lock:
            now = self.clock()
            return {
                m: {"state": self._state_of(s, now), "failures": s.failures, "trips": s.trips}
                for m, s in sorted(self._states.items())
            }


class BreakerSync:
    """Keeps one process's `Breakers` in step with the other workers and replicas through a
    shared `StateStore` (router/serving/state.py), every `interval_s` in the background.

    Each breaker's latest open or close is one key, `breaker:<model>`, holding
    `{"open_until", "opened_at", "by"}` or `{"closed_at", "by"}` (wall-clock times), expiring
    a while after it stops mattering. This process's own changes are queued by the breakers'
    listener (no I/O on the request path) and written first; then every model's key is read
    and applied. A store error ends one round, never the loop.
    """

    def __init__(
        self,
        breakers: Breakers,
        store: Any,
        models: Iterable[str] | Callable[[], Iterable[str]],
        interval_s: float = 0.5,
        replica: str | None = None,
    ) -> None:
        self.breakers = breakers
        self.store = store
        # A callable is asked every round: a hot reload may change the catalogue.
        self._models = models if callable(models) else tuple(models)
        self.interval_s = interval_s
        # Who wrote a record: its own records are not applied back. Unique per sync, even for
        # two apps in one process.
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # The latest record per model not yet in the store (a later one replaces it).
        self._pending: dict[str, dict] = {}
        self._task: asyncio.Task | None = None
        self.rounds = 0  # completed sync rounds (for tests and /ready)
        breakers.listener = self._queue

    def _queue(self, model: str, record: dict) -> None:
        self._pending[model] = {**record, "by": self.replica}

    def _ttl(self, record: dict) -> float:
        # An open record matters until its cool-down ends; a close, until every open it
        # could answer has ended. Then Redis forgets it.
        if "open_until" in record:
            return max(1.0, record["open_until"] - self.breakers.wall()) + self.breakers.cooldown_s
        return 2 * self.breakers.cooldown_s + 60

    async def sync_once(self) -> None:
        """Publish this process's changes, then apply everyone's."""
        for model, record in list(self._pending.items()):
            # A RedisStore serves a call in process when Redis does not answer: then the
            # record is not shared yet, and stays pending for the next round.
            served_locally = getattr(self.store, "fallbacks", 0)
            await self.store.set(f"breaker:{model}", record, ttl_s=self._ttl(record))
            if getattr(self.store, "fallbacks", 0) != served_locally:
                break
            if self._pending.get(model) is record:
                del self._pending[model]
        models = list(self._models() if callable(self._models) else self._models)
        records = await asyncio.gather(*(self.store.get(f"breaker:{m}") for m in models))
        for model, record in zip(models, records, strict=True):
            if isinstance(record, dict) and record.get("by") != self.replica:
                self.breakers.apply_shared(model, record)
        self.rounds += 1

    async def run(self) -> None:
        """Sync every `interval_s` until cancelled."""
        while True:
            try:
                await self.sync_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001  (one failed round must not end the loop)
                log.warning("breaker sync round failed", exc_info=True)
            await asyncio.sleep(self.interval_s)

    def start(self) -> asyncio.Task:
        """Run in the background on the running event loop (the proxy's lifespan)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="breaker-sync")
        return self._task

    async def stop(self) -> None:
        """Stop the loop; publish what is still queued (best effort)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        try:
            await asyncio.wait_for(self.sync_once(), 5)
        except Exception:  # noqa: BLE001  (shutting down: the store may be gone)
            pass
        if self.breakers.listener == self._queue:
            self.breakers.listener = None
