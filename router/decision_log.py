"""The decision log: one SQLite row per routed request, written off the event loop.

`DecisionLog.record()` only puts a row on a queue; a background thread owns the connection and
writes in batches, so a slow disk never stalls request handling. `close()` flushes. `summarise()`
reads a log back for `router stats`. Prompt text is stored only when the caller passes it
(the proxy does so only with `server.log_prompts: true`).
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COLUMNS: dict[str, str] = {
    "request_id": "TEXT PRIMARY KEY",
    "ts": "REAL NOT NULL",
    "key_name": "TEXT",
    "requested_model": "TEXT",
    "policy": "TEXT",
    "model": "TEXT",
    "tier": "TEXT",
    "domain": "TEXT",
    "domain_confidence": "REAL",
    "difficulty": "REAL",
    "reason": "TEXT",
    "escalated": "INTEGER",
    "fell_back": "INTEGER",
    "attempts": "TEXT",  # JSON list of {model, ok, error, ms}
    "stream": "INTEGER",
    "status": "INTEGER",
    "error": "TEXT",
    "routing_ms": "REAL",
    "upstream_ms": "REAL",
    "latency_ms": "REAL",
    "prompt_tokens": "INTEGER",
    "completion_tokens": "INTEGER",
    "cost_estimate": "REAL",
    "large_cost_estimate": "REAL",
    "decision": "TEXT",  # the full Decision as JSON
    "prompt": "TEXT",  # NULL unless prompt logging is on
}
_SCHEMA = "CREATE TABLE IF NOT EXISTS decisions ({})".format(
    ", ".join(f"{k} {v}" for k, v in COLUMNS.items())
)
_INSERT = "INSERT OR REPLACE INTO decisions ({}) VALUES ({})".format(
    ", ".join(COLUMNS), ", ".join("?" * len(COLUMNS))
)
_STOP = object()


class DecisionLog:
    """Append-only SQLite log fed through a queue by a single writer thread."""

    def __init__(self, path: str | Path, batch: int = 256) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._batch = batch
        self._queue: queue.Queue = queue.Queue()
        self._failed: Exception | None = None
        self._closed = False
        self._lock = threading.Lock()  # orders record() against close()
        # Create the table up front so a bad path fails at start-up, not silently later.
        with sqlite3.connect(self.path) as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(_SCHEMA)
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._thread.start()

    def record(self, row: dict[str, Any]) -> None:
        """Queue one row (keys from COLUMNS; missing keys are NULL). Never blocks while open;
        after `close()` (a request cut at shutdown ends late) the row is written at once."""
        values = tuple(_cell(row.get(k)) for k in COLUMNS)
        with self._lock:
            if not self._closed:
                self._queue.put(values)
                return
        self._write_now(values)

    def _write_now(self, values: tuple) -> None:
        try:
            with sqlite3.connect(self.path) as con:
                con.execute(_INSERT, values)
        except sqlite3.Error as e:
            self._failed = e

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued row is written (tests and shutdown)."""
        if self._closed:
            return  # close() wrote everything
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Flush and stop the writer thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        with self._lock:
            self._closed = True
        # Rows that raced in behind the stop marker are written now, not dropped.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple):
                self._write_now(item)
            elif isinstance(item, threading.Event):
                item.set()

    def _run(self) -> None:
        con = sqlite3.connect(self.path, check_same_thread=False)
        try:
            while True:
                item = self._queue.get()
                rows, events, stop = [], [], False
                # Drain what is already waiting into one transaction.
                while True:
                    if item is _STOP:
                        stop = True
                    elif isinstance(item, threading.Event):
                        events.append(item)
                    else:
                        rows.append(item)
                    if len(rows) >= self._batch:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if rows:
                    try:
                        with con:
                            con.executemany(_INSERT, rows)
                    except sqlite3.Error as e:  # keep serving; the error is visible via .failed
                        self._failed = e
                for ev in events:
                    ev.set()
                if stop:
                    return
        finally:
            con.close()

    @property
    def failed(self) -> Exception | None:
        """The last write error, if any."""
        return self._failed


def _cell(v: Any) -> Any:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, list | dict):
        return json.dumps(v, ensure_ascii=False)
    return v


# ---- reading the log back ------------------------------------------------------------------


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
    """Share per model, escalation rate, estimated savings and latency percentiles of a log."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no decision log at {path}")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT model, status, escalated, fell_back, cost_estimate, large_cost_estimate,"
            " latency_ms, routing_ms FROM decisions"
        ).fetchall()
    finally:
        con.close()
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
