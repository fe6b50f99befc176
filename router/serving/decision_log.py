"""The decision log: one row per routed request, and the outcomes learned about it later.

One schema (SQLAlchemy Core, migrated by Alembic at start) on SQLite (the default, a file) or
PostgreSQL (`postgresql://...`, psycopg 3). `DecisionLog.record()` only puts a row on a queue; a
background thread owns the database and writes in batches, so neither a slow disk nor a database
outage stalls request handling. During an outage rows wait in a bounded queue; past its bound
they are dropped and counted (`dropped`), never blocking the caller.

A row holds what retraining needs (request id, time, policy, decision, scores, the routing
embedding as int8) and, only with `store_text=True`, the routing text. `decision_row()` builds
the row from a Decision: the proxy's chat and route endpoints, the SDK and notebook 03 all use it.
Outcomes (user feedback, shadow judgements) go to a second table through `record_outcome()`; the
last write per (request, source, model) wins and counts a revision. `summarise()` reads a log
back for `router stats`; `export_examples()` turns rows with outcomes into training rows.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from router.core.data import DataError

if TYPE_CHECKING:
    from router.core.data import Example
    from router.core.policy import Decision

log = logging.getLogger("router.serving.decision_log")

SOURCES = ("feedback", "shadow")
QUEUE_SIZE = 10_000  # rows waiting for the database before new ones are dropped
RETENTION_EVERY_S = 60.0  # how often the writer enforces max_rows / max_days

metadata = sa.MetaData()

# The request's row. Column types match the SQLite file of the first version (TEXT, REAL,
# INTEGER), which migration 0001 adopts as is; migration 0002 added the learning columns.
decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("request_id", sa.Text, primary_key=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("key_name", sa.Text),
    sa.Column("requested_model", sa.Text),
    sa.Column("policy", sa.Text),
    sa.Column("model", sa.Text),
    sa.Column("tier", sa.Text),
    sa.Column("domain", sa.Text),
    sa.Column("domain_confidence", sa.Float),
    sa.Column("difficulty", sa.Float),
    sa.Column("reason", sa.Text),
    sa.Column("escalated", sa.Integer),
    sa.Column("fell_back", sa.Integer),
    sa.Column("attempts", sa.Text),  # JSON list of {model, ok, error, ms}
    sa.Column("stream", sa.Integer),
    sa.Column("status", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("routing_ms", sa.Float),
    sa.Column("upstream_ms", sa.Float),
    sa.Column("latency_ms", sa.Float),
    sa.Column("prompt_tokens", sa.Integer),
    sa.Column("completion_tokens", sa.Integer),
    sa.Column("cost_estimate", sa.Float),
    sa.Column("large_cost_estimate", sa.Float),
    sa.Column("decision", sa.Text),  # the full Decision as JSON
    sa.Column("prompt", sa.Text),  # NULL unless the proxy's server.log_prompts is on
    # ---- since migration 0002 ----
    sa.Column("kind", sa.Text),  # "chat", "route" (POST /v1/route), "sdk.chat", "sdk.route"
    sa.Column("gain", sa.Float),
    sa.Column("success", sa.Text),  # JSON {model: p(success)}
    sa.Column("embedding", sa.LargeBinary),  # int8 routing embedding; × embedding_scale
    sa.Column("embedding_scale", sa.Float),
    sa.Column("encoder", sa.Text),  # identity of the encoder that made the embedding
    sa.Column("routing_text", sa.Text),  # NULL unless decision_log.store_text is on
    sa.Index("ix_decisions_ts", "ts"),
)

# What was learned about a request afterwards: a user's feedback or a shadow judge's verdict.
outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),  # "feedback" | "shadow"
    sa.Column("model", sa.Text, nullable=False, server_default=""),  # "" : the answering model
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("detail", sa.Text),  # JSON
    sa.Column("ts", sa.Float, nullable=False),  # first write
    sa.Column("updated_ts", sa.Float, nullable=False),  # last write
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),  # writes so far
    sa.PrimaryKeyConstraint("request_id", "source", "model", name="pk_outcomes"),
)

COLUMNS: tuple[str, ...] = tuple(c.name for c in decisions.columns)
# Kept in memory only: turned into the embedding by the writer, stored only with store_text.
ROUTING_TEXT = "routing_text"


class DecisionLogError(DataError):
    """The decision log cannot be opened or read (bad path or URL, unreachable database).
    A DataError: the CLI reports it as one red line, like any unreadable data source."""


# ---- where the log lives ------------------------------------------------------------------


def database_url(location: str | Path) -> str:
    """A SQLAlchemy URL for a `decision_log` setting: a file path (SQLite) or a URL.

    `postgresql://` means psycopg 3 (`postgresql+psycopg://`), the driver the project ships.
    """
    text = str(location)
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    scheme, _, rest = text.partition("://")
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return text


def safe_url(url: str) -> str:
    """The URL with any password hidden, for logs and errors."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def open_engine(location: str | Path) -> Engine:
    url = database_url(location)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_con, _record) -> None:
            # WAL: readers (router stats, has_request) never wait for the writer.
            dbapi_con.execute("PRAGMA journal_mode=WAL")
            dbapi_con.execute("PRAGMA synchronous=NORMAL")

        return engine
    # pool_pre_ping: after a database restart, stale pooled connections are replaced.
    # connect_timeout: an unreachable host must not hold a feedback request (or the writer's
    # retry loop) for the operating system's TCP time-out.
    return sa.create_engine(
        url, pool_pre_ping=True, pool_size=2, max_overflow=2, connect_args={"connect_timeout": 5}
    )


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema to the newest revision (Alembic, router/migrations).

    A SQLite log written by the first version (a `decisions` table, no Alembic stamp) is
    stamped as revision 0001 and upgraded in place. Workers and replicas that start together
    migrate one at a time: a PostgreSQL advisory lock, or a lock file beside a SQLite file.
    """
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("router.serving") / "migrations"))
    with _file_lock(engine), engine.begin() as con:
        if con.dialect.name == "postgresql":
            con.execute(sa.text("SELECT pg_advisory_xact_lock(726001)"))
        insp = sa.inspect(con)
        cfg.attributes["connection"] = con
        if insp.has_table("decisions") and not insp.has_table("alembic_version"):
            command.stamp(cfg, "0001")
        command.upgrade(cfg, "head")


@contextlib.contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on `<file>.lock` beside a SQLite database (no-op otherwise)."""
    db = engine.url.database if engine.dialect.name == "sqlite" else None
    if not db or db == ":memory:":
        yield
        return
    import fcntl

    with open(f"{db}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---- the row ------------------------------------------------------------------------------


def quantize(vector: np.ndarray) -> tuple[bytes, float]:
    """An embedding as int8 bytes and the scale that restores it (max |v| ↦ 127)."""
    v = np.asarray(vector, dtype=np.float32).ravel()
    peak = float(np.abs(v).max()) if v.size else 0.0
    scale = peak / 127 if peak > 0 else 1.0
    return np.clip(np.round(v / scale), -127, 127).astype(np.int8).tobytes(), scale


def dequantize(blob: bytes, scale: float) -> np.ndarray:
    """The float embedding of `quantize`'s bytes, unit-normed as the encoder's rows are."""
    v = np.frombuffer(blob, dtype=np.int8).astype(np.float32) * float(scale)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def decision_row(
    decision: Decision | None,
    request_id: str,
    *,
    kind: str = "chat",
    ts: float | None = None,
    status: int | None = 200,
    routing_text: str | None = None,
    usage: tuple[int, int] | None = None,
    cost: tuple[float, float] | None = None,
    scrub: Callable[[str | None], str | None] = lambda s: s,
    **fields: Any,
) -> dict[str, Any]:
    """The decision-log row of one request: the one builder behind every writer.

    `routing_text` is what the router embedded; the log turns it into the int8 embedding and
    keeps the text itself only with `store_text`. `cost` is (estimate, large-model estimate),
    by default the decision's own; `scrub` hides secrets and quoted prompts in error texts.
    `fields` are further columns (key_name, requested_model, stream, error, latency_ms, ...).
    """
    row: dict[str, Any] = {
        "request_id": request_id,
        "ts": time.time() if ts is None else ts,
        "kind": kind,
        "status": status,
        **fields,
    }
    if decision is not None:
        d = decision
        attempts = [{**a.__dict__, "error": scrub(a.error)} for a in d.attempts]
        if cost is None:
            cost = (d.cost_estimate, d.large_cost_estimate)
        row.update(
            policy=d.policy,
            model=d.model,
            tier=d.tier,
            domain=d.domain,
            domain_confidence=d.domain_confidence,
            difficulty=d.difficulty,
            gain=d.gain,
            success=json.dumps(d.success),
            reason=scrub(d.reason),
            escalated=d.escalated,
            fell_back=any(not a.ok for a in d.attempts),
            attempts=json.dumps(attempts, ensure_ascii=False),
            upstream_ms=sum(a.ms for a in d.attempts),
            routing_ms=d.routing_ms,
            # Scrubbed field by field: JSON escaping would hide a quoted prompt from a replace.
            decision=json.dumps(
                {**d.to_dict(), "reason": scrub(d.reason), "attempts": attempts},
                ensure_ascii=False,
            ),
            cost_estimate=cost[0],
            large_cost_estimate=cost[1],
        )
    if usage is not None:
        row.update(prompt_tokens=usage[0], completion_tokens=usage[1])
    if routing_text:
        row[ROUTING_TEXT] = routing_text
    return row


def feedback_score(value: Any) -> float:
    """A feedback score: a number in [0, 1], or "up" (1.0) / "down" (0.0)."""
    if isinstance(value, str):
        named = {"up": 1.0, "down": 0.0}.get(value.strip().lower())
        if named is None:
            raise ValueError(f'score must be a number in [0, 1], "up" or "down", got {value!r}')
        return named
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f'score must be a number in [0, 1], "up" or "down", got {value!r}')
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"score must be in [0, 1], got {value!r}")
    return float(value)


def _cell(v: Any) -> Any:
    if isinstance(v, str) and "\x00" in v:
        return v.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, list | dict):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, np.generic):
        return v.item()
    return v


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
    errors: int = 0
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
            q = sa.select(*cols)
            if "kind" in {col["name"] for col in sa.inspect(con).get_columns("decisions")}:
                q = q.where(sa.or_(c.kind.is_(None), ~c.kind.in_(["route", "sdk.route"])))
            rows = con.execute(q).all()
    finally:
        engine.dispose()
    s = Stats(requests=len(rows))
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
