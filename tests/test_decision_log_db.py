"""The decision log on both databases: schema and migration, embeddings, outcomes, retention,
and a real PostgreSQL outage (rows buffered, then flushed or counted as dropped)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import numpy as np
import pytest
import sqlalchemy as sa

from router.serving.decision_log import (
    DecisionLog,
    database_url,
    decisions,
    dequantize,
    export_examples,
    feedback_score,
    outcomes,
    quantize,
    summarise,
)

DIM = 384


def _vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _embed(text: str) -> np.ndarray:
    return _vec(sum(map(ord, text)))


def _row(i: int, model: str = "small", **kw) -> dict:
    return {
        "request_id": f"r{i}",
        "ts": 1000.0 + i,
        "kind": "chat",
        "model": model,
        "tier": "large" if model == "large" else "small",
        "policy": "balanced",
        "status": 200,
        "routing_text": f"question number {i}",
        **kw,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "d.db")
    return request.getfixturevalue("postgres_url")


def _open(url: str, **kw) -> DecisionLog:
    return DecisionLog(url, embed=_embed, encoder="test/1", **kw)


def _rows(url: str) -> list[dict]:
    engine = sa.create_engine(database_url(url))
    try:
        with engine.connect() as con:
            return [dict(r) for r in con.execute(sa.select(decisions)).mappings()]
    finally:
        engine.dispose()


def test_rows_keep_the_int8_embedding_and_no_text_by_default(log_url):
    log = _open(log_url)
    for i in range(300):  # more than one batch
        log.record(_row(i, "large" if i % 4 == 0 else "small"))
    log.close()
    rows = {r["request_id"]: r for r in _rows(log_url)}
    assert len(rows) == 300
    r = rows["r7"]
    assert r["routing_text"] is None and r["prompt"] is None and r["encoder"] == "test/1"
    assert len(r["embedding"]) == DIM  # one int8 per dimension
    back = dequantize(r["embedding"], r["embedding_scale"])
    assert float(back @ _embed("question number 7")) > 0.999
    assert r["escalated"] is None and r["kind"] == "chat"


def test_text_is_stored_only_with_store_text(log_url):
    log = _open(log_url, store_text=True)
    log.record(_row(1))
    log.close()
    (r,) = _rows(log_url)
    assert r["routing_text"] == "question number 1" and r["embedding"] is not None


def test_outcomes_last_write_wins_and_counts_revisions(log_url):
    log = _open(log_url)
    log.record(_row(1))
    # Queued, not yet written: the id is known already (feedback can arrive at once).
    assert log.has_request("r1") and not log.has_request("nope")
    log.record_outcome("r1", 1.0, "feedback")
    log.record_outcome("r1", 0.25, "feedback")  # the user changed their mind
    log.record_outcome("r1", 0.0, "shadow", model="large", detail={"judge": "j", "agree": False})
    log.flush()
    got = {(o["source"], o["model"]): o for o in log.outcomes_of("r1")}
    assert got[("feedback", None)]["score"] == 0.25 and got[("feedback", None)]["revision"] == 2
    assert got[("feedback", None)]["updated_ts"] >= got[("feedback", None)]["ts"]
    assert got[("shadow", "large")]["revision"] == 1
    assert got[("shadow", "large")]["detail"] == {"judge": "j", "agree": False}
    with pytest.raises(KeyError):
        log.record_outcome("nope", 1.0, "feedback")
    for bad in (1.5, -0.1, float("nan"), True, "up"):
        with pytest.raises(ValueError, match="score"):
            log.record_outcome("r1", bad, "feedback")
    with pytest.raises(ValueError, match="source"):
        log.record_outcome("r1", 1.0, "users")
    log.close()


def test_retention_keeps_the_newest_rows_and_drops_old_ones(log_url):
    log = _open(log_url, max_rows=50, max_days=1)
    now = time.time()
    for i in range(80):
        log.record(_row(i, ts=now - 80 + i))
    log.record(_row(999, ts=now - 3 * 86400))  # older than max_days
    log.flush()
    log.record_outcome("r0", 1.0, "feedback")  # goes with its row
    log.record_outcome("r79", 1.0, "feedback")
    log.flush()
    assert log.enforce_retention(now) == 31
    ids = {r["request_id"] for r in _rows(log_url)}
    assert ids == {f"r{i}" for i in range(30, 80)}
    assert log.outcomes_of("r0") == [] and len(log.outcomes_of("r79")) == 1
    assert log.expired == 31
    log.close()


def test_export_examples_carry_text_or_embedding(log_url):
    log = _open(log_url)
    log.record(_row(1, model="small"))
    log.record(_row(2, model="large"))
    log.record(_row(3, model="small"))  # no outcome: not exported
    log.flush()
    log.record_outcome("r1", 0.0, "shadow")  # small failed ...
    log.record_outcome("r1", 1.0, "shadow", model="large")  # ... where large succeeded
    log.record_outcome("r1", 1.0, "feedback")  # and the user says otherwise: feedback wins
    log.record_outcome("r2", feedback_score("down"), "feedback")
    log.close()
    ex = {e.id: e for e in export_examples(log_url, cheap_models=["small"])}
    assert set(ex) == {"r1", "r2"}
    assert ex["r1"].scores == {"large": 1.0, "small": 1.0} and ex["r1"].cheap_models == ["small"]
    assert ex["r1"].prompt is None and ex["r1"].extra["encoder"] == "test/1"
    emb = np.array(ex["r1"].extra["embedding"])
    assert float(emb @ _embed("question number 1")) > 0.999
    assert ex["r2"].scores == {"large": 0.0} and ex["r2"].cheap_models == []


def test_quantize_round_trip():
    v = _vec(3)
    blob, scale = quantize(v)
    assert len(blob) == DIM and float(dequantize(blob, scale) @ v) > 0.999


def test_a_log_of_the_first_version_is_migrated_in_place(tmp_path):
    path = tmp_path / "old.db"
    # The schema and rows the first version wrote (router/decision_log.py before Alembic).
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE decisions (request_id TEXT PRIMARY KEY, ts REAL NOT NULL, key_name TEXT,"
        " requested_model TEXT, policy TEXT, model TEXT, tier TEXT, domain TEXT,"
        " domain_confidence REAL, difficulty REAL, reason TEXT, escalated INTEGER,"
        " fell_back INTEGER, attempts TEXT, stream INTEGER, status INTEGER, error TEXT,"
        " routing_ms REAL, upstream_ms REAL, latency_ms REAL, prompt_tokens INTEGER,"
        " completion_tokens INTEGER, cost_estimate REAL, large_cost_estimate REAL,"
        " decision TEXT, prompt TEXT)"
    )
    con.executemany(
        "INSERT INTO decisions (request_id, ts, model, status, escalated, cost_estimate,"
        " large_cost_estimate) VALUES (?, ?, ?, 200, ?, ?, 1.0)",
        [(f"old{i}", 100.0 + i, "small" if i else "large", int(i == 0), 0.1) for i in range(4)],
    )
    con.commit()
    con.close()
    log = _open(str(path))
    log.record(_row(1))
    log.flush()
    log.record_outcome("old2", 1.0, "feedback")  # old rows take feedback too
    log.close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT version_num FROM alembic_version").fetchone() == (_head(),)
    assert con.execute("SELECT count(*) FROM decisions").fetchone() == (5,)
    assert con.execute("SELECT embedding FROM decisions WHERE request_id='old1'").fetchone() == (
        None,
    )
    assert con.execute("SELECT count(*) FROM outcomes").fetchone() == (1,)
    con.close()
    assert summarise(path).requests == 5
    # Opening it again is a no-op migration.
    _open(str(path)).close()


def test_bad_locations_fail_at_start_with_the_place_named(tmp_path):
    from router.serving.decision_log import DecisionLogError

    (tmp_path / "file").write_text("x")
    with pytest.raises(DecisionLogError, match="decision log"):
        DecisionLog(tmp_path / "file" / "d.db")
    # Without a spool rows have nowhere safe to wait: a database down at start is an error
    # (with one, the log starts and waits for it: tests/test_decision_log_startup.py).
    with pytest.raises(DecisionLogError, match=r"postgresql\+psycopg://u:\*\*\*@127.0.0.1:1/x"):
        DecisionLog("postgresql://u:secret@127.0.0.1:1/x")


def test_stats_on_either_database_leave_route_rows_out(log_url):
    log = _open(log_url)
    log.record(_row(1, kind="chat", cost_estimate=0.1, large_cost_estimate=1.0))
    log.record(_row(2, kind="route"))
    log.record(_row(3, kind="chat", model="large", cost_estimate=1.0, large_cost_estimate=1.0))
    log.close()
    s = summarise(log_url)
    assert s.requests == 2 and s.share == {"small": 0.5, "large": 0.5}
    assert s.savings == pytest.approx(1 - 1.1 / 2)


# ---- a PostgreSQL outage ------------------------------------------------------------------


def _record_with_deadline(log: DecisionLog, rows: list[dict]) -> float:
    """Record rows from another thread; returns how long it took (must not block)."""
    done = threading.Event()
    t0 = time.monotonic()

    def run() -> None:
        for r in rows:
            log.record(r)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(60), "record() blocked during a database outage"
    return time.monotonic() - t0


def test_postgres_outage_buffers_rows_then_flushes_them(postgres_url, postgres_server):
    log = _open(postgres_url)
    log.record(_row(0))
    assert log.flush(60)
    _durable(postgres_server, postgres_url)
    postgres_server.kill()
    try:
        _record_with_deadline(log, [_row(i) for i in range(1, 40)])
        assert not log.flush(1.0)  # cannot be written now ...
        assert log.failed is not None and log.dropped == 0
        assert log.has_request("r5")  # ... but the ids are known
    finally:
        postgres_server.start()
    assert log.flush(120)
    assert log.failed is None and log.dropped == 0
    log.close()
    assert {r["request_id"] for r in _rows(postgres_url)} == {f"r{i}" for i in range(40)}


def _durable(postgres_server, url: str) -> None:
    """The fixture runs with synchronous_commit=off: make what is committed (the schema, rows)
    survive the crash that follows, so only the outage itself is tested."""
    postgres_server.query("CHECKPOINT", url.rsplit("/", 1)[1])


def test_postgres_outage_past_the_queue_bound_counts_drops(postgres_url, postgres_server):
    log = _open(postgres_url, queue_size=20, batch=5)
    _durable(postgres_server, postgres_url)
    postgres_server.kill()
    try:
        _record_with_deadline(log, [_row(i) for i in range(200)])
        assert log.dropped > 0  # the bound held: no unbounded memory, no blocking
        assert log.queued <= 20
    finally:
        postgres_server.start()
    assert log.flush(120)
    log.close()
    written = len(_rows(postgres_url))
    assert written + log.dropped == 200 and written >= 20


def test_close_during_an_outage_gives_up_in_time_and_counts(postgres_url, postgres_server):
    log = _open(postgres_url)
    _durable(postgres_server, postgres_url)
    postgres_server.kill()
    try:
        for i in range(10):
            log.record(_row(i))
        t0 = time.monotonic()
        log.close(timeout=2.0)
        assert time.monotonic() - t0 < 60
        assert log.dropped == 10
    finally:
        postgres_server.start()


def test_outcome_json_detail_survives_postgres(postgres_url):
    log = _open(postgres_url)
    log.record(_row(1))
    log.record_outcome("r1", 0.5, "shadow", detail={"why": "ünïcode"})
    log.close()
    engine = sa.create_engine(database_url(postgres_url))
    with engine.connect() as con:
        (detail,) = con.execute(sa.select(outcomes.c.detail)).one()
    engine.dispose()
    assert json.loads(detail) == {"why": "ünïcode"}


def test_a_row_the_database_refuses_is_dropped_alone(log_url):
    log = _open(log_url)
    log.record(_row(1, error="nul \x00 byte"))  # PostgreSQL text cannot hold NUL: cleaned
    log.record(_row(2, prompt_tokens="not a number"))  # refused by PostgreSQL's INTEGER
    log.record(_row(3))
    assert log.flush(60)
    ids = {r["request_id"] for r in _rows(log_url)}
    assert {"r1", "r3"} <= ids
    assert log.dropped == (0 if "r2" in ids else 1)  # SQLite stores any type in any column
    log.close()


def _head() -> str:
    """The newest migration (router/serving/migrations/versions)."""
    from importlib import resources

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("router.serving") / "migrations"))
    return ScriptDirectory.from_config(cfg).get_current_head()


def test_feedback_about_the_answering_model_by_name_or_by_default_is_one_score(log_url):
    """ "" means the model that answered: a later score naming it replaces the earlier one
    (and the reverse), in the export and in the dashboard's feedback mean; a label for another
    model is no verdict on the answer served."""
    from router.serving.decision_log import read_figures

    now = time.time()
    log = _open(log_url)
    for i in range(4):
        log.record(_row(i, ts=now - 60 + i))
    log.flush()
    log.record_outcome("r0", 1.0, "feedback")
    log.record_outcome("r0", 1.0, "feedback", model="large")  # "large would have done it"
    log.record_outcome("r1", 1.0, "feedback", model="small")  # named, then changed by default
    log.record_outcome("r1", 0.0, "feedback")
    log.record_outcome("r2", 1.0, "feedback")  # by default, changed by name, and back
    log.record_outcome("r2", 0.0, "feedback", model="small")
    log.record_outcome("r2", 0.5, "feedback")
    log.record_outcome("r3", 0.0, "feedback")
    log.close()
    ex = {e.id: e.scores for e in export_examples(log_url, cheap_models=["small"])}
    assert ex == {
        "r0": {"small": 1.0, "large": 1.0},
        "r1": {"small": 0.0},
        "r2": {"small": 0.5},
        "r3": {"small": 0.0},
    }
    fb = read_figures(log_url, 3600)["quality"]["feedback"]
    assert fb["n"] == 4 and fb["mean"] == pytest.approx(1.5 / 4)
