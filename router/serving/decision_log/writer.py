"""`DecisionLog`: `record()` hands a row over and returns; a background thread owns the
database and writes in batches, so neither a slow disk nor an outage stalls request handling.

With a spool (spool.py, the default of `open_decision_log`) every item is first appended to
this process's journal on local disk, and the writer drains the journal: a process killed at
any moment loses nothing it recorded, and a database outage fills the disk, not memory. A
dead process's journal is replayed by the next log that opens the same spool directory (at
start, then every `REPLAY_EVERY_S`). Without a spool, rows wait in a bounded in-memory queue;
past its bound they are dropped and counted. With a spool, a PostgreSQL that is down at start
does not stop the start: the writer reaches it, and migrates, once it is up (reaching.py)."""

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
from typing import Any

import numpy as np
import sqlalchemy as sa

from router.serving.decision_log.reaching import Reconnect, first_line, is_outage, migrate_or_wait
from router.serving.decision_log.rows import _cell, quantize
from router.serving.decision_log.schema import (
    COLUMNS,
    ROUTING_TEXT,
    DecisionLogError,
    database_url,
    decisions,
    open_engine,
    outcomes,
    safe_url,
)
from router.serving.decision_log.spool import Spool
from router.serving.decision_log.upserts import ROW_KINDS, write_items

log = logging.getLogger("router.serving.decision_log")


SOURCES = ("feedback", "shadow")
QUEUE_SIZE = 10_000  # rows waiting for the database before new ones are dropped (no spool)
RETENTION_EVERY_S = 60.0  # how often the writer enforces max_rows / max_days
REPLAY_EVERY_S = 10.0  # how often the writer looks for dead processes' spools
LINGER_S = 0.01  # how long the spool's writer lets items gather after being woken


# ---- the writer ---------------------------------------------------------------------------


class _Flush:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()


_STOP = object()


