"""The figures of a time window of the decision log: what `GET /admin/stats`, the dashboard and
`router stats` show.

Everything is read from the log (SQLite or PostgreSQL), never from one process's memory, so
the figures are the same whichever worker or replica answers. The cost stays bounded on a
busy log:

- the window is cut into time buckets (`bucket_step`); the database aggregates each bucket by
  model, tier and domain (one row per group comes back, not one per request);
- a `LogReader` keeps the aggregates of settled buckets (ended `settle_s` ago) and re-reads only
  the newest ones; one count over the `ts` index per call tells whether rows arrived late (a
  buffered outage) or were removed (retention), and only such buckets are read again;
- percentiles, feedback, shadow verdicts and drift read at most `sample` (or the drift window)
  of the window's newest rows;
- `figures(max_age=...)` answers from its last result while it is that fresh.

On a 200,000-row hour of SQLite log a full read takes seconds; a refresh takes tens of ms.
The shape of the result is documented in docs/dashboard.md.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from router.core.drift import DriftMonitor
from router.serving.decision_log.reading import _read_engine
from router.serving.decision_log.schema import decisions, outcomes

# Rows of POST /v1/route and Router.route(): no model was called, nothing was spent.
ROUTE_KINDS = ("route", "sdk.route")
# Latency histogram: upper edges in ms (the last bucket is everything slower).
LATENCY_EDGES_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
# Time-series bucket widths, seconds: the smallest that gives at most MAX_BUCKETS buckets.
BUCKET_STEPS_S = (10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 72
MAX_WINDOW_S = 400 * 86400  # "since" longer than this is refused (a typo, not a question)
Z95 = 1.959964  # two-sided 95% normal quantile, for Wilson intervals
CASCADE_FIELDS = ("n", "judged", "escalated", "unchecked", "large", "first_failed")

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str) -> float:
    """A window length: "90s", "15m", "1h", "7d", "2w" (a bare number is seconds) → seconds.

    Raises ValueError naming what was wrong."""
    m = _SINCE.match(str(text))
    if not m:
        raise ValueError(f"since: {text!r} is not a duration; write e.g. 15m, 1h, 24h or 7d")
    seconds = float(m.group(1)) * _UNIT_S[(m.group(2) or "s").lower()]
    if seconds <= 0:
        raise ValueError(f"since: {text!r} must be longer than zero")
    if seconds > MAX_WINDOW_S:
        raise ValueError(f"since: {text!r} is longer than {MAX_WINDOW_S // 86400} days")
    return seconds


def bucket_step(seconds: float) -> int:
    """The time-series bucket width for a window of this length: at most MAX_BUCKETS."""
    for step in BUCKET_STEPS_S:
        if seconds / step <= MAX_BUCKETS:
            return step
    return 86400 * math.ceil(seconds / MAX_BUCKETS / 86400)  # whole days


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (successes may be fractional: mean scores)."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(0.0, p * (1 - p)) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def percentiles(values: Sequence[float], ps: Sequence[int] = (50, 90, 99)) -> dict[str, float]:
    """Nearest-rank percentiles of `values` (as `router stats` has always printed them)."""
    if not values:
        return {}
    v = sorted(values)
    return {f"p{p}": v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] for p in ps}


# ---- one time bucket --------------------------------------------------------------------------


CLIENT_LEFT = 499  # the status of a row whose client went before its answer was whole


@dataclass
class _Group:
    """The chat requests of one bucket for one (model, tier, domain)."""

    n: int = 0
    ok: int = 0
    cost: float = 0.0
    large: float = 0.0
    escalated: int = 0
    fell_back: int = 0
    left: int = 0  # status 499: the client went before its answer was whole
    refused: int = 0  # other 4xx: the request's own fault (privacy refusal, too long, ...)


@dataclass
class _Bucket:
    """What a time bucket holds: every row counted (`rows`, route rows too: the check against
    the index), the chat groups, the latency histogram and the cascade counters."""

    rows: int = 0
    groups: dict[tuple[str | None, str | None, str | None], _Group] = field(default_factory=dict)
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_EDGES_MS) + 1))
    cascade: dict[str, float] = field(default_factory=dict)


class LogReader:
    """Reads figures from one decision log; holds its engine (read-only for a SQLite file) and
    the aggregates of settled time buckets. Safe to call from several threads.

    `sample` bounds the rows read one by one (percentiles, feedback, shadow verdicts): the
    window's newest `sample`. `drift_reference` is the scorer's training distributions
    (`Scorer.training_distributions_`); without it no drift figures are computed.
    """

    def __init__(
        self,
        location: str | Path,
        *,
        sample: int = 5000,
        settle_s: float = 30.0,
        drift_reference: dict | None = None,
        drift_window: int = 1000,
        drift_threshold: float = 0.25,
        drift_min_samples: int = 100,
    ) -> None:
        self.location = location
        self.sample = sample
        self.settle_s = settle_s
        self.drift_reference = drift_reference
        self.drift_window = drift_window
        self.drift_threshold = drift_threshold
        self.drift_min_samples = drift_min_samples
        self._engine: Engine | None = None
        self._has_kind: bool | None = None
        self._lock = threading.Lock()
        self._buckets: dict[int, dict[int, _Bucket]] = {}  # step → bucket index → aggregates
        self._last: dict[float | None, tuple[float, dict[str, Any]]] = {}  # since → (at, figures)
        self.bucket_reads = 0  # buckets read from the database (tests, curiosity)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = _read_engine(self.location)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def figures(
        self, since_s: float | None = 3600.0, now: float | None = None, max_age: float = 0.0
    ) -> dict[str, Any]:
        """The figures of the last `since_s` seconds (None: the whole log) up to `now`; the
        window starts at the start of its first time bucket. With `max_age`, a result computed
        at most that many seconds ago is returned as is."""
        with self._lock:
            at = time.monotonic()
            if max_age > 0 and now is None:
                hit = self._last.get(since_s)
                if hit is not None and at - hit[0] <= max_age:
                    return hit[1]
            until = time.time() if now is None else now
            with self.engine.connect() as con:
                if self._has_kind is None:
                    cols = {c["name"] for c in sa.inspect(con).get_columns("decisions")}
                    self._has_kind = "kind" in cols  # logs of the first version have no kind
                    self._has_cache = "cache" in cols  # since migration 0003
                    self._has_phase = "phase" in cols  # since migration 0004
                if since_s is None:
                    first = con.execute(sa.select(sa.func.min(decisions.c.ts))).scalar()
                    since = float(first) if first is not None else until
                else:
                    since = until - since_s
                out = self._figures(con, since, until)
            if len(self._last) > 16:
                self._last.clear()
            self._last[since_s] = (at, out)
            return out

    # ---- buckets ------------------------------------------------------------------------------

    def _answered(self, where: Any) -> Any:
        """`where`, without write-ahead rows whose answer has not ended (phase "started"):
        in flight, they have no outcome yet. Their end changes the row count of their bucket,
        so a settled bucket is read again then (`_changed_buckets`)."""
        if not getattr(self, "_has_phase", False):
            return where
        c = decisions.c
        return sa.and_(where, sa.or_(c.phase.is_(None), c.phase != "started"))

    def _chat(self, where: Any) -> Any:
        c = decisions.c
        if not self._has_kind:
            return where
        return sa.and_(where, sa.or_(c.kind.is_(None), c.kind.not_in(ROUTE_KINDS)))

    def _window_buckets(
        self, con: Connection, step: int, first: int, last: int, until: float
    ) -> dict[int, _Bucket]:
        """Buckets first..last (the last one ends after `until`): settled ones from the cache
        unless the index says their rows changed, the others read now."""
        c = decisions.c
        cache = self._buckets.setdefault(step, {})
        settled_to = min(last - 1, math.floor((until - self.settle_s) / step) - 1)
        stale: set[int] = set()
        if settled_to >= first:
            counted = con.execute(
                sa.select(sa.func.count()).where(
                    self._answered(sa.and_(c.ts >= first * step, c.ts < (settled_to + 1) * step))
                )
            ).scalar()
            have = [cache.get(b) for b in range(first, settled_to + 1)]
            if any(h is None for h in have) or counted != sum(h.rows for h in have if h):
                stale = self._changed_buckets(con, step, first, settled_to, cache)
        to_read = sorted(stale | set(range(max(first, settled_to + 1), last + 1)))
        fresh = self._read_buckets(con, step, to_read, until)
        for b, agg in fresh.items():
            if b <= settled_to:
                cache[b] = agg
        # Keep what another window of this step may still ask for; forget the rest.
        for b in [b for b in cache if b < first - MAX_BUCKETS]:
            del cache[b]
        return {b: fresh[b] if b in fresh else cache[b] for b in range(first, last + 1)}

    def _changed_buckets(
        self, con: Connection, step: int, first: int, last: int, cache: dict[int, _Bucket]
    ) -> set[int]:
        """Settled buckets whose cached row count differs from the index's (or that are not
        cached): read over the `ts` index alone."""
        c = decisions.c
        b = _floor_div(c.ts, step, con.dialect.name).label("b")
        counts = dict(
            con.execute(
                sa.select(b, sa.func.count())
                .where(self._answered(sa.and_(c.ts >= first * step, c.ts < (last + 1) * step)))
                .group_by(b)
            ).all()
        )
        return {
            i
            for i in range(first, last + 1)
            if i not in cache or cache[i].rows != int(counts.get(i, 0))
        }

    def _read_buckets(
        self, con: Connection, step: int, wanted: list[int], until: float
    ) -> dict[int, _Bucket]:
        """Aggregate the rows of these buckets, one query per run of consecutive buckets."""
        out = {b: _Bucket() for b in wanted}
        c = decisions.c
        for lo, hi in _runs(wanted):
            where = self._answered(
                sa.and_(c.ts >= lo * step, c.ts < (hi + 1) * step, c.ts <= until)
            )
            for r in con.execute(_bucket_query(where, step, con.dialect.name, self._has_kind)):
                agg = out[int(r.bucket)]
                agg.rows += r.n
                if not r.chat:
                    continue
                g = agg.groups.setdefault((r.model, r.tier, r.domain), _Group())
                g.n += r.n
                g.ok += int(r.ok or 0)
                g.cost += float(r.cost or 0.0)
                g.large += float(r.large or 0.0)
                g.escalated += int(r.escalated or 0)
                g.fell_back += int(r.fell_back or 0)
                g.left += int(r.left or 0)
                g.refused += int(r.refused or 0)
                if r.lb is not None:
                    agg.latency[int(r.lb)] += r.n
                for k in (*CASCADE_FIELDS, "wasted_tokens", "wasted_cost"):
                    agg.cascade[k] = agg.cascade.get(k, 0) + float(getattr(r, f"c_{k}") or 0)
        self.bucket_reads += len(wanted)
        return out

    # ---- the figures --------------------------------------------------------------------------

    def _figures(self, con: Connection, since: float, until: float) -> dict[str, Any]:
        step = bucket_step(until - since)
        first, last = math.floor(since / step), math.floor(until / step)
        buckets = self._window_buckets(con, step, first, last, until)
        start = first * step
        c = decisions.c
        in_window = sa.and_(c.ts >= start, c.ts <= until)
        chat = self._chat(self._answered(in_window))
        recent = con.execute(
            sa.select(c.latency_ms, c.routing_ms)
            .where(chat)
            .order_by(c.ts.desc())
            .limit(self.sample)
        ).all()
        latency = [r[0] for r in recent if r[0] is not None]
        routing = [r[1] for r in recent if r[1] is not None]
        hist = [
            sum(b.latency[i] for b in buckets.values()) for i in range(len(LATENCY_EDGES_MS) + 1)
        ]
        return {
            "window": {
                "since": round(start, 3),
                "until": round(until, 3),
                "seconds": round(until - start, 3),
                "bucket_s": step,
            },
            **_totals(g for b in buckets.values() for g in b.groups.items()),
            "latency_ms": {**percentiles(latency), "of": len(latency)},
            "routing_ms": {**percentiles(routing), "of": len(routing)},
            "latency_histogram": {"edges_ms": list(LATENCY_EDGES_MS), "counts": hist},
            "cascade": _cascade(buckets.values()),
            "cache": self._cache(con, sa.and_(in_window, chat)),
            "quality": self._quality(con, start, until),
            "drift": self._drift(con, in_window),
            "series": _series(buckets, first, last, step),
        }

    def _cache(self, con: Connection, where: Any) -> dict[str, Any]:
        """Requests answered from the response cache, and what they would have cost."""
        if not getattr(self, "_has_cache", False):
            return {"hits": 0, "saved_usd": 0.0}
        c = decisions.c
        hits, saved = con.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(c.saved_cost), 0.0)).where(
                where, c.cache == "hit"
            )
        ).one()
        return {"hits": int(hits), "saved_usd": float(saved)}

    def _quality(self, con: Connection, since: float, until: float) -> dict[str, Any]:
        """User feedback (mean score) and shadow agreement of the window's requests (at most
        `sample` of each, the newest), each with a 95% Wilson interval.

        Driven from the outcomes: an outcome is written after its request, so `o.ts >= since`
        narrows them first, and each one's request is then found by its key."""
        c, o = decisions.c, outcomes.c

        def of_window(*extra: Any) -> Any:
            return sa.exists().where(
                sa.and_(c.request_id == o.request_id, c.ts >= since, c.ts <= until, *extra)
            )

        # A user's score of the answer they got: about the model that answered ("" or its
        # name, the newest of the two), not a label for another model ("the large model
        # would have done better" is no verdict on the answer served).
        rows = con.execute(
            sa.select(o.request_id, o.score)
            .where(
                sa.and_(
                    o.source == "feedback",
                    o.ts >= since,
                    of_window(sa.or_(o.model == "", o.model == c.model)),
                )
            )
            .order_by(o.updated_ts.desc())
            .limit(self.sample)
        ).all()
        latest: dict[str, float] = {}
        for rid, score in rows:
            latest.setdefault(rid, float(score))
        scores = list(latest.values())
        n_fb, sum_fb = len(scores), float(sum(scores))
        feedback: dict[str, Any] = {"n": n_fb, "mean": sum_fb / n_fb if n_fb else None}
        feedback["low"], feedback["high"] = wilson(sum_fb, n_fb) or (None, None)

        # One shadow verdict per request: the outcome row about the model that answered.
        details = con.execute(
            sa.select(o.detail)
            .where(sa.and_(o.source == "shadow", o.ts >= since, of_window(c.model == o.model)))
            .order_by(o.ts.desc())
            .limit(self.sample)
        ).scalars()
        verdicts = []
        for text in details:
            try:
                agrees = (json.loads(text) or {}).get("agrees") if text else None
            except ValueError:
                agrees = None
            if isinstance(agrees, bool):
                verdicts.append(agrees)
        n_sh, agreed = len(verdicts), sum(verdicts)
        shadow: dict[str, Any] = {"n": n_sh, "agreement": agreed / n_sh if n_sh else None}
        shadow["low"], shadow["high"] = wilson(agreed, n_sh) or (None, None)
        return {"feedback": feedback, "shadow": shadow}

    def _drift(self, con: Connection, in_window: Any) -> dict[str, Any] | None:
        """PSI of the window's newest routing scores (at most the drift window) against the
        scorer's training distributions: the drift alarm's figures, for every worker at once."""
        if self.drift_reference is None:
            return None
        monitor = DriftMonitor(
            self.drift_reference,
            self.drift_window,
            self.drift_threshold,
            self.drift_min_samples,
            check_every=10**12,  # only scores() below: a reader logs no warnings
        )
        if not monitor.enabled:
            return None
        c = decisions.c
        rows = con.execute(
            sa.select(c.domain, c.difficulty, c.gain)
            .where(in_window)
            .order_by(c.ts.desc())
            .limit(self.drift_window)
        ).all()
        for domain, difficulty, gain in reversed(rows):
            monitor.observe(domain, difficulty, gain)
        scores = monitor.scores()
        return {
            "psi": scores,
            "samples": monitor.samples(),
            "threshold": self.drift_threshold,
            "min_samples": self.drift_min_samples,
            "alarms": {s: v is not None and v > self.drift_threshold for s, v in scores.items()},
        }


