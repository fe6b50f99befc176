"""Where the decision log lives and its schema: two tables (SQLAlchemy Core), the engine for
a SQLite path or PostgreSQL URL, and the Alembic migrations run at start."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from router.core.data import DataError

if TYPE_CHECKING:
    pass


log = logging.getLogger("router.serving.decision_log")


metadata = sa.MetaData()

# The request's row. Column types match the SQLite file of the first version (TEXT, REAL,
# INTEGER), which migration 0001 adopts as is; migration 0002 added the learning columns,
# 0003 the cache and privacy columns, 0004 the phase of write-ahead rows.
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
    sa.Column("attempts", sa.Text),  # JSON list of {model, ok, error, ms[, dropped]}
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
    # ---- since migration 0003 ----
    sa.Column("cache", sa.Text),  # "hit", "miss", "bypass"; NULL with the cache off
    sa.Column("saved_cost", sa.Float),  # USD a cache hit saved
    sa.Column("privacy", sa.Text),  # kinds of private value detected (never the values)
    sa.Column("privacy_action", sa.Text),  # the action taken: "local", "redact"
    # ---- since migration 0004 ----
    # "started": the write-ahead row (decision, no status yet); "ended": the whole row;
    # "interrupted": its process died before the answer ended. NULL: written before 0004.
    sa.Column("phase", sa.Text),
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


# Query parameters that carry a secret (libpq takes `?password=...` as well as `user:pw@`).
SECRET_PARAMS = frozenset({"password", "sslpassword"})


def safe_url(url: str, query: bool = True) -> str:
    """The URL with any password hidden, for logs, errors and `/admin/stats` (`query=False`
    leaves `?password=` alone: the spool directory's name was made that way)."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # not a URL, or a port that is not a number
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)
    if query and SECRET_PARAMS & {k.lower() for k in parsed.query}:
        hidden = {k: "***" if k.lower() in SECRET_PARAMS else v for k, v in parsed.query.items()}
        rendered = parsed.set(query=hidden).render_as_string(hide_password=True)
        return rendered.replace("%2A%2A%2A", "***")
    return parsed.render_as_string(hide_password=True)


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
    """Create or upgrade the schema to the newest revision (Alembic, router/serving/migrations).

    A SQLite log written by the first version (a `decisions` table, no Alembic stamp) is
    stamped as revision 0001 and upgraded in place. Workers and replicas that start together
    migrate one at a time: a PostgreSQL advisory lock, or a lock file beside a SQLite file.
    """
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("router.serving") / "migrations"))
    with _file_lock(engine), engine.begin() as con:
        if con.dialect.name == "postgresql":
            con.execute(sa.text("SELECT pg_advisory_xact_lock(726001)"))
        insp = sa.inspect(con)
        cfg.attributes["connection"] = con
        if insp.has_table("alembic_version"):
            _refuse_newer(con, ScriptDirectory.from_config(cfg))
        elif insp.has_table("decisions"):
            command.stamp(cfg, "0001")
        command.upgrade(cfg, "head")


def _refuse_newer(con: sa.Connection, script) -> None:
    """A DecisionLogError when a newer version of the router migrated the schema past what
    this one knows (Alembic would fail with "Can't locate revision")."""
    known = {s.revision for s in script.walk_revisions()}
    found = [r for (r,) in con.execute(sa.text("SELECT version_num FROM alembic_version"))]
    newer = [r for r in found if r not in known]
    if newer:
        raise DecisionLogError(
            f"its schema is at revision {', '.join(newer)}, newer than this version of the "
            f"router knows (up to {script.get_current_head()}): upgrade the router, or give "
            "this one a database of its own"
        )


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
