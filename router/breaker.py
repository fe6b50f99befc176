"""Circuit breakers, one per model: stop calling a model that keeps failing, try it again later.

closed ──(`failures` faults in a row)──► open ──(`cooldown_s` passed)──► half-open
   ▲                                        ▲                               │
   └──────────── the trial call succeeds ───┼───── the trial call fails ────┘

In half-open one trial call at a time goes through; the others are refused as if open. A trial
whose outcome never arrives (its caller was cancelled) frees the slot after another cool-down,
so a lost trial cannot keep a model shut for good. Thread-safe: the SDK's sync chain runs in
worker threads and the async one on the event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"


@dataclass
class _State:
    failures: int = 0  # consecutive faults
    opened_at: float | None = None  # None: closed
    trial_at: float | None = None  # when the half-open trial call started
    trips: int = 0  # times opened, ever


class Breakers:
    """Per-model breakers. `failures=0` turns them off (every call allowed)."""

    def __init__(
        self,
        failures: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.clock = clock  # injectable so tests need not sleep
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}

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
            s.failures, s.opened_at, s.trial_at = 0, None, None

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