class DecisionLog:
    """The log of one process: a spool (or a bounded queue) and one writer thread.

    `embed(text) -> vector` turns a row's routing text into its embedding (on the writer thread,
    off the event loop); `encoder` names it in the row. Retention keeps at most `max_rows` rows
    and none older than `max_days` (outcomes go with their request's row). `spool`: this
    process's write-ahead journal, owned (and closed) by the log from now on.
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
        spool: Spool | None = None,
    ) -> None:
        self.url = database_url(path)
        # The SQLite file, for callers that open it directly (tests, notebooks); None otherwise.
        self.path: Path | None = (
            Path(self.url.removeprefix("sqlite:///")) if self.url.startswith("sqlite:///") else None
        )
        self.store_text = store_text
        self.max_rows, self.max_days = max_rows, max_days
        self.embed, self.encoder = embed, encoder
        self.spool = spool
        self._batch = batch
        self._queue_size = queue_size
        self._queue: queue.Queue = queue.Queue()
        self._failed: Exception | None = None
        self._closed = False
        self._stopping = False
        self._stop_by: float | None = None
        self._stop = threading.Event()  # set when close() begins
        self._lock = threading.Lock()  # orders record() against close(); guards counters
        self._wake = threading.Event()  # the spool has new items
        self._progress = threading.Condition()  # the spool's items reached the database
        # Request ids recorded, not yet written → [items, key name] (feedback checks both).
        self._pending: dict[str, list] = {}
        self._outcome_ts = 0.0
        self.dropped = 0  # rows and outcomes given up on (queue full, refused, database down)
        self.written = 0
        self.write_errors = 0
        self.expired = 0  # rows removed by retention
        self.replayed = 0  # items taken over from dead processes' spools
        self.spool_errors = 0  # appends or fsyncs the spool's disk refused
        try:
            self.engine = open_engine(path)
            # Schema created or migrated up front: a bad path or URL fails at start-up. A
            # PostgreSQL that is down (or not up yet) does not: with a spool, the rows wait
            # there while the writer thread tries again (reaching.py).
            self._reconnect: Reconnect | None = migrate_or_wait(
                self.engine,
                safe_url(self.url),
                spool.dir if spool is not None else None,
                may_wait=spool is not None,
            )
        except (sa.exc.SQLAlchemyError, OSError, DecisionLogError) as e:
            if spool is not None:
                spool.close()
            raise DecisionLogError(f"decision log {safe_url(self.url)}: {e}") from e
        if self._reconnect is not None:
            self._failed = self._reconnect.error
        if spool is not None:
            # At start, before this process answers anything: dead processes' spools become
            # part of this one's (the writer drains them first).
            self._replay_orphans()
        run = self._run if spool is None else self._run_spool
        self._thread = threading.Thread(target=run, name="decision-log", daemon=True)
        self._thread.start()
        # An SDK caller may never close its log: queued rows are written at interpreter exit.
        atexit.register(_close_at_exit, weakref.ref(self))

    def __repr__(self) -> str:
        return f"DecisionLog({safe_url(self.url)!r})"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # ---- writing ----------------------------------------------------------------------------

    def start(self, row: dict[str, Any]) -> int | None:
        """The write-ahead row of a request whose answer is about to begin: its decision, no
        status yet (phase "started"). `record()` of the whole row completes it later. Returns
        the item's spool sequence number for `durable()` (None without a spool)."""
        return self._append("start", {**row, "status": None, "phase": "started"})

    def record(self, row: dict[str, Any]) -> int | None:
        """Record a request's whole row (keys from COLUMNS, missing keys are NULL;
        `routing_text` becomes the embedding). Never blocks on the database: without a spool,
        past the queue's bound the row is dropped and counted. After `close()` (a request cut
        at shutdown ends late) the row is written at once. Returns the spool sequence number
        for `durable()` (None without a spool)."""
        return self._append("row", {**row, "phase": row.get("phase") or "ended"})

    def durable(self, seq: int | None) -> None:
        """Block until item `seq` is on disk, if the spool's fsync policy is `always` (else
        it already is as durable as the policy makes it: in the kernel, safe from a kill)."""
        if seq is not None and self.spool is not None and self.spool.must_sync():
            self._sync(seq)

    async def adurable(self, seq: int | None) -> None:
        """`durable()` for the event loop: the fsync runs in a worker thread."""
        if seq is not None and self.spool is not None and self.spool.must_sync():
            import asyncio

            await asyncio.to_thread(self._sync, seq)

    def _sync(self, seq: int) -> None:
        try:
            self.spool.sync(seq)
        except OSError as e:  # a failing disk fails no answer: said loudly instead
            self.spool_errors += 1
            log.error("decision spool: fsync failed: %s", e)

    def _append(self, kind: str, item: dict[str, Any]) -> int | None:
        rid = item.get("request_id") if kind in ROW_KINDS else None
        with self._lock:
            if not self._closed:
                if self.spool is not None:
                    try:
                        seq = self.spool.append(kind, item)
                    except (OSError, TypeError) as e:
                        # A full disk (or an item JSON cannot hold) fails no answer: the
                        # item is dropped and counted, and said loudly.
                        self.spool_errors += 1
                        self._drop(1)
                        log.error("decision spool: cannot append a %s item: %s", kind, e)
                        return None
                elif self._queue.qsize() >= self._queue_size:
                    self._drop(1)
                    return None
                else:
                    seq = None
                    self._queue.put((kind, item))
                if rid is not None:
                    entry = self._pending.get(rid)
                    if entry is None and len(self._pending) < self._queue_size:
                        # Bounded: past it (a long outage) feedback on a row not yet written
                        # asks the database, and is told to retry while it is down.
                        entry = self._pending[rid] = [0, item.get("key_name")]
                    if entry is not None:
                        entry[0] += 1
                self._wake.set()
                return seq
        self._write_now([(kind, item)])
        return None

    def record_outcome(
        self,
        request_id: str,
        score: float,
        source: str,
        model: str | None = None,
        detail: dict | None = None,
        *,
        key_name: str | None = None,
    ) -> None:
        """Record what was learned about a request: a score in [0, 1] from `source`
        ("feedback" or "shadow"), about `model` (None: the model that answered).

        The last write per (request, source, model) wins; its `revision` counts the writes.
        Raises KeyError for an unknown request id, or one made with another key than
        `key_name` (when given); ValueError for a bad score or source.
        Queued like rows; may raise a database error only while checking the id."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise ValueError(f"score must be a number in [0, 1], got {score!r}")
        score = float(score)
        if math.isnan(score) or not 0.0 <= score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {score!r}")
        if not self.has_request(request_id, key_name):
            raise KeyError(request_id)
        with self._lock:
            # Strictly increasing: the database keeps an outcome only over an older one, so a
            # replayed outcome changes nothing and a new one always counts.
            now = self._outcome_ts = max(time.time(), self._outcome_ts + 1e-6)
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
        self._append("outcome", item)

    def has_request(self, request_id: str, key_name: str | None = None) -> bool:
        """Whether a row with this id exists (written, or still queued), made with `key_name`
        when one is given (another key's request is as good as absent)."""
        with self._lock:
            entry = self._pending.get(request_id)
        if entry is not None and (key_name is None or entry[1] == key_name):
            return True
        with self.engine.connect() as con:
            q = sa.select(decisions.c.key_name).where(decisions.c.request_id == request_id)
            found = con.execute(q).first()
        return found is not None and (key_name is None or found[0] == key_name)

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
                "decision log: %d rows dropped so far (queue full, refused or database down)",
                self.dropped,
            )

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every recorded item is written (tests and shutdown); False on timeout."""
        if self._closed:
            return True  # close() wrote everything it could
        if self.spool is not None:
            target = self.spool.last
            self._wake.set()
            with self._progress:
                return self._progress.wait_for(lambda: self.spool.done_through >= target, timeout)
        marker = _Flush()
        self._queue.put(("flush", marker))
        return marker.event.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Flush (waiting up to `timeout` for a database that is down) and stop the writer.
        With a spool, what could not be written stays in it for the next process to replay."""
        self._stop_by = time.monotonic() + timeout
        self._stopping = True
        self._stop.set()
        if self._thread.is_alive():
            self._queue.put(("stop", _STOP))
            self._wake.set()
            self._thread.join(timeout + 5)
        with self._lock:
            self._closed = True
        if self.spool is not None:
            self._make_durable()
            unwritten, unended = self.spool.pending, self.spool.open_requests
            if self.spool.close():
                log.warning(
                    "decision log: %d items not written and %d requests not ended at the close "
                    "stay in the spool %s for the next process to replay",
                    unwritten,
                    unended,
                    self.spool.dir,
                )
            self.engine.dispose()
            return
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
        """A recorded row → its cells: embedding computed, routing text kept only if asked."""
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

    def _write(self, con, items: list[tuple[str, Any]]) -> None:
        write_items(con, [(k, self._prepare_row(p) if k in ROW_KINDS else p) for k, p in items])

    def _settle(self, items: list[tuple[str, Any]], written: bool) -> None:
        """Forget the pending ids of items that were written or dropped."""
        if not items:
            return
        with self._lock:
            for kind, p in items:
                if kind not in ROW_KINDS:
                    continue
                rid = p.get("request_id")
                entry = self._pending.get(rid)
                if entry is not None:
                    entry[0] -= 1
                    if entry[0] <= 0:
                        del self._pending[rid]
            if written:
                self.written += sum(1 for k, _ in items if k in ROW_KINDS)
            else:
                self._drop(len(items))

    def _run(self) -> None:
        """The writer without a spool: drains the in-memory queue."""
        next_retention = time.monotonic()
        while True:
            next_retention = self._retention_due(next_retention)
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
                written, refused, unwritten = self._write_with_retry(items, stop)
                self._settle(written, True)
                self._settle(refused + unwritten, False)
            for m in markers:
                m.event.set()
            if stop:
                return

    def _run_spool(self) -> None:
        """The writer with a spool: replays dead processes' spools, then drains its own."""
        if self._reconnect is not None:  # the database was down at start: its schema first
            if not self._reconnect.run(self._stop, lambda: self._stop_by, self._waiting):
                return  # closing before it came up: the items stay in the spool
            self._reconnect = self._failed = None
        next_retention = time.monotonic()
        next_replay = time.monotonic() + REPLAY_EVERY_S
        while True:
            if not self._stopping:
                next_retention = self._retention_due(next_retention)
                if time.monotonic() >= next_replay:
                    self._replay_orphans()
                    next_replay = time.monotonic() + REPLAY_EVERY_S
            self._wake.clear()
            entries = self.spool.read(self._batch)
            if not entries:
                if self._stopping:
                    return
                self._rotate()
                if self._wake.wait(min(REPLAY_EVERY_S, RETENTION_EVERY_S)) and not self._stopping:
                    # Woken by a new item: let the burst it belongs to gather into one batch
                    # (fewer transactions, less of the writer competing with requests).
                    time.sleep(LINGER_S)
                continue
            items = [(e.kind, e.data) for e in entries]
            written, refused, unwritten = self._write_with_retry(items, self._stopping)
            self._settle(written, True)
            self._settle(refused, False)  # the database refuses them: replaying cannot help
            if unwritten:
                return  # closing while the database is down: they stay in the spool
            with self._progress:
                self.spool.done(entries[-1].seq)
                self._progress.notify_all()
            self._rotate()

    def _waiting(self, error: BaseException) -> None:
        """A try to reach the database that was down at start failed."""
        self._failed = error
        self._rotate()  # the spool stays in segments while it grows

    def _rotate(self) -> None:
        """A new spool segment when the current one is full; finished ones deleted once the
        database holds their items durably."""
        try:
            self.spool.rotate()
            if self.spool.finished_segments():
                self._make_durable()
                self.spool.remove_finished()
        except OSError as e:
            log.error("decision spool: %s", e)

    def _make_durable(self) -> None:
        """What is committed is on disk: a SQLite commit in WAL mode with synchronous=NORMAL
        reaches the disk at the next checkpoint (PostgreSQL's is at commit, by default)."""
        if self.dialect != "sqlite":
            return
        try:
            with self.engine.connect() as con:
                con.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except sa.exc.SQLAlchemyError as e:
            log.warning("decision log: checkpoint failed: %s", first_line(e))

    def _replay_orphans(self) -> None:
        """Take over the spools of dead processes: their items are appended to this one's
        (durably) before theirs are deleted. A request they started and never ended is
        marked interrupted."""
        try:
            for orphan in self.spool.claim_orphans():
                try:
                    open_ids: dict[str, None] = {}
                    n = 0
                    for e in orphan.entries():
                        self._append(e.kind, e.data)
                        n += 1
                        rid = e.data.get("request_id")
                        if e.kind == "start":
                            open_ids[rid] = None
                        elif e.kind == "row":
                            open_ids.pop(rid, None)
                    for rid in open_ids:
                        why = f"interrupted: the process serving it ({orphan.owner}) ended first"
                        self._append("interrupted", {"request_id": rid, "error": why})
                    self.spool.sync()
                    orphan.remove()
                except Exception:
                    orphan.release()
                    raise
                self.replayed += n
                log.warning(
                    "decision log: replayed %d items (%d interrupted requests) from the spool "
                    "of %s, a process that ended without writing them",
                    n,
                    len(open_ids),
                    orphan.owner,
                )
        except (OSError, RuntimeError) as e:
            log.error("decision log: replaying a spool failed: %s", e)

    def _retention_due(self, next_retention: float) -> float:
        if (self.max_rows or self.max_days) and time.monotonic() >= next_retention:
            try:
                self.enforce_retention()
            except sa.exc.SQLAlchemyError as e:
                self._failed = e
            return time.monotonic() + RETENTION_EVERY_S
        return next_retention

    def _write_with_retry(
        self, items: list[tuple[str, Any]], stopping: bool
    ) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]], list[tuple[str, Any]]]:
        """Write one batch → (written, refused, unwritten). While the database is down, retry
        with back-off; give up (unwritten) only when the log is closing and its time is up. A
        batch the database refuses for its content is written item by item, and only the
        refused items are given up (a bad row must not stall the log)."""
        delay = 0.2
        while True:
            try:
                with self.engine.begin() as con:
                    self._write(con, items)
                if self._failed is not None:
                    log.warning("decision log: writes resumed")
                self._failed = None
                return items, [], []
            except sa.exc.SQLAlchemyError as e:
                self.write_errors += 1
                if not is_outage(e):
                    return self._write_one_by_one(items, e)
                if self._failed is None:
                    log.warning("decision log: write failed, buffering: %s", first_line(e))
                self._failed = e
            stop_by = self._stop_by
            if stop_by is None and not stopping:
                # A stop marker behind us in the queue also ends the wait (close() sets it).
                time.sleep(delay)
            elif time.monotonic() >= (stop_by or 0):
                return [], [], items
            else:
                time.sleep(min(delay, max(0.0, stop_by - time.monotonic())))
            delay = min(delay * 2, 5.0)

    def _write_one_by_one(self, items, error: Exception):
        log.error(
            "decision log: a batch was refused (%s); writing it row by row", first_line(error)
        )
        good, bad = [], []
        for item in items:
            try:
                with self.engine.begin() as con:
                    self._write(con, [item])
                good.append(item)
            except sa.exc.SQLAlchemyError as e:
                if is_outage(e):  # went down meanwhile: retry the rest as a batch
                    rest = [i for i in items if i not in good and i not in bad]
                    ok, refused, unwritten = self._write_with_retry(rest, False)
                    return good + ok, bad + refused, unwritten
                log.error("decision log: dropped a row the database refused: %s", first_line(e))
                bad.append(item)
        return good, bad, []

    @property
    def failed(self) -> Exception | None:
        """The last write error while writes are failing; None once they succeed again."""
        return self._failed

    @property
    def waiting(self) -> bool:
        """The database was down at start and has not been reached yet (rows are spooled)."""
        return self._reconnect is not None

    @property
    def queued(self) -> int:
        """Items waiting for the writer."""
        return self.spool.pending if self.spool is not None else self._queue.qsize()

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


def _close_at_exit(ref: weakref.ref) -> None:
    log_ = ref()
    if log_ is not None and not log_._closed:
        log_.close(timeout=10.0)


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None