def read_figures(
    location: str | Path, since_s: float | None = 3600.0, now: float | None = None, **kw: Any
) -> dict[str, Any]:
    """The figures of a log (a SQLite path or a database URL) over a window; see `LogReader`."""
    reader = LogReader(location, **kw)
    try:
        return reader.figures(since_s, now)
    finally:
        reader.close()


# ---- SQL ----------------------------------------------------------------------------------------


def _floor_div(col: Any, step: int, dialect: str) -> Any:
    """floor(col / step) as an integer, in either database's SQL."""
    if dialect == "sqlite":  # ts is positive: truncation is floor
        return sa.cast(col / step, sa.Integer)
    return sa.cast(sa.func.floor(col / step), sa.BigInteger)


def _json_doc(col: Any, dialect: str) -> Any:
    """A JSON view of a TEXT column that takes ["key"] paths (SQLite JSON1, PostgreSQL jsonb)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        return sa.cast(col, JSONB)
    return sa.type_coerce(col, sa.JSON)


def _bucket_query(where: Any, step: int, dialect: str, has_kind: bool | None) -> Any:
    """One row per (bucket, chat or not, model, tier, domain, latency bin): counts, money and
    the cascade's counters (router/serving/cascade.py writes them into the decision's
    `cascade`).

    Each row's derived values (its latency bin, its cascade as JSON) are worked out once in an
    inner query, and only for rows with a cascade is the JSON parsed: without one the
    decision's JSON says `"cascade": null` (Decision.to_dict), which a LIKE finds unparsed."""
    c = decisions.c
    chat = (
        sa.case((sa.or_(c.kind.is_(None), c.kind.not_in(ROUTE_KINDS)), 1), else_=0)
        if has_kind
        else sa.literal(1)
    )
    ok = sa.and_(c.status.is_not(None), c.status < 400)
    refused = sa.and_(c.status >= 400, c.status < 500, c.status != CLIENT_LEFT)
    latency_bin = sa.case(
        *[(c.latency_ms <= e, i) for i, e in enumerate(LATENCY_EDGES_MS)],
        (c.latency_ms.is_not(None), len(LATENCY_EDGES_MS)),
    )
    with_cascade = sa.and_(c.decision.is_not(None), c.decision.not_like('%"cascade": null%'))
    inner = sa.select(
        _floor_div(c.ts, step, dialect).label("bucket"),
        chat.label("chat"),
        c.model,
        c.tier,
        c.domain,
        sa.case((ok, 1), else_=0).label("ok"),
        sa.case((ok, c.cost_estimate), else_=0.0).label("cost"),
        sa.case((ok, c.large_cost_estimate), else_=0.0).label("large"),
        sa.case((c.escalated == 1, 1), else_=0).label("escalated"),
        sa.case((c.fell_back == 1, 1), else_=0).label("fell_back"),
        sa.case((c.status == CLIENT_LEFT, 1), else_=0).label("left"),
        sa.case((refused, 1), else_=0).label("refused"),
        latency_bin.label("lb"),
        sa.case((with_cascade, _json_doc(c.decision, dialect)["cascade"])).label("casc"),
    ).where(where)
    if dialect == "sqlite":
        # A LIMIT keeps SQLite from flattening the inner query into the GROUP BY, which would
        # repeat the LIKE and the JSON parsing in every aggregate that names them.
        inner = inner.limit(-1)
    r = inner.subquery("r")
    mode = r.c.casc["mode"].as_string()
    judged = sa.and_(mode == "judged", r.c.casc["verdict"].as_string().is_not(None))
    wasted = sa.and_(judged, r.c.casc["escalated"].as_boolean())

    def count(cond: Any) -> Any:
        return sa.func.sum(sa.case((cond, 1), else_=0))

    return sa.select(
        r.c.bucket,
        r.c.chat,
        r.c.model,
        r.c.tier,
        r.c.domain,
        r.c.lb,
        sa.func.count().label("n"),
        sa.func.sum(r.c.ok).label("ok"),
        sa.func.sum(r.c.cost).label("cost"),
        sa.func.sum(r.c.large).label("large"),
        sa.func.sum(r.c.escalated).label("escalated"),
        sa.func.sum(r.c.fell_back).label("fell_back"),
        sa.func.sum(r.c.left).label("left"),
        sa.func.sum(r.c.refused).label("refused"),
        count(mode.is_not(None)).label("c_n"),
        count(judged).label("c_judged"),
        count(wasted).label("c_escalated"),
        count(mode == "unchecked").label("c_unchecked"),
        count(mode == "large").label("c_large"),
        count(sa.and_(mode == "judged", r.c.casc["verdict"].as_string().is_(None))).label(
            "c_first_failed"
        ),
        sa.func.sum(sa.case((wasted, r.c.casc["cheap_tokens_wasted"].as_float()))).label(
            "c_wasted_tokens"
        ),
        sa.func.sum(sa.case((wasted, r.c.casc["cheap_cost"].as_float()))).label("c_wasted_cost"),
    ).group_by(r.c.bucket, r.c.chat, r.c.model, r.c.tier, r.c.domain, r.c.lb)


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted integers, as (first, last) pairs."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


