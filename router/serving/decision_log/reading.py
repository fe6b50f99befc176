"""Reading the log back: `summarise()` for `router stats`, `read_outcomes()` and
`export_examples()` for retraining."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from router.core.data import Example

from router.serving.decision_log.rows import dequantize
from router.serving.decision_log.schema import (
    DecisionLogError,
    database_url,
    decisions,
    outcomes,
    safe_url,
)
from router.serving.decision_log.writer import _first_line, _json

# ---- reading the log back ------------------------------------------------------------------


def _read_engine(location: str | Path) -> Engine:
    """An engine for reading a log; fails now, naming the place, if it cannot be read."""
    url = database_url(location)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise FileNotFoundError(f"no decision log at {location}")
        engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    else:
        engine = sa.create_engine(url)
    try:
        with engine.connect() as con:
            found = sa.inspect(con).has_table("decisions")
    except sa.exc.SQLAlchemyError as e:
        engine.dispose()
        raise DecisionLogError(f"decision log {safe_url(url)}: {_first_line(e)}") from None
    if not found:
        engine.dispose()
        raise DecisionLogError(f"{safe_url(url)}: no decision log there (no decisions table)")
    return engine


@dataclass
class Stats:
    """What `router stats` prints."""

    requests: int = 0
    errors: int = 0  # answered with an error status, or interrupted by a crash
    in_flight: int = 0  # write-ahead rows whose answer has not ended (phase "started")
    share: dict[str, float] = field(default_factory=dict)  # answering model → share of OK calls
    escalation_rate: float = 0.0
    fallback_rate: float = 0.0
    cost: float = 0.0
    large_cost: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50 / p90 / p99
    routing_ms: dict[str, float] = field(default_factory=dict)

    @property
    def savings(self) -> float:
        """Estimated cost saved against sending every request to the large model (fraction)."""
        return 1 - self.cost / self.large_cost if self.large_cost > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "savings": self.savings}

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) lines for a printed summary."""
        out = [("requests", f"{self.requests} ({self.errors} errors)")]
        if self.in_flight:
            out.append(("in flight", f"{self.in_flight} (started, not ended)"))
        out += [(f"share {m}", f"{v:.1%}") for m, v in self.share.items()]
        out += [
            ("escalation rate", f"{self.escalation_rate:.1%}"),
            ("fallback rate", f"{self.fallback_rate:.1%}"),
            ("estimated cost", f"${self.cost:.6f}"),
            ("all-large cost", f"${self.large_cost:.6f}"),
            ("estimated savings", f"{self.savings:.1%}"),
        ]
        for name, pct in (("latency", self.latency_ms), ("routing", self.routing_ms)):
            if pct:
                out.append((f"{name} ms", "  ".join(f"{k} {v:.1f}" for k, v in pct.items())))
        return out


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)

    def pct(p: float) -> float:
        return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

    return {"p50": pct(50), "p90": pct(90), "p99": pct(99)}


def summarise(path: str | Path) -> Stats:
    """Share per model, escalation rate, estimated savings and latency percentiles of a log
    (a SQLite path or a database URL). Rows of POST /v1/route (no model called) are left out."""
    engine = _read_engine(path)
    c = decisions.c
    try:
        with engine.connect() as con:
            cols = [
                c.model,
                c.status,
                c.escalated,
                c.fell_back,
                c.cost_estimate,
                c.large_cost_estimate,
                c.latency_ms,
                c.routing_ms,
            ]
            have = {col["name"] for col in sa.inspect(con).get_columns("decisions")}
            q = sa.select(*cols, c.phase if "phase" in have else sa.null())
            if "kind" in have:
                q = q.where(sa.or_(c.kind.is_(None), ~c.kind.in_(["route", "sdk.route"])))
            rows = con.execute(q).all()
    finally:
        engine.dispose()
    in_flight = sum(1 for r in rows if r[8] == "started")
    rows = [r for r in rows if r[8] != "started"]  # not answered yet: no outcome to count
    s = Stats(requests=len(rows), in_flight=in_flight)
    ok = [r for r in rows if r[1] is not None and r[1] < 400]
    s.errors = len(rows) - len(ok)
    for r in ok:
        s.share[r[0]] = s.share.get(r[0], 0) + 1
    s.share = {m: n / len(ok) for m, n in sorted(s.share.items(), key=lambda kv: -kv[1])}
    routed = [r for r in rows if r[0] is not None]
    if routed:
        s.escalation_rate = sum(bool(r[2]) for r in routed) / len(routed)
        s.fallback_rate = sum(bool(r[3]) for r in routed) / len(routed)
    s.cost = sum(r[4] or 0 for r in ok)
    s.large_cost = sum(r[5] or 0 for r in ok)
    s.latency_ms = _percentiles([r[6] for r in rows if r[6] is not None])
    s.routing_ms = _percentiles([r[7] for r in rows if r[7] is not None])
    return s


