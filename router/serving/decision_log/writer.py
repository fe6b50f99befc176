"""`DecisionLog`: `record()` only queues a row; a background thread owns the database and
writes in batches, so neither a slow disk nor an outage stalls request handling. During an
outage rows wait in a bounded queue; past its bound they are dropped and counted."""

from __future__ import annotations

import atexit
import json
import logging
import math
import queue
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    pass

from router.serving.decision_log.rows import _cell, quantize
from router.serving.decision_log.schema import (
    COLUMNS,
    ROUTING_TEXT,
    DecisionLogError,
    database_url,
    decisions,
    migrate,
    open_engine,
    outcomes,
    safe_url,
)

log = logging.getLogger("router.serving.decision_log")


SOURCES = ("feedback", "shadow")
QUEUE_SIZE = 10_000  # rows waiting for the database before new ones are dropped
RETENTION_EVERY_S = 60.0  # how often the writer enforces max_rows / max_days


# ---- the writer ---------------------------------------------------------------------------


class _Flush:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()


_STOP = object()


class DecisionLog:
    """The log of one process: a bounded queue and one writer thread per database.

    `embed(text) -> vector` turns a row's routing text into its embedding (on the writer thread,
    off the event loop); `encoder` names it in the row. Retention keeps at most `max_rows` rows
    and none older than `max_days` (outcomes go with their request's row).
    """

    def __init__(
        self,
        path: str | Path,
        batch: int = 256,
        *,
        store_text: bool = False,
        max_rows: int | None = None,
        max_days: float | None = None,
        queue_size: int = QUEUE_SIZE,
        embed: Callable[[str], np.ndarray] | None = None,
        encoder: str | Callable[[], str | None] | None = None,
    ) -> None:
        self.url = database_url(path)
        # The SQLite file, for callers that open it directly (tests, notebooks); None otherwise.
        self.path: Path | None = (
            Path(self.url.removeprefix("sqlite:///")) if self.url.startswith("sqlite:///") else None
        )
        self.store_text = store_text
        self.max_rows, self.max_days = max_rows, max_days
        self.embed, self.encoder = embed, encoder
        self._batch = batch
        self._queue_size = queue_size
        self._queue: queue.Queue = queue.Queue()
        self._failed: Exception | None = None
        self._closed = False
        self._lock = threading.Lock()  # orders record() against close(); guards counters
        self._pending: dict[str, int] = {}  # request ids queued, not yet written
        self.dropped = 0  # rows and outcomes given up on (queue full, or database down at close)
        self.written = 0
        self.write_errors = 0
        self.expired = 0  # rows removed by retention
        try:
            self.engine = open_engine(path)
            # Schema created or migrated up front: a bad path or URL fails at start-up.
            migrate(self.engine)
        except (sa.exc.SQLAlchemyError, OSError) as e:
            raise DecisionLogError(f"decision log {safe_url(self.url)}: {e}") from e
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._thread.start()
        # An SDK caller may never close its log: queued rows are written at interpreter exit.
        atexit.register(_close_at_exit, weakref.ref(self))

    def __repr__(self) -> str:
        return f"DecisionLog({safe_url(self.url)!r})"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # ---- writing ----------------------------------------------------------------------------

    def record(self, row: dict[str, Any]) -> None:
        """Queue one row (keys from COLUMNS, missing keys are NULL; `routing_text` becomes the
        embedding). Never blocks: past the queue's bound the row is dropped and counted. After
        `close()` (a request cut at shutdown ends late) the row is written at once."""
        rid = row.get("request_id")
        with self._lock:
            if not self._closed:
                if self._queue.qsize() >= self._queue_size:
                    self._drop(1)
                    return
                if rid is not None:
                    self._pending[rid] = self._pending.get(rid, 0) + 1
                self._queue.put(("row", row))
                return
        self._write_now([("row", row)])

    def record_outcome(
        self,
        request_id: str,
        score: float,
        source: str,
        model: str | None = None,
        detail: dict | None = None,
    ) -> None:
        """Record what was learned about a request: a score in [0, 1] from `source`
        ("feedback" or "shadow"), about `model` (None: the model that answered).

        The last write per (request, source, model) wins; its `revision` counts the writes.
        Raises KeyError for an unknown request id, ValueError for a bad score or source.
        Queued like rows; may raise a database error only while checking the id."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise ValueError(f"score must be a number in [0, 1], got {score!r}")
        score = float(score)
        if math.isnan(score) or not 0.0 <= score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {score!r}")
        if not self.has_request(request_id):
            raise KeyError(request_id)
        now = time.time()
        item = {
            "request_id": request_id,
            "source": source,
            "model": model or "",
            "score": score,
            "detail": json.dumps(detail, ensure_ascii=False) if detail is not None else None,
            "ts": now,
            "updated_ts": now,
            "revision": 1,
        }
        with self._lock:
            if not self._closed:
                if self._queue.qsize() >= self._queue_size:
                    self._drop(1)
                    return
                self._queue.put(("outcome", item))
                return
        self._write_now([("outcome", item)])

    def has_request(self, request_id: str) -> bool:
        """Whether a row with this id exists (written, or still queued)."""
        with self._lock:
            if request_id in self._pending:
                return True
        with self.engine.connect() as con:
            q = sa.select(sa.literal(1)).where(decisions.c.request_id == request_id)
            return con.execute(q).first() is not None

    def outcomes_of(self, request_id: str) -> list[dict[str, Any]]:
        """The outcomes recorded for a request (written ones), newest first."""
        with self.engine.connect() as con:
            rows = con.execute(
                sa.select(outcomes)
                .where(outcomes.c.request_id == request_id)
                .order_by(outcomes.c.updated_ts.desc())
            ).mappings()
            return [{**r, "model": r["model"] or None, "detail": _json(r["detail"])} for r in rows]

    def _drop(self, n: int) -> None:
        first = self.dropped == 0
        self.dropped += n
        if first or self.dropped % 1000 < n:
            log.warning(
                "decision log: %d rows dropped so far (queue full or database down)", self.dropped
            )

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued row is written (tests and shutdown); False on timeout."""
        if self._closed:
            return True  # close() wrote everything it could
        marker = _Flush()
        self._queue.put(("flush", marker))
        return marker.event.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Flush (waiting up to `timeout` for a database that is down) and stop the writer."""
        self._stop_by = time.monotonic() + timeout
        if self._thread.is_alive():
            self._queue.put(("stop", _STOP))
            self._thread.join(timeout + 5)
        with self._lock:
            self._closed = True
        # Items that raced in behind the stop marker are written now, not dropped.
        rest = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item[0] == "flush":
                item[1].event.set()
            elif item[0] != "stop":
                rest.append(item)
        if rest:
            self._write_now(rest)
        self.engine.dispose()

    def _write_now(self, items: list[tuple[str, Any]]) -> None:
        try:
            with self.engine.begin() as con:
                self._write(con, items)
        except sa.exc.SQLAlchemyError as e:
            self._failed = e
            self.write_errors += 1
            self._drop(len(items))

    def _prepare_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """A queued row → its cells: embedding computed, routing text kept only if asked."""
        text = row.get(ROUTING_TEXT)
        out = {k: _cell(row.get(k)) for k in COLUMNS if k != ROUTING_TEXT}
        if text and out.get("embedding") is None and self.embed is not None:
            try:
                out["embedding"], out["embedding_scale"] = quantize(self.embed(text))
                ident = self.encoder() if callable(self.encoder) else self.encoder
                out["encoder"] = out.get("encoder") or ident
            except Exception as e:  # noqa: BLE001 - a row without its embedding beats no row
                log.warning("decision log: embedding failed: %s", e)
        out[ROUTING_TEXT] = text if (self.store_text and text) else None
        return out

    def _write(self, con: Connection, items: list[tuple[str, Any]]) -> None:
        rows = [self._prepare_row(p) if kind == "row" else p for kind, p in items]
        cells = [r for (kind, _), r in zip(items, rows, strict=True) if kind == "row"]
        outs = [r for (kind, _), r in zip(items, rows, strict=True) if kind == "outcome"]
        if cells:
            # Latest wins for a request id (as the first version's INSERT OR REPLACE).
            by_id = {r["request_id"]: r for r in cells}
            stmt = _insert(con)(decisions)
            stmt = stmt.on_conflict_do_update(
                index_elements=["request_id"],
                set_={c: stmt.excluded[c] for c in COLUMNS if c != "request_id"},
            )
            con.execute(stmt, list(by_id.values()))
        for o in outs:  # few; one upsert each keeps the revision count exact
            stmt = _insert(con)(outcomes).values(**o)
            stmt = stmt.on_conflict_do_update(
                index_elements=["request_id", "source", "model"],
                set_={
                    "score": stmt.excluded.score,
                    "detail": stmt.excluded.detail,
                    "updated_ts": stmt.excluded.updated_ts,
                    "revision": outcomes.c.revision + 1,
                },
            )
            con.execute(stmt)

    def _settle(self, items: list[tuple[str, Any]], written: bool) -> None:
        """Forget the pending ids of items that were written or dropped."""
        if not items:
            return
        with self._lock:
            for kind, p in items:
                if kind != "row":
                    continue
                rid = p.get("request_id")
                n = self._pending.get(rid, 0) - 1
                if n > 0:
                    self._pending[rid] = n
                else:
                    self._pending.pop(rid, None)
            if written:
                self.written += sum(1 for k, _ in items if k == "row")
            else:
                self._drop(len(items))

    def _run(self) -> None:
        next_retention = time.monotonic()
        while True:
            if self.max_rows or self.max_days:
                if time.monotonic() >= next_retention:
                    try:
                        self.enforce_retention()
                    except sa.exc.SQLAlchemyError as e:
                        self._failed = e
                    next_retention = time.monotonic() + RETENTION_EVERY_S
            try:
                first = self._queue.get(timeout=RETENTION_EVERY_S)
            except queue.Empty:
                continue
            items, markers, stop = [], [], False
            item = first
            # Drain what is already waiting into one transaction.
            while True:
                kind, payload = item
                if kind == "stop":
                    stop = True
                elif kind == "flush":
                    markers.append(payload)
                else:
                    items.append(item)
                if len(items) >= self._batch or stop:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if items:
                written, given_up = self._write_with_retry(items, stop)
                self._settle(written, True)
                self._settle(given_up, False)
            for m in markers:
                m.event.set()
            if stop:
                return

    def _write_with_retry(
        self, items: list[tuple[str, Any]], stopping: bool
    ) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
        """Write one batch → (written, given up). While the database is down, retry with
        back-off (the queue keeps filling, bounded); give up only when the log is closing and
        its time is up. A batch the database refuses for its content is written item by item,
        and only the refused items are dropped (a bad row must not stall the log)."""
        delay = 0.2
        while True:
            try:
                with self.engine.begin() as con:
                    self._write(con, items)
                if self._failed is not None:
                    log.warning("decision log: writes resumed")
                self._failed = None
                return items, []
            except sa.exc.SQLAlchemyError as e:
                self.write_errors += 1
                if not _is_outage(e):
                    return self._write_one_by_one(items, e)
                if self._failed is None:
                    log.warning("decision log: write failed, buffering: %s", _first_line(e))
                self._failed = e
            stop_by = getattr(self, "_stop_by", None)
            if stop_by is None and not stopping:
                # A stop marker behind us in the queue also ends the wait (close() sets it).
                time.sleep(delay)
            elif time.monotonic() >= (stop_by or 0):
                return [], items
            else:
                time.sleep(min(delay, max(0.0, stop_by - time.monotonic())))
            delay = min(delay * 2, 5.0)

    def _write_one_by_one(self, items, error: Exception):
        log.error(
            "decision log: a batch was refused (%s); writing it row by row", _first_line(error)
        )
        good, bad = [], []
        for item in items:
            try:
                with self.engine.begin() as con:
                    self._write(con, [item])
                good.append(item)
            except sa.exc.SQLAlchemyError as e:
                if _is_outage(e):  # went down meanwhile: retry the rest as a batch
                    rest = [i for i in items if i not in good]
                    ok, failed = self._write_with_retry(rest, False)
                    return good + ok, bad + failed
                log.error("decision log: dropped a row the database refused: %s", _first_line(e))
                bad.append(item)
        return good, bad

    @property
    def failed(self) -> Exception | None:
        """The last write error while writes are failing; None once they succeed again."""
        return self._failed

    @property
    def queued(self) -> int:
        """Items waiting for the writer."""
        return self._queue.qsize()

    # ---- retention --------------------------------------------------------------------------

    def enforce_retention(self, now: float | None = None) -> int:
        """Delete rows past `max_days` and beyond the newest `max_rows`, with their outcomes.
        Returns how many request rows went. Run by the writer every minute."""
        now = time.time() if now is None else now
        removed = 0
        with self.engine.begin() as con:
            if self.max_days:
                cutoff = now - self.max_days * 86400
                removed += con.execute(decisions.delete().where(decisions.c.ts < cutoff)).rowcount
            if self.max_rows:
                # The time of the newest row beyond the cap (the ts index finds it), then one
                # range delete: cheap on a large table, unlike NOT IN over every id.
                cutoff = con.execute(
                    sa.select(decisions.c.ts)
                    .order_by(decisions.c.ts.desc())
                    .offset(self.max_rows)
                    .limit(1)
                ).scalar()
                if cutoff is not None:
                    removed += con.execute(
                        decisions.delete().where(decisions.c.ts <= cutoff)
                    ).rowcount
            if removed:
                con.execute(
                    outcomes.delete().where(
                        outcomes.c.request_id.not_in(sa.select(decisions.c.request_id))
                    )
                )
        self.expired += removed
        return removed


def open_decision_log(location: str | Path, spec: Any = None, encoder: Any = None) -> DecisionLog:
    """A DecisionLog at `location` with a config `decision_log:` section's settings (None:
    defaults), embedding routing texts with `encoder` (whose `identity` names them). A Router,
    or a function returning the encoder, may stand for it: it is then looked up at each use
    (the proxy wraps its encoder, and a hot reload may swap it)."""

    def current():
        enc = encoder() if callable(encoder) and not hasattr(encoder, "encode") else encoder
        return getattr(enc, "encoder", enc)

    if encoder is None:
        embed = identity = None
    else:

        def embed(text: str) -> np.ndarray:
            return current().encode([text])[0]

        def identity() -> str | None:
            return getattr(current(), "identity", None)

    return DecisionLog(
        location,
        store_text=bool(getattr(spec, "store_text", False)),
        max_rows=getattr(spec, "max_rows", None),
        max_days=getattr(spec, "max_days", None),
        queue_size=getattr(spec, "queue_size", QUEUE_SIZE),
        embed=embed,
        encoder=identity,
    )


def _close_at_exit(ref: weakref.ref) -> None:
    log_ = ref()
    if log_ is not None and not log_._closed:
        log_.close(timeout=10.0)


def _insert(con: Connection):
    if con.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def _is_outage(e: Exception) -> bool:
    """A database that cannot be reached (or is locked), as opposed to one refusing the data."""
    return isinstance(e, sa.exc.OperationalError | sa.exc.InterfaceError) or bool(
        getattr(e, "connection_invalidated", False)
    )


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


class DecisionLogCollector:
    """Prometheus view of a DecisionLog: queued, written, dropped, write errors."""

    def __init__(self, decision_log: DecisionLog) -> None:
        self.log = decision_log

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        lg = self.log
        yield GaugeMetricFamily(
            "router_decision_log_queued", "Decision-log rows waiting to be written.", lg.queued
        )
        yield GaugeMetricFamily(
            "router_decision_log_up",
            "Decision-log database writable: 1 yes, 0 writes failing (rows are buffered).",
            0 if lg.failed is not None else 1,
        )
        yield CounterMetricFamily(
            "router_decision_log_written", "Decision-log rows written.", lg.written
        )
        yield CounterMetricFamily(
            "router_decision_log_dropped",
            "Decision-log rows and outcomes dropped (queue full during a database outage).",
            lg.dropped,
        )
        yield CounterMetricFamily(
            "router_decision_log_write_errors",
            "Failed decision-log write attempts.",
            lg.write_errors,
        )
        yield CounterMetricFamily(
            "router_decision_log_expired", "Rows removed by retention.", lg.expired
        )