# ---- from buckets to figures ------------------------------------------------------------------


def _totals(groups: Iterable[tuple[tuple[str | None, str | None, str | None], _Group]]) -> dict:
    requests = answered = left = refused = routed = escalated = fell_back = small = 0
    cost = large = 0.0
    models: dict[str, dict[str, Any]] = {}
    domains: dict[str, int] = {}
    for (model, tier, domain), g in groups:
        requests += g.n
        answered += g.ok
        cost += g.cost
        large += g.large
        escalated += g.escalated
        fell_back += g.fell_back
        left += g.left
        refused += g.refused
        if model is None:
            continue  # failed before routing: no decision
        routed += g.n
        domains[domain or "none"] = domains.get(domain or "none", 0) + g.n
        if g.ok:
            m = models.setdefault(model, {"model": model, "tier": tier, "requests": 0})
            m["requests"] += g.ok
            m["cost_usd"] = m.get("cost_usd", 0.0) + g.cost
            small += g.ok if tier == "small" else 0
    model_rows = sorted(models.values(), key=lambda m: (-m["requests"], m["model"]))
    for m in model_rows:
        m["share"] = m["requests"] / answered if answered else 0.0
    domain_rows = [
        {"domain": d, "requests": n, "share": n / routed if routed else 0.0}
        for d, n in sorted(domains.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return {
        "requests": requests,
        "answered": answered,
        # A client that went (a time-out, a closed tab) is not the router's failure, nor is a
        # request refused for what it asked (a privacy refusal, a prompt too long for every
        # model, a request no model can take, an upstream's 400: a 4xx).
        "errors": requests - answered - left - refused,
        "client_left": left,
        "refused": refused,
        "cost_usd": cost,
        "large_cost_usd": large,
        "saved_usd": large - cost,
        "saved_share": 1 - cost / large if large > 0 else None,
        "escalated": escalated,
        "escalation_rate": escalated / routed if routed else None,
        "fallback_rate": fell_back / routed if routed else None,
        "small_share": small / answered if answered else None,
        "models": model_rows,
        "domains": domain_rows,
    }


def _series(buckets: dict[int, _Bucket], first: int, last: int, step: int) -> dict[str, Any]:
    """Per time bucket: requests, spend, the all-large counterfactual, saved share, and the
    answered requests per model (for the stacked mix)."""
    idx = range(first, last + 1)
    requests = [sum(g.n for g in buckets[b].groups.values()) for b in idx]
    cost = [sum(g.cost for g in buckets[b].groups.values()) for b in idx]
    large = [sum(g.large for g in buckets[b].groups.values()) for b in idx]
    per_model: dict[str, list[int]] = {}
    for i, b in enumerate(idx):
        for (model, _, _), g in buckets[b].groups.items():
            if model is not None and g.ok:
                per_model.setdefault(model, [0] * len(idx))[i] += g.ok
    order = sorted(per_model, key=lambda m: (-sum(per_model[m]), m))
    return {
        "start": [b * step for b in idx],
        "requests": requests,
        "cost_usd": cost,
        "large_cost_usd": large,
        "saved_share": [1 - c / lg if lg > 0 else None for c, lg in zip(cost, large, strict=True)],
        "models": {m: per_model[m] for m in order},
    }


def _cascade(buckets: Iterable[_Bucket]) -> dict[str, Any]:
    """Cascaded requests by outcome, and what escalation threw away of the cheap answers."""
    total: dict[str, float] = {}
    for b in buckets:
        for k, v in b.cascade.items():
            total[k] = total.get(k, 0) + v
    n = {k: int(total.get(k, 0)) for k in CASCADE_FIELDS}
    return {
        "requests": n["n"],
        "judged": n["judged"],
        "accepted": n["judged"] - n["escalated"],
        "escalated": n["escalated"],
        "escalation_rate": n["escalated"] / n["judged"] if n["judged"] else None,
        "unchecked": n["unchecked"],
        "large": n["large"],
        "first_failed": n["first_failed"],
        "wasted_tokens": int(total.get("wasted_tokens", 0)),
        "wasted_cost_usd": float(total.get("wasted_cost", 0.0)),
    }
