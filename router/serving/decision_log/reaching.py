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
import re
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

# What the server answers when it refuses this log, by SQLSTATE: its credentials or a role
# that may not log in (class 28), a database that does not exist (3D000), no CONNECT privilege
# (42501), a rejected connection (08004), settings it does not take (42704 unknown, 22023 a bad
# value), a database that takes no connections (55000). Any other code is no refusal.
REFUSED_SQLSTATES = frozenset({"3D000", "42501", "08004", "42704", "22023", "55000"})
REFUSED_CLASSES = ("28",)

# libpq gives no SQLSTATE for an error met while connecting, the server's included: only its
# message, which the server words in its own language (lc_messages). So a message is read by
# its form: libpq writes what the server said as "SEVERITY:  text" (two spaces, a word of any
# language), its own errors otherwise. What libpq says itself (in this process's language,
# English) when it refuses a setting or the server's TLS or authentication:
CLIENT_REFUSALS = (
    "no password supplied",
    "does not support ssl",
    "ssl was required",
    "certificate",  # TLS: the server's certificate cannot be verified
    "channel binding",
    "authentication method",
    "invalid",  # a setting libpq refuses: "invalid sslmode value", "invalid port number"
)
# ... and what a server (or a pooler before it) that is up says when it cannot take the
# connection yet: starting, stopping or in recovery (57P03), out of connection slots (53300) or
# memory, a pooler that cannot reach its server. Any other answer of the server is a refusal,
# in whatever language it is worded; one of these in another language is taken as one too.
SERVER_BUSY = (
    "the database system is",  # starting up, shutting down, in recovery mode, not accepting
    "too many clients",
    "too many connections",
    "connection slots are reserved",
    "out of memory",
    "terminating connection",
    "could not fork",
    "shutting down",
    "cannot connect to server",  # PgBouncer
    "no more connections allowed",  # PgBouncer's max_client_conn
    "try again later",  # PgBouncer's server_login_retry
    "timeout",  # PgBouncer's query_wait_timeout, client_login_timeout
)
# What the server said, after libpq's "... failed: " (a line of its own: DETAIL, HINT follow).
_SERVER_SAID = re.compile(r"failed: [^\s:][^:\n]{0,30}:  (\S.*)")


def is_outage(e: BaseException) -> bool:
    """A database that cannot be reached (or is locked), as opposed to one refusing the data."""
    return isinstance(e, sa.exc.OperationalError | sa.exc.InterfaceError) or bool(
        getattr(e, "connection_invalidated", False)
    )


def sqlstate(e: BaseException) -> str | None:
    """The SQLSTATE of a driver error (psycopg's `.sqlstate`, under SQLAlchemy's `.orig`); None
    when it has none, as every error met while connecting."""
    for error in (getattr(e, "orig", None), e):
        code = getattr(error, "sqlstate", None)
        if isinstance(code, str) and len(code) == 5:
            return code
    return None


def refuses(e: BaseException) -> bool:
    """The server answered and refuses this log: a configuration error. Read from the SQLSTATE
    where the driver gives one, else from the message's form (`CLIENT_REFUSALS`, `SERVER_BUSY`)."""
    code = sqlstate(e)
    if code is not None:
        return code in REFUSED_SQLSTATES or code.startswith(REFUSED_CLASSES)
    text = str(getattr(e, "orig", None) or e)
    if any(words in text.lower() for words in CLIENT_REFUSALS):
        return True
    return bool(unread_server_words(e))


def unread_server_words(e: BaseException) -> list[str]:
    """What the server said while refusing the connection, when none of it is a busy server's
    English (`SERVER_BUSY`): words of a refusal, or of a busy server in another language."""
    if sqlstate(e) is not None:
        return []
    text = str(getattr(e, "orig", None) or e)
    said = [m.group(1).lower() for m in _SERVER_SAID.finditer(text)]
    return said if any(not any(w in line for w in SERVER_BUSY) for line in said) else []


def pings_busy(engine: Engine) -> bool:
    """Does the server answer libpq's ping with "up, but not taking connections" (starting,
    stopping, in recovery)? The ping reads the answer's SQLSTATE (57P03), which a connection's
    error does not carry, so it tells a busy server from a refusal in any language. Not "too
    many clients": the ping takes that for up."""
    if engine.dialect.name != "postgresql":
        return False
    from psycopg import pq  # the driver of every PostgreSQL URL the log takes

    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return pq.PGconn.ping(url.encode()) == pq.Ping.REJECT


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
        if not may_wait or engine.dialect.name == "sqlite":
            raise
        # Words the server said in another language are a refusal unless the ping says busy.
        if not unreachable(e) and not (unread_server_words(e) and pings_busy(engine)):
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