# ---- training rows from the log ------------------------------------------------------------


@dataclass
class LoggedOutcome:
    """One request of the log with its outcomes, as `router data from-log` reads it."""

    request_id: str
    ts: float
    policy: str | None
    model: str | None
    tier: str | None
    domain: str | None
    success: dict[str, float]
    scores: dict[str, float]  # model → the outcome's score (last write per source and model)
    sources: dict[str, str]  # model → which source gave the score
    embedding: np.ndarray | None
    encoder: str | None
    routing_text: str | None


def read_outcomes(location: str | Path, since: float | None = None) -> Iterator[LoggedOutcome]:
    """Requests that have at least one outcome, oldest first. Per model, feedback outranks a
    shadow judgement; the empty model of an outcome means the model that answered."""
    engine = _read_engine(location)
    c, o = decisions.c, outcomes.c
    q = (
        sa.select(
            c.request_id,
            c.ts,
            c.policy,
            c.model,
            c.tier,
            c.domain,
            c.success,
            c.embedding,
            c.embedding_scale,
            c.encoder,
            c.routing_text,
            o.source,
            o.model.label("o_model"),
            o.score,
        )
        .join(outcomes, o.request_id == c.request_id)
        .order_by(c.ts, c.request_id)
    )
    if since is not None:
        q = q.where(c.ts >= since)
    rank = {"shadow": 0, "feedback": 1}
    try:
        with engine.connect() as con:
            current: LoggedOutcome | None = None
            for r in con.execute(q):
                if current is None or current.request_id != r.request_id:
                    if current is not None:
                        yield current
                    emb = (
                        dequantize(r.embedding, r.embedding_scale)
                        if r.embedding is not None
                        else None
                    )
                    current = LoggedOutcome(
                        r.request_id,
                        r.ts,
                        r.policy,
                        r.model,
                        r.tier,
                        r.domain,
                        _json(r.success) or {},
                        {},
                        {},
                        emb,
                        r.encoder,
                        r.routing_text,
                    )
                model = r.o_model or r.model
                if model is None:
                    continue
                if model not in current.scores or rank[r.source] >= rank.get(
                    current.sources[model], 0
                ):
                    current.scores[model] = float(r.score)
                    current.sources[model] = r.source
            if current is not None:
                yield current
    finally:
        engine.dispose()


def export_examples(
    location: str | Path,
    cheap_models: list[str],
    since: float | None = None,
    source: str = "log",
) -> list[Example]:
    """Rows with outcomes as routing-data Examples: the routing text when the log kept it,
    else the embedding (with the encoder's identity). `cheap_models` are the catalogue's
    small-tier models, so the difficulty and gain heads know which score is the cheap one."""
    from router.core.data import Example

    out: list[Example] = []
    cheap = set(cheap_models)
    for r in read_outcomes(location, since):
        if not r.scores:
            continue
        if r.routing_text is None and r.embedding is None:
            continue  # nothing to learn from: neither the text nor its embedding was kept
        ex = Example(
            prompt=r.routing_text,
            scores=dict(sorted(r.scores.items())),
            source=source,
            domain=None,
            cheap_models=sorted(m for m in r.scores if m in cheap),
            id=r.request_id,
        )
        ex.extra = {"ts": r.ts, "outcome_sources": r.sources}
        if r.routing_text is None:
            # Embedding-only row (data.py): `router train` uses it as is, skipping the text head.
            ex.extra["embedding"] = [round(float(x), 6) for x in r.embedding]
            ex.extra["encoder"] = r.encoder
        out.append(ex)
    return out
