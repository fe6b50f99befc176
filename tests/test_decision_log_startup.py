"""A decision log whose PostgreSQL is down at start (router/serving/decision_log/reaching.py):
the log starts anyway with its rows in the spool, says so once, and once PostgreSQL is up it
migrates and writes every row exactly once, with several replicas racing to migrate it too.
What the database refuses (credentials, a missing database, a schema newer than this code)
is still an error at once. Real PostgreSQL servers, started late on a port fixed in advance."""

from __future__ import annotations

import logging
import shutil
import threading
import time

import httpx
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from router.serving.decision_log import (
    DecisionLog,
    DecisionLogError,
    Spool,
    database_url,
    decisions,
    open_decision_log,
)
from tests.conftest import serve_until_exit
from tests.learning import ADMIN_KEY, USER_KEY, chat, router_for, serve, wait_for, write_config
from tests.servers import PostgresServer, free_port

BOUND_S = 120
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
USER = {"authorization": f"Bearer {USER_KEY}"}
RIGHT, WRONG = "Right-Pw-7", "Wr0ng-Pw-7"  # the role `router`'s password on `pw_pg`, and not
SERVER = {"keys": [{"name": "user", "key": USER_KEY}], "keys_env": None, "admin_key": ADMIN_KEY}


@pytest.fixture
def later_pg(postgres_server):
    """A PostgreSQL cluster not started yet, its port chosen (`postgres_server`: the binaries
    are here, else a skip, or a failure under CI)."""
    server = PostgresServer(bindir=postgres_server.bindir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pw_pg(postgres_server):
    """A running PostgreSQL where the role `router` logs in with the password RIGHT only."""
    server = PostgresServer(bindir=postgres_server.bindir).start()
    try:
        server.query(f"CREATE ROLE router LOGIN PASSWORD '{RIGHT}'")
        server.query("GRANT ALL ON SCHEMA public TO router")
        hba = server.data / "pg_hba.conf"
        hba.write_text("host all router 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        server._run(
            [server._bin("pg_ctl"), "-D", str(server.data), "reload"], as_owner=True
        )  # the new rule holds from the next connection
        time.sleep(0.5)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def german_pg(postgres_server):
    """A running PostgreSQL that words its messages in German, the role `router` logging in
    with the password RIGHT only; a skip where PostgreSQL's German messages are not installed.

    No German locale need exist: with lc_messages C.UTF-8 (not plain C), gettext takes the
    language from LANGUAGE in the server's environment."""
    server = PostgresServer(bindir=postgres_server.bindir).start()
    try:
        server.query(f"CREATE ROLE router LOGIN PASSWORD '{RIGHT}'")
        server.query("GRANT ALL ON SCHEMA public TO router")
        server.query("ALTER SYSTEM SET lc_messages = 'C.UTF-8'")
        hba = server.data / "pg_hba.conf"
        hba.write_text("host all router 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        server.query("CHECKPOINT")  # synchronous_commit is off: the role survives the restart
        server.kill()
        with pytest.MonkeyPatch.context() as env:
            env.setenv("LANGUAGE", "de")  # pg_ctl's environment, so the server's
            server.start()
        engine = sa.create_engine(database_url(_url(server, WRONG, "router")))
        try:
            with pytest.raises(sa.exc.OperationalError) as said:
                engine.connect()
        finally:
            engine.dispose()
        if "authentication failed" in str(said.value):
            pytest.skip("PostgreSQL's German messages are not installed here")
        yield server
    finally:
        server.stop()


@pytest.fixture
def fast_retries(monkeypatch):
    from router.serving.decision_log import reaching

    monkeypatch.setattr(reaching, "FIRST_RETRY_S", 0.05)
    monkeypatch.setattr(reaching, "MAX_RETRY_S", 0.2)


def _url(server: PostgresServer, password: str = "hunter2", user: str = "postgres") -> str:
    # Trust authentication: the password is not checked, only hidden from every message.
    return f"postgresql://{user}:{password}@127.0.0.1:{server.port}/postgres"


def _row(rid: str, **kw) -> dict:
    return {"request_id": rid, "ts": time.time(), "model": "small", "status": 200, **kw}


def _count(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(database_url(url))
    try:
        with engine.connect() as con:
            return [tuple(r) for r in con.execute(sa.text(sql))]
    finally:
        engine.dispose()


def _rows(url: str) -> dict[str, dict]:
    engine = sa.create_engine(database_url(url))
    try:
        with engine.connect() as con:
            rows = [dict(r) for r in con.execute(sa.select(decisions)).mappings()]
    finally:
        engine.dispose()
    out = {r["request_id"]: r for r in rows}
    assert len(out) == len(rows), "a request id is there twice"
    return out


def _head() -> str:
    from tests.test_decision_log_db import _head as head

    return head()


def _said(caplog, words: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if words in r.getMessage()]


# ---- the log ----------------------------------------------------------------------------------


def test_a_log_started_while_postgres_is_down_writes_every_row_once_it_is_up(
    later_pg, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="router.serving.decision_log")
    url = _url(later_pg)
    t0 = time.monotonic()
    log = open_decision_log(url, base_dir=tmp_path)  # nothing listens on its port yet
    try:
        assert time.monotonic() - t0 < 10  # no waiting at start
        assert log.waiting and log.failed is not None
        for i in range(30):
            if i % 3 == 0:  # a stream: its write-ahead row, then its end
                log.start(_row(f"r{i}", stream=1))
            log.record(_row(f"r{i}", stream=int(i % 3 == 0)))
        log.record_outcome("r1", 0.0, "feedback")  # the id is known: it waits in the spool
        log.record_outcome("r1", 1.0, "feedback")  # the user changed their mind: last wins
        assert not log.flush(1.0)  # nowhere to write it yet ...
        assert log.spool.pending == 42 and log.dropped == 0  # ... and all of it on disk
        (said,) = _said(caplog, "not reachable at start")  # once
        assert said.levelno == logging.WARNING
        assert (
            "postgres:***@127.0.0.1" in said.getMessage()
            and str(log.spool.dir) in said.getMessage()
        )
        later_pg.start()
        assert log.flush(BOUND_S)
        assert not log.waiting and log.failed is None and log.dropped == 0
        log.record(_row("after"))  # and on it goes as usual
        assert log.flush(BOUND_S)
        outcome = log.outcomes_of("r1")
    finally:
        log.close()
    rows = _rows(url)
    assert set(rows) == {f"r{i}" for i in range(30)} | {"after"}
    assert {r["phase"] for r in rows.values()} == {"ended"}  # each stream's end came after
    assert [(o["score"], o["revision"]) for o in outcome] == [(1.0, 2)]  # in order, once each
    assert _count(url, "SELECT version_num FROM alembic_version") == [(_head(),)]
    assert len(_said(caplog, "is reachable")) == 1
    assert not [r for r in caplog.records if "hunter2" in r.getMessage()]
    assert list(tmp_path.glob("*.spool/*.jsonl")) == []  # drained, closed, gone


def test_replicas_started_while_postgres_is_down_migrate_once_and_lose_nothing(
    later_pg, tmp_path, fast_retries
):
    """Four replicas (each its own engine and spool), started before PostgreSQL, retrying
    every 0.2 s at most: when it comes up they race to migrate the same empty database. The
    advisory lock in `migrate` lets one create the schema; the others find it done."""
    url = _url(later_pg)
    logs = [
        DecisionLog(url, spool=Spool(tmp_path / f"replica{n}.spool"), batch=7) for n in range(4)
    ]
    try:
        assert all(lg.waiting for lg in logs)

        def traffic(n: int) -> None:
            for i in range(40):
                logs[n].record(_row(f"n{n}-{i}", key_name=f"replica{n}"))
                time.sleep(0.01)

        threads = [threading.Thread(target=traffic, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        later_pg.start()  # comes up while the replicas still record
        for t in threads:
            t.join(BOUND_S)
        assert all(lg.flush(BOUND_S) for lg in logs)
        assert not any(lg.waiting for lg in logs)
        assert sum(lg.written for lg in logs) == 160 and not any(lg.dropped for lg in logs)
    finally:
        for lg in logs:
            lg.close()
    rows = _rows(url)
    assert set(rows) == {f"n{n}-{i}" for n in range(4) for i in range(40)}
    assert _count(url, "SELECT version_num FROM alembic_version") == [(_head(),)]
    # No replica's migration collided with another's (it would fail on a duplicate type).
    assert "duplicate key" not in later_pg.log_tail(100_000)


def test_a_log_closed_before_postgres_came_up_leaves_its_rows_to_the_next_start(later_pg, tmp_path):
    url = _url(later_pg)
    log = open_decision_log(url, base_dir=tmp_path)
    for i in range(10):
        log.record(_row(f"r{i}"))
    t0 = time.monotonic()
    log.close(timeout=1.0)  # the database never came: the rows stay in the spool
    assert time.monotonic() - t0 < 30
    assert log.dropped == 0 and list(tmp_path.glob("*.spool/*.jsonl"))
    later_pg.start()
    again = open_decision_log(url, base_dir=tmp_path)  # replays the spool it left
    try:
        assert not again.waiting and again.flush(BOUND_S)
        assert again.replayed == 10
    finally:
        again.close()
    assert set(_rows(url)) == {f"r{i}" for i in range(10)}


def test_sqlite_that_cannot_be_opened_fails_at_start_even_with_a_spool(tmp_path):
    """A local file is never waited for: an unusable path is a config or disk error."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir.db").mkdir()
    # A folder where the file goes (no SQLite file there), a database that is a folder.
    for where, why in (
        (tmp_path / "file" / "d.db", "File exists"),
        (tmp_path / "dir.db", "unable to open"),
    ):
        with pytest.raises(DecisionLogError, match=f"decision log .*{why}"):
            DecisionLog(where, spool=Spool(tmp_path / "spool"))
        assert list((tmp_path / "spool").iterdir()) == []  # the spool closed, nothing left


# ---- what the database refuses is still an error at once -------------------------------------


def test_bad_credentials_or_a_missing_database_are_an_error_at_start(pw_pg, tmp_path):
    port = pw_pg.port
    for url, why in (
        (_url(pw_pg, WRONG, "router"), "password authentication failed"),
        (f"postgresql://nobody:pw@127.0.0.1:{port}/postgres", 'role "nobody" does not exist'),
        (f"postgresql://router:{RIGHT}@127.0.0.1:{port}/nodb", 'database "nodb" does not exist'),
    ):
        t0 = time.monotonic()
        with pytest.raises(DecisionLogError, match=why) as e:
            open_decision_log(url, base_dir=tmp_path)
        assert time.monotonic() - t0 < 30
        assert "decision log postgresql+psycopg://" in str(e.value)
        assert WRONG not in str(e.value) and RIGHT not in str(e.value)
        assert ":***@" in str(e.value)
    assert list(tmp_path.glob("*.spool/*")) == []  # each spool closed, nothing left
    # The right password works, of course.
    open_decision_log(_url(pw_pg, RIGHT, "router"), base_dir=tmp_path).close()


def test_refusals_worded_in_another_language_are_an_error_at_start(german_pg, tmp_path):
    """libpq gives no SQLSTATE for a refusal met while connecting: the server's answer, in its
    own language, is a refusal all the same, never a database to wait for."""
    port = german_pg.port
    for url, why in (
        (_url(german_pg, WRONG, "router"), "Passwort-Authentifizierung"),
        (f"postgresql://nobody:pw@127.0.0.1:{port}/postgres", "Rolle »nobody« existiert nicht"),
        (f"postgresql://router:{RIGHT}@127.0.0.1:{port}/nodb", "Datenbank »nodb« existiert nicht"),
    ):
        with pytest.raises(DecisionLogError, match=why):
            open_decision_log(url, base_dir=tmp_path).close()  # close: a log that waits
    open_decision_log(_url(german_pg, RIGHT, "router"), base_dir=tmp_path).close()


def test_a_busy_server_worded_in_another_language_is_waited_for(postgres_server, tmp_path):
    """A standby that takes no connections (hot_standby off) says so in German, words that
    read like a refusal; libpq's ping reads its SQLSTATE (57P03): busy, so the log waits."""
    server = PostgresServer(bindir=postgres_server.bindir).start()
    try:
        server.query("ALTER SYSTEM SET lc_messages = 'C.UTF-8'")
        server.query("ALTER SYSTEM SET hot_standby = off")
        server.kill()  # (stop() would remove the cluster)
        (server.data / "standby.signal").touch()
        if server.as_user:
            shutil.chown(server.data / "standby.signal", "postgres", "postgres")
        with pytest.MonkeyPatch.context() as env:
            env.setenv("LANGUAGE", "de")
            server.start()
        log = open_decision_log(_url(server), base_dir=tmp_path)
        try:
            assert log.waiting  # not an error at start: a busy server is waited for
            assert "Verbindungen" in str(log.failed)  # in German: only the ping told
        finally:
            log.close(timeout=1.0)
    finally:
        server.stop()


def test_a_refusal_with_a_sqlstate_is_known_by_it_in_any_language(german_pg):
    """Errors after connecting carry their SQLSTATE, which is read instead of the words."""
    from router.serving.decision_log.reaching import refuses, unreachable

    engine = sa.create_engine(database_url(_url(german_pg, RIGHT, "router")))
    try:
        with engine.connect() as con, pytest.raises(sa.exc.DBAPIError) as denied:
            con.execute(sa.text("SET SESSION AUTHORIZATION postgres"))  # not a superuser
        assert denied.value.orig.sqlstate == "42501"
        assert "Berechtigung" in str(denied.value)  # German words: only the code tells
        assert refuses(denied.value)
        with engine.connect() as con:
            cut_off = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = "
            german_pg.query(cut_off + "'router'")
            with pytest.raises(sa.exc.OperationalError) as cut:
                con.execute(sa.text("SELECT 1"))
        assert cut.value.orig.sqlstate == "57P01"  # the administrator's: down, not refused
        assert unreachable(cut.value)
    finally:
        engine.dispose()


def test_a_schema_newer_than_this_code_is_an_error_at_start(postgres_url, tmp_path):
    DecisionLog(postgres_url).close()
    db = database_url(postgres_url)
    engine = sa.create_engine(db)
    with engine.begin() as con:
        con.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    engine.dispose()
    with pytest.raises(DecisionLogError, match=r"revision 0999, newer than this version"):
        open_decision_log(postgres_url, base_dir=tmp_path)


def test_credentials_refused_once_postgres_is_up_keep_the_rows_until_fixed(
    pw_pg, tmp_path, caplog, fast_retries
):
    """Down at start, the database cannot tell a wrong password yet: the log waits. When it
    comes up and refuses, that is an error in the log (once), the rows stay in the spool, and
    a fix on the database's side is picked up without a restart."""
    caplog.set_level(logging.WARNING, logger="router.serving.decision_log")
    pw_pg.query("ALTER ROLE router PASSWORD 'Old-Pw-3'")
    url = _url(pw_pg, RIGHT, "router")
    pw_pg.query("CHECKPOINT")  # synchronous_commit is off: the new password survives the kill
    pw_pg.kill()
    try:
        log = open_decision_log(url, base_dir=tmp_path)
        for i in range(5):
            log.record(_row(f"r{i}"))
    finally:
        pw_pg.start()
    try:
        wait_for(lambda: _said(caplog, "refuses this log"), BOUND_S, "the refusal said")
        assert not log.flush(1.0) and log.waiting and log.dropped == 0
        (said,) = _said(caplog, "refuses this log")  # once, however many tries
        assert said.levelno == logging.ERROR
        assert "password authentication failed" in said.getMessage()
        assert RIGHT not in said.getMessage()
        pw_pg.query(f"ALTER ROLE router PASSWORD '{RIGHT}'")  # fixed on the database's side
        assert log.flush(BOUND_S) and not log.waiting
    finally:
        log.close()
        pw_pg.query(f"ALTER ROLE router PASSWORD '{RIGHT}'")
    assert set(_rows(url)) == {f"r{i}" for i in range(5)}


# ---- the proxy --------------------------------------------------------------------------------


def test_the_proxy_serves_while_its_postgres_is_not_up_yet(
    later_pg, tmp_path, upstream, router, caplog
):
    from router.cli import app

    caplog.set_level(logging.WARNING, logger="router.serving.decision_log")
    url = _url(later_pg)
    cfg = write_config(tmp_path, upstream.base_url, server=SERVER, decision_log=url)
    proxy = serve(router_for(cfg, like=router))
    ids: list[str] = []
    try:
        with httpx.Client(base_url=proxy.url, timeout=BOUND_S, headers=USER) as c:
            for i in range(6):
                r = chat(c, f"What is {i} + 1?", stream=i % 2 == 1)
                assert r.status_code == 200, r.text
                ids.append(r.headers["x-request-id"])
            r = c.post("/v1/feedback", json={"request_id": ids[0], "score": "up"})
            assert r.status_code == 200, r.text  # its row waits in the spool: the id is known
            ready = c.get("/ready")
            assert ready.status_code == 200 and ready.json()["status"] == "degraded"
            assert "spool" in ready.json()["detail"]
            # The readers: a clear "not yet", never a crash.
            r = httpx.get(f"{proxy.url}/admin/stats?since=15m", headers=ADMIN, timeout=BOUND_S)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "decision_log_unavailable"
            page = httpx.get(f"{proxy.url}/dashboard/panel?since=15m", headers=ADMIN, timeout=60)
            assert page.status_code == 200 and "cannot be read" in page.text
            res = CliRunner().invoke(app, ["stats", "--db", url])
            assert res.exit_code == 2, res.output
            words = " ".join(res.output.split())
            assert "not reachable yet" in words and "hunter2" not in res.output
            later_pg.start()
            assert proxy.decision_log.flush(BOUND_S)

            def stats_ok() -> dict | None:
                r = httpx.get(f"{proxy.url}/admin/stats?since=15m", headers=ADMIN, timeout=60)
                return r.json() if r.status_code == 200 else None

            figures = wait_for(stats_ok, BOUND_S, "the figures")
            assert figures["requests"] == 6
            assert c.get("/ready").json()["status"] == "ready"
    finally:
        proxy.stop()
    rows = _rows(url)
    assert set(rows) == set(ids)
    assert all(r["phase"] == "ended" and r["status"] == 200 for r in rows.values())
    assert _count(url, "SELECT count(*) FROM outcomes") == [(1,)]
    (said,) = _said(caplog, "not reachable at start")
    assert "hunter2" not in said.getMessage()


def test_serve_with_refused_credentials_exits_2_with_the_reason(pw_pg, test_config, tmp_path):
    """`router serve --workers 2` on a PostgreSQL that refuses its password: one clear error
    and exit code 2, no worker restarted again and again (a down database no longer stops it:
    the test above)."""
    cfg_dir = tmp_path / "cfg"
    shutil.copytree(test_config.parent, cfg_dir)
    cfg_path = cfg_dir / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["decision_log"] = _url(pw_pg, WRONG, "router")
    cfg["server"] = {**cfg.get("server", {}), "keys_env": None}
    cfg_path.write_text(yaml.safe_dump(cfg))
    code, out = serve_until_exit(cfg_path, free_port(), 2, 300)
    assert code == 2, out[-3000:]
    words = " ".join(out.split())
    assert "error: a worker could not start: decision log postgresql" in words, out[-3000:]
    assert "password authentication failed" in words and WRONG not in out


def test_which_errors_at_start_are_waited_for():
    """Down or not up yet: waited for. Answered and refused: a configuration error."""
    from router.serving.decision_log.reaching import unreachable

    def op(message: str) -> sa.exc.OperationalError:
        return sa.exc.OperationalError("connect", None, Exception(message))

    at = 'connection failed: connection to server at "10.0.0.5", port 5432 failed: '
    for down in (
        "Connection refused\n\tIs the server running on that host?",
        "timeout expired",
        "FATAL:  the database system is starting up",
        "FATAL:  the database system is shutting down",
        "FATAL:  sorry, too many clients already",
        "server closed the connection unexpectedly",
    ):
        assert unreachable(op(at + down)), down
    assert unreachable(op("failed to resolve host 'db': [Errno -3] Temporary failure"))
    for refused in (
        'FATAL:  password authentication failed for user "router"',
        "fe_sendauth: no password supplied",
        'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "router", database "router"',
        'FATAL:  role "router" does not exist',
        'FATAL:  database "router" does not exist',
        "server does not support SSL, but SSL was required",
        # The server's answer in another language (lc_messages): a refusal by its form.
        "FATAL:  Passwort-Authentifizierung für Benutzer »router« fehlgeschlagen",
        'ВАЖНО:  роль "router" не существует',
    ):
        assert not unreachable(op(at + refused)), refused
    # A pooler up before a database that is not: waited for.
    assert unreachable(op(at + "ERROR:  pgbouncer cannot connect to server"))
    assert not unreachable(sa.exc.ProgrammingError("connect", None, Exception("invalid option")))
    assert not unreachable(DecisionLogError("its schema is at revision 0999, newer than ..."))
