"""Reading the log back: `read_outcomes()` and `export_examples()` for retraining (the figures
of `router stats` and the dashboard are in `figures.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from router.core.data import Example

from router.serving.decision_log.reaching import first_line, unreachable
from router.serving.decision_log.rows import dequantize
from router.serving.decision_log.schema import (
    DecisionLogError,
    database_url,
    decisions,
    outcomes,
    safe_url,
)
from router.serving.decision_log.writer import _json

# ---- reading the log back ------------------------------------------------------------------


def _read_engine(location: str | Path) -> Engine:
    """An engine for reading a log; fails now, naming the place, if it cannot be read."""
    url = database_url(location)
    pg = url.startswith("postgresql")
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise FileNotFoundError(f"no decision log at {location}")
        engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    else:
        # connect_timeout: a host that does not answer is an error in seconds, not minutes.
        engine = sa.create_engine(url, connect_args={"connect_timeout": 5} if pg else {})
    try:
        with engine.connect() as con:
            found = sa.inspect(con).has_table("decisions")
    except sa.exc.SQLAlchemyError as e:
        engine.dispose()
        if pg and unreachable(e):  # down, or not up yet: the rows wait in the spools
            raise DecisionLogError(
                f"the decision log {safe_url(url)} is not reachable yet ({first_line(e)})"
            ) from None
        raise DecisionLogError(f"decision log {safe_url(url)}: {first_line(e)}") from None
    if not found:
        engine.dispose()
        raise DecisionLogError(
            f"{safe_url(url)}: no decision log there (no decisions table): the router creates "
            "it when it first reaches the database"
        )
    return engine


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
        # Oldest outcome first within a request, so that of two about the same model (the
        # answering one named, and "" for it) the newest wins, as the last write should.
        .order_by(c.ts, c.request_id, o.updated_ts)
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
    except sa.exc.SQLAlchemyError as e:
        # A decisions table without the rest (another version's log, or not a log at all), or
        # a database that went away mid-read: one line naming the log, not a driver traceback.
        raise DecisionLogError(
            f"decision log {safe_url(database_url(location))}: cannot read its outcomes "
            f"({first_line(e)}); `router serve` creates or migrates a log at start"
        ) from None
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
