"""The statements that put spooled or queued items into the database, each idempotent so a
replayed item never duplicates or undoes anything:

- a `start` row (the write-ahead row: decision, status NULL, phase "started") is inserted
  unless the request already has a row;
- a `row` (the request's whole row, phase "ended") replaces it, keeping the embedding the
  start row had when it carries none of its own;
- `interrupted` marks a row still "started" whose process died before the answer ended;
- an `outcome` replaces the last one per (request, source, model) only if it is newer, and
  counts the replacement as a revision.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from router.serving.decision_log.schema import COLUMNS, decisions, outcomes

# Kinds of items that are rows of the decisions table.
ROW_KINDS = ("start", "row")
# Columns an ended row leaves as they are when it has no value of its own: the start row
# embedded the routing text already.
KEPT_FROM_START = ("embedding", "embedding_scale", "encoder", "routing_text")


def write_items(con: Connection, items: list[tuple[str, dict[str, Any]]]) -> None:
    """Write prepared items (rows as cells, outcomes as values) in one transaction."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for kind, payload in items:
        by_kind.setdefault(kind, []).append(payload)
    start_stmt, row_stmt = _row_statements(con.dialect.name)
    if starts := by_kind.get("start"):
        first = {}
        for r in starts:
            first.setdefault(r["request_id"], r)
        con.execute(start_stmt, list(first.values()))
    if rows := by_kind.get("row"):
        last = {r["request_id"]: r for r in rows}  # the latest wins for a request id
        con.execute(row_stmt, list(last.values()))
    for it in by_kind.get("interrupted", []):
        con.execute(
            decisions.update()
            .where(decisions.c.request_id == it["request_id"], decisions.c.phase == "started")
            .values(phase="interrupted", error=it.get("error"))
        )
    for o in by_kind.get("outcome", []):  # few; one upsert each keeps the revision count exact
        stmt = _insert_for(con.dialect.name)(outcomes).values(**o)
        stmt = stmt.on_conflict_do_update(
            index_elements=["request_id", "source", "model"],
            set_={
                "score": stmt.excluded.score,
                "detail": stmt.excluded.detail,
                "updated_ts": stmt.excluded.updated_ts,
                "revision": outcomes.c.revision + 1,
            },
            # A replayed outcome (same time) changes nothing and counts no revision.
            where=outcomes.c.updated_ts < stmt.excluded.updated_ts,
        )
        con.execute(stmt)


@functools.cache
def _row_statements(dialect: str) -> tuple[Any, Any]:
    """The start row's and the ended row's upserts, built once per dialect: building one (an
    update clause over every column) and computing its cache key cost more CPU than the write
    itself, once a request, on the proxy's cores; a statement object is immutable and
    reusable, and SQLAlchemy keeps its cache key on it."""
    insert = _insert_for(dialect)
    start = insert(decisions).on_conflict_do_nothing(index_elements=["request_id"])
    row = insert(decisions)
    row = row.on_conflict_do_update(
        index_elements=["request_id"],
        set_={
            c: (
                sa.func.coalesce(row.excluded[c], decisions.c[c])
                if c in KEPT_FROM_START
                else row.excluded[c]
            )
            for c in COLUMNS
            if c != "request_id"
        },
    )
    return start, row


def _insert_for(dialect: str):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert
