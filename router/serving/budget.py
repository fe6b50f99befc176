"""Budget controller: move a policy's escalation threshold to hold a large-model share or a spend.

A policy with `budget: {large_share: 0.3}` (or `{usd_per_hour: 2.0}`) gets one
`BudgetController`. The policy stays a pure function: the controller only supplies the
threshold it should use (`max_gain`, or `max_difficulty` when the policy has no gain threshold)
as an input to the decision, and is told what was decided.

The control law, evaluated at most every `UPDATE_S` seconds, never on an I/O path:

1. **Feedforward.** Over the sliding window the controller remembers each decision's escalation
   score and whether the threshold could have changed it (large for another reason: *forced*;
   left cheap whatever the score: *fixed*; otherwise *movable*). The threshold is the quantile
   of the movable scores that would have sent the target share to the large tier. After a
   shift in traffic this follows the new score distribution as the window fills with it.
2. **Feedback with hysteresis.** The share measured over the window (all replicas, via the
   shared store) is compared with the target; a persistent error is integrated into a bias on
   the share the feedforward aims at. Integration starts when the error leaves a band of
   `hysteresis` points and stops once it is back within half of it, so the threshold does not
   chase noise.

For `usd_per_hour`, the window's request rate and mean cheap and large cost turn the spend
target into a share target, and the spend error into a share error.

Counters live in the shared `StateStore` (router/serving/state.py) as time buckets
`budget:<policy>:<bucket>:<field>` incremented by every replica. The hot path touches only
local memory: `sync()` (a periodic task in the proxy) pushes this process's counts and pulls the
window's totals. Without a sync (the SDK alone, or a store outage) the controller runs on this
process's own counts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from router.core.config import Budget, Escalation, Policy
from router.core.decision import Decision

log = logging.getLogger("router.serving.budget")

BUCKETS = 20  # a window is this many time buckets in the shared store
UPDATE_S = 1.0  # control steps at most this often
MIN_SAMPLES = 50  # before this many decisions in the window the policy's threshold serves
RECENT_MAX = 20_000  # decisions the control step replays (the latest, within the window)
FIELDS = ("n", "large", "usd")
# Aim this many share points off target per point the window is off (and at most MAX_PUSH).
PROPORTIONAL_GAIN = 3.0
MAX_PUSH = 0.2
FULL_GAIN_AT = 500  # decisions in the window
# Forced: large whatever the threshold; fixed: cheap whatever the threshold; movable: the
# threshold decided.
FORCED, FIXED, MOVABLE = 0, 1, 2


def threshold_field(policy: Policy) -> str:
    """The escalation threshold a budget moves: the gain threshold, else the difficulty one."""
    return "max_gain" if policy.escalation.max_gain is not None else "max_difficulty"


@dataclass
class _Totals:
    n: float = 0.0
    large: float = 0.0
    usd: float = 0.0

    def add(self, other: _Totals) -> _Totals:
        return _Totals(self.n + other.n, self.large + other.large, self.usd + other.usd)


class _Ring:
    """The latest `capacity` decisions as column arrays (no per-decision objects)."""

    FIELDS = ("t", "score", "kind", "used", "large", "cost", "large_cost")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.cols = {f: np.zeros(capacity) for f in self.FIELDS}
        self.cols["large"] = np.zeros(capacity, dtype=bool)
        self.size = 0
        self.next = 0

    def append(self, *values) -> None:
        i = self.next
        for f, v in zip(self.FIELDS, values, strict=True):
            self.cols[f][i] = v
        self.next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def since(self, horizon: float) -> dict[str, np.ndarray]:
        """Copies of the columns for the decisions at or after `horizon`."""
        keep = self.cols["t"][: self.size] >= horizon
        return {f: c[: self.size][keep] for f, c in self.cols.items()}


class BudgetController:
    """Holds one policy's large share (or spend) over a sliding window by moving its threshold.

    Thread-safe; `threshold()` and `observe()` are the hot path (memory only), `sync()` is the
    only coroutine and the only place that touches the store.
    """

    def __init__(
        self,
        policy: Policy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if policy.budget is None:
            raise ValueError(f"policy {policy.name!r} has no budget")
        self.policy_name = policy.name
        self.spec: Budget = policy.budget
        self.field = threshold_field(policy)
        self.base_threshold = float(getattr(policy.escalation, self.field))
        self.clock = clock
        self.bucket_s = self.spec.window_s / BUCKETS
        self._lock = threading.Lock()
        self._threshold = self.base_threshold
        self._escalation: tuple[float, Escalation] | None = None
        self._bias = 0.0
        self._started: float | None = None  # the first observation
        self._last_update = -math.inf
        # The window's decisions (at most RECENT_MAX of the latest), for the control step.
        self._recent = _Ring(RECENT_MAX)
        self._updating = threading.Lock()  # one control step at a time; others skip
        self._local: dict[int, _Totals] = {}  # this process's counts per bucket
        self._pending: dict[int, _Totals] = {}  # counts not yet pushed to the store
        self._shared: _Totals | None = None  # window totals of every replica, at last sync
        self._shared_at = -math.inf
        self._sync_failed = False
        self.sync_error: Exception | None = None  # the error that began a failed sync, once
        self.measured_share: float | None = None
        self.measured_usd_per_hour: float | None = None
        self.window_requests = 0
        self.adjustments = 0  # times the threshold was re-aimed

    # ---- hot path ---------------------------------------------------------------------------

    def threshold(self) -> float:
        """The threshold the policy should use now."""
        return self._threshold

    def escalation(self, policy: Policy) -> Escalation:
        """The policy's escalation settings with the controller's threshold in place."""
        t = self._threshold
        cached = self._escalation
        if cached is None or cached[0] != t:
            cached = self._escalation = (t, policy.escalation.model_copy(update={self.field: t}))
        return cached[1]

    def record(self, decision: Decision, escalation: Escalation | None) -> None:
        """Observe a decision made with `escalation` and put the controller's state on it."""
        esc = escalation
        t = getattr(esc, self.field) if esc is not None else self._threshold
        score = decision.gain if self.field == "max_gain" else decision.difficulty
        large = decision.tier == "large"
        kind = None
        if large and score is not None and score > t and esc is not None:
            # Over the threshold, but the policy would have escalated it anyway: forced.
            conf = decision.domain_confidence
            low_conf = conf is not None and conf < esc.min_domain_confidence
            hard = (
                self.field == "max_gain"
                and decision.difficulty is not None
                and decision.difficulty > esc.max_difficulty
            )
            if low_conf or hard:
                kind = FORCED
        self.observe(
            score, large, t, decision.cost_estimate, decision.large_cost_estimate, kind=kind
        )
        decision.budget = self.snapshot()

    def observe(
        self,
        score: float | None,
        large: bool,
        threshold: float,
        cost: float = 0.0,
        large_cost: float = 0.0,
        now: float | None = None,
        kind: int | None = None,
    ) -> None:
        """One decision made with `threshold`: its escalation score, whether it went large, and
        its estimated cost and the counterfactual cost on the large model (USD). `kind`
        (FORCED, FIXED, MOVABLE) when the caller knows it; else it is inferred."""
        now = self.clock() if now is None else now
        if kind is None:
            if score is None or (large and score <= threshold):
                kind = FORCED if large else FIXED
            elif not large and score > threshold:
                kind = FIXED  # over the threshold yet cheap: the threshold did not apply
            else:
                kind = MOVABLE
        bucket = int(now // self.bucket_s)
        with self._lock:
            if self._started is None:
                self._started = now
            self._recent.append(
                now, -1.0 if score is None else score, kind, threshold, large, cost, large_cost
            )
            for counts in (self._local, self._pending):
                t = counts.setdefault(bucket, _Totals())
                t.n += 1
                t.large += 1 if large else 0
                t.usd += cost
            due = now - self._last_update >= UPDATE_S
        if due:
            self.update(now)

    # ---- the control step -------------------------------------------------------------------

    def _shared_totals(self, now: float) -> _Totals | None:
        """Every replica's window totals (last sync plus what is not pushed yet), if fresh."""
        fresh = now - self._shared_at <= max(5 * self.spec.sync_s, 2 * UPDATE_S)
        if self._shared is None or not fresh:
            return None
        first = int(now // self.bucket_s) - BUCKETS + 1
        total = self._shared
        for b, t in self._pending.items():
            if b >= first:
                total = total.add(t)
        return total

    def update(self, now: float | None = None) -> float:
        """One control step: measure the window, re-aim the threshold if the share left the band.

        The window is copied under the lock (a few arrays); the arithmetic runs outside it, so
        decisions being recorded meanwhile never wait for it."""
        now = self.clock() if now is None else now
        if not self._updating.acquire(blocking=False):
            return self._threshold  # another thread is taking this step
        try:
            with self._lock:
                dt = min(max(now - self._last_update, 0.0), self.spec.window_s)
                self._last_update = now
                first = int(now // self.bucket_s) - BUCKETS + 1
                for b in [b for b in self._local if b < first]:
                    del self._local[b]
                rec = self._recent.since(now - self.spec.window_s)
                shared = self._shared_totals(now)
                started = self._started if self._started is not None else now
            return self._step(now, dt, rec, shared, started)
        finally:
            self._updating.release()

    def _step(self, now: float, dt: float, rec: dict, shared, started: float) -> float:
        scores, kinds, used, large = rec["score"], rec["kind"], rec["used"], rec["large"]
        cost, large_cost = rec["cost"], rec["large_cost"]
        n = len(scores)
        if n == 0:
            self.window_requests = 0
            return self._threshold
        span_h = max(min(self.spec.window_s, now - started), self.bucket_s) / 3600
        local = _Totals(n, float(large.sum()), float(cost.sum()))
        totals = shared if shared is not None and shared.n > 0 else local
        self.window_requests = int(totals.n)
        self.measured_share = totals.large / totals.n
        self.measured_usd_per_hour = totals.usd / span_h
        target, measured = self._in_share_units(totals, local, span_h, cost, large_cost, large)
        if n < MIN_SAMPLES:  # measured and shown, but too few to move the threshold on
            return self._threshold
        # Feedback: how far the fleet's share is from what this replica's own decisions
        # predict (other replicas, decisions the classification got wrong). Smoothed over
        # about a window; the feedforward then aims that much the other way.
        movable = kinds == MOVABLE
        forced = int((kinds == FORCED).sum())
        self_share = (forced + int((movable & (scores > used)).sum())) / n
        mismatch = measured - self_share
        alpha = min(1.0, dt / self.spec.window_s)
        self._bias += alpha * (-mismatch - self._bias)
        # Proportional feedback on the window's share: decisions still to come make up for
        # the window's excess or shortfall (sampling noise, a shift in traffic).
        # Ramped in with the window's size: a short window's share is mostly noise.
        gain = PROPORTIONAL_GAIN * min(1.0, totals.n / FULL_GAIN_AT)
        push = float(np.clip(gain * (target - measured), -MAX_PUSH, MAX_PUSH))
        aim = float(np.clip(target + self._bias + push, 0.0, 1.0))
        # Hysteresis: the threshold moves only when, replayed on the window, it would miss
        # the aim by more than the band; it then re-aims at the middle of the band.
        t = self._threshold
        predicted = (forced + int((movable & (scores > t)).sum())) / n
        if abs(predicted - aim) > self.spec.hysteresis:
            self._threshold = self._feedforward(aim, scores, kinds)
            self.adjustments += 1
        return self._threshold

    def _in_share_units(self, totals, local, span_h, cost, large_cost, large):
        """(target share, measured share): a spend target is turned into the share that would
        spend it, at the window's request rate and mean cheap and large cost."""
        if self.spec.large_share is not None:
            return self.spec.large_share, totals.large / totals.n
        rate = totals.n / span_h
        cheap = float(cost[~large].mean()) if (~large).any() else 0.0
        spread = max(float(large_cost.mean()) - cheap, 1e-12)
        target = (self.spec.usd_per_hour / rate - cheap) / spread
        measured = (totals.usd / totals.n - cheap) / spread
        return float(np.clip(target, 0.0, 1.0)), float(measured)

    def _feedforward(self, aim: float, scores, kinds) -> float:
        """The threshold that would have sent share `aim` of the window's decisions large."""
        n = len(kinds)
        forced = int((kinds == FORCED).sum())
        movable = np.sort(scores[kinds == MOVABLE])
        if len(movable) == 0:
            return self._threshold
        # How many movable decisions should go large; the threshold sits between the k-th
        # highest score and the next one down.
        k = int(round(np.clip(aim * n - forced, 0, len(movable))))
        if k <= 0:
            return 1.0
        if k >= len(movable):
            return 0.0
        return float((movable[-k - 1] + movable[-k]) / 2)

    # ---- shared state -----------------------------------------------------------------------

    def _key(self, bucket: int, field: str) -> str:
        return f"budget:{self.policy_name}:{bucket}:{field}"

    async def sync(self, store: Any | None, now: float | None = None) -> bool:
        """Push this process's counts to `store` (a StateStore) and read the window's totals
        back. Returns False (and keeps counting locally) when there is no store or it fails."""
        if store is None:
            return False
        if hasattr(store, "shared_only"):
            # A RedisStore serves a call in process while Redis is out: counts pushed there
            # would never reach the other replicas, and the totals read back would be this
            # process's outage-time counts alone. Fail instead: they stay pending.
            store = store.shared_only()
        now = self.clock() if now is None else now
        with self._lock:
            pending, self._pending = self._pending, {}
        ttl = self.spec.window_s + 2 * self.bucket_s
        try:
            for bucket, t in pending.items():
                for f in FIELDS:
                    v = getattr(t, f)
                    if v:
                        await store.incr(self._key(bucket, f), v, ttl_s=ttl)
                        # Sent: an outage later in this loop must not put it back (it would
                        # be counted twice once the store answers again).
                        setattr(t, f, 0.0)
            pending = {}
            last = int(now // self.bucket_s)
            keys = [self._key(b, f) for b in range(last - BUCKETS + 1, last + 1) for f in FIELDS]
            values = await asyncio.gather(*(store.get(k) for k in keys))
        except Exception as e:  # noqa: BLE001 - an outage must never reach a request
            with self._lock:
                # Put unsent counts back so they are not lost; merged with new ones.
                for b, t in pending.items():
                    self._pending[b] = self._pending.get(b, _Totals()).add(t)
            # Said by `Budgets.sync`, once for every controller an outage stops.
            self.sync_error = None if self._sync_failed else e
            self._sync_failed = True
            return False
        totals = _Totals()
        for i, v in enumerate(values):
            if v is not None:
                f = FIELDS[i % len(FIELDS)]
                setattr(totals, f, getattr(totals, f) + float(v))
        with self._lock:
            self._shared, self._shared_at = totals, now
            self._sync_failed = False
        return True

    # ---- what receipts and metrics show -------------------------------------------------------

    def target(self) -> dict[str, float]:
        if self.spec.large_share is not None:
            return {"large_share": self.spec.large_share}
        return {"usd_per_hour": float(self.spec.usd_per_hour or 0.0)}

    def snapshot(self) -> dict[str, Any]:
        """The controller's state, as receipts and /metrics show it."""
        share = self.measured_share
        spend = self.measured_usd_per_hour
        return {
            "target": self.target(),
            "threshold_field": self.field,
            "threshold": round(self._threshold, 6),
            "policy_threshold": self.base_threshold,
            "large_share": None if share is None else round(share, 4),
            "usd_per_hour": None if spend is None else round(spend, 6),
            "window_s": self.spec.window_s,
            "window_requests": self.window_requests,
            "adjustments": self.adjustments,
            "shared": self._shared is not None and not self._sync_failed,
        }


class Budgets:
    """The controllers of every policy with a budget, and their periodic sync task."""

    def __init__(self, policies: dict[str, Policy], clock=time.time) -> None:
        self.controllers = {
            name: BudgetController(p, clock) for name, p in policies.items() if p.budget is not None
        }
        self.sync_s = min((c.spec.sync_s for c in self.controllers.values()), default=1.0)

    def get(self, policy: str) -> BudgetController | None:
        return self.controllers.get(policy)

    def adopt(self, old: Budgets | None) -> Budgets:
        """Keep the running state of controllers whose policy budget is unchanged (hot reload)."""
        if old is None:
            return self
        for name, c in list(self.controllers.items()):
            prev = old.controllers.get(name)
            if (
                prev is not None
                and prev.spec == c.spec
                and prev.field == c.field
                and prev.base_threshold == c.base_threshold
            ):
                self.controllers[name] = prev
        return self

    def __bool__(self) -> bool:
        return bool(self.controllers)

    async def sync(self, store: Any | None) -> None:
        began: list[str] = []  # the controllers whose sync has just begun to fail
        error: Exception | None = None
        for name, c in list(self.controllers.items()):
            c.sync_error = None
            await c.sync(store)
            if c.sync_error is not None:
                began.append(name)
                error = c.sync_error
            c.update()
        if began:
            # One line for an outage, however many policies have a budget (the store says
            # the outage itself too).
            log.warning(
                "budgets of %s: shared state unavailable (%s); their counts wait in this "
                "process until it answers",
                ", ".join(began),
                error,
            )

    async def run(self, store: Any | None) -> None:
        """Sync with `store` every `sync_s` seconds until cancelled (the proxy's lifespan)."""
        while True:
            await asyncio.sleep(self.sync_s)
            try:
                await self.sync(store)
            except Exception:  # noqa: BLE001 - never let the loop die
                log.exception("budget sync failed")
