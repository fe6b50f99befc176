"""Reaching the log's database: whether an error means it is down (or not up yet) or that it
refuses this log, and `Reconnect`, which brings up the schema of a log that started while its
PostgreSQL was down.

A log with a spool does not need its database to serve: rows wait on local disk until it is
back, as during an outage mid-run. So a PostgreSQL that cannot be reached at start-up does not
stop the start: the log begins with its rows in the spool, and its writer thread tries the
connection and the migration again with back-off until they work, then drains the spool in
order. What the database refuses (credentials, a database or role that does not exist, TLS
settings, a schema newer than this code) is a configuration error, said at start as before. A
SQLite file is local: one that cannot be opened is a disk or path error, never waited for.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from router.serving.decision_log.schema import migrate

log = logging.getLogger("router.serving.decision_log")

FIRST_RETRY_S = 0.5  # the first wait before trying the database again; doubles from there
MAX_RETRY_S = 10.0  # ... up to this (each wait drawn from its upper half: replicas spread out)

# What libpq and PostgreSQL say (in English) when the server answered and refused this log: its
# credentials, a role or database that does not exist, TLS it cannot do, settings it does not
# take. A server whose messages are translated is taken as down instead (tried again).
REFUSALS = (
    "authentication failed",  # password, ident, peer, LDAP, certificate (28P01, 28000)
    "no password supplied",
    "no pg_hba.conf entry",  # 28000
    "does not exist",  # the role or the database (28000, 3D000)
    "not permitted to log in",
    "permission denied",  # no CONNECT privilege (42501)
    "does not support ssl",
    "ssl was required",
    "certificate",  # TLS: the server's certificate cannot be verified
    "channel binding",
    "authentication method",
    "invalid",  # a setting libpq refuses: "invalid sslmode value", "invalid port number"
)


def is_outage(e: BaseException) -> bool:
    """A database that cannot be reached (or is locked), as opposed to one refusing the data."""
    return isinstance(e, sa.exc.OperationalError | sa.exc.InterfaceError) or bool(
        getattr(e, "connection_invalidated", False)
    )


def refuses(e: BaseException) -> bool:
    """The server answered and refuses this log (`REFUSALS`): a configuration error."""
    text = str(getattr(e, "orig", None) or e).lower()
    return any(words in text for words in REFUSALS)


def unreachable(e: BaseException) -> bool:
    """The database is down or not up yet, so worth waiting for: a refused or timed-out
    connection, a host name that does not resolve (yet), a server starting, stopping or out
    of connection slots, a connection cut mid-way. Not: a URL SQLAlchemy or psycopg cannot use,
    a refusal (`refuses`), a schema newer than this code (a DecisionLogError)."""
    return is_outage(e) and not refuses(e)


def migrate_or_wait(
    engine: Engine, where: str, spool: Path | None, *, may_wait: bool
) -> Reconnect | None:
    """Create or upgrade the schema now (None), or, when the database cannot be reached and
    the log may wait for it (a spool to keep rows in, a database other than SQLite), a
    `Reconnect` for the writer thread to run. Anything else raises as `migrate` does."""
    try:
        migrate(engine)
        return None
    except (sa.exc.SQLAlchemyError, OSError) as e:
        if not may_wait or engine.dialect.name == "sqlite" or not unreachable(e):
            raise
        log.warning(
            "decision log: %s is not reachable at start (%s); serving anyway: rows wait in the "
            "spool %s and are written once it is up (tried again in the background)",
            where,
            first_line(e),
            spool,
        )
        return Reconnect(engine, where, e)


class Reconnect:
    """The schema of a log whose database was down at start: `run()` tries `migrate` with
    back-off until it works. Several replicas may come to it at once when the database comes
    up: `migrate` takes a PostgreSQL advisory lock, so one migrates and the others find the
    schema done. A refusal met meanwhile (the database is up, but refuses the credentials, say)
    is logged as an error, once per message, and tried again too: nothing is lost meanwhile,
    the rows stay in the spool, and a fix on the database's side is picked up."""

    def __init__(self, engine: Engine, where: str, error: BaseException) -> None:
        self.engine, self.where = engine, where
        self.error = error  # the last try's
        self.tries = 1
        self._said: str | None = None  # the last refusal logged (None: down, said at start)

    def run(
        self,
        stop: threading.Event,
        stop_by: Callable[[], float | None],
        failed: Callable[[BaseException], None],
    ) -> bool:
        """Try until the schema is up (True), or the log is closing and its time to flush
        is up (False: the rows stay in the spool). `stop` is set when the log starts closing,
        `stop_by()` is the monotonic time it may wait till; `failed(error)` is called after
        each failed try (the writer shows the error, and rotates its spool)."""
        delay = FIRST_RETRY_S
        while self._sleep(random.uniform(delay / 2, delay), stop, stop_by):
            try:
                migrate(self.engine)
            except Exception as e:  # noqa: BLE001 - said and tried again: the thread lives on
                self.tries += 1
                self.error = e
                self._report(e)
                failed(e)
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            log.warning(
                "decision log: %s is reachable (after %d tries); schema ready, writing the rows "
                "that waited in the spool",
                self.where,
                self.tries + 1,
            )
            return True
        return False

    def _sleep(
        self, seconds: float, stop: threading.Event, stop_by: Callable[[], float | None]
    ) -> bool:
        """Wait before the next try; False once the log is closing and its time is up."""
        if not stop.is_set():
            stop.wait(seconds)  # a close cuts it short: one more try at once
            return True
        left = (stop_by() or 0.0) - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(seconds, left))
        return True

    def _report(self, e: BaseException) -> None:
        if unreachable(e):
            if self._said is not None:
                log.warning("decision log: %s is not reachable (%s)", self.where, first_line(e))
                self._said = None
            return
        said = first_line(e)
        if said != self._said:
            log.error(
                "decision log: %s refuses this log (%s); rows wait in the spool until that "
                "is fixed (tried again every %g s)",
                self.where,
                said,
                MAX_RETRY_S,
            )
            self._said = said


def first_line(e: BaseException) -> str:
    """The driver's own first line of an error (no SQLAlchemy prefix, no SQL)."""
    text = str(getattr(e, "orig", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__
