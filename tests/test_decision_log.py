"""The SQLite decision log: background writes, flush on close, `summarise` and `router stats`."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest
from typer.testing import CliRunner

from router.cli import app
from router.serving.decision_log import DecisionLog, summarise


def _row(i: int, model: str, **kw) -> dict:
    return {
        "request_id": f"r{i}",
        "ts": 1000.0 + i,
        "model": model,
        "policy": "balanced",
        "status": 200,
        "escalated": model == "large",
        "fell_back": False,
        "cost_estimate": 1.0 if model == "large" else 0.1,
        "large_cost_estimate": 1.0,
        "latency_ms": float(i),
        "routing_ms": 2.0,
        "attempts": [{"model": model, "ok": True}],
        **kw,
    }


def test_rows_are_written_by_a_background_thread_and_flushed_on_close(tmp_path):
    log = DecisionLog(tmp_path / "sub" / "d.db")
    assert log._thread.name == "decision-log" and log._thread is not threading.current_thread()
    for i in range(300):  # more than one batch
        log.record(_row(i, "large" if i % 4 == 0 else "small"))
    log.close()
    con = sqlite3.connect(tmp_path / "sub" / "d.db")
    n, attempts, prompt = con.execute(
        "SELECT count(*), max(attempts), max(prompt) FROM decisions"
    ).fetchone()
    assert n == 300 and json.loads(attempts)[0]["ok"] and prompt is None


def test_flush_makes_rows_visible(tmp_path):
    log = DecisionLog(tmp_path / "d.db")
    log.record(_row(1, "small", prompt="hello"))
    log.flush()
    con = sqlite3.connect(tmp_path / "d.db")
    assert con.execute("SELECT prompt, escalated FROM decisions").fetchone() == ("hello", 0)
    log.close()


def test_summarise(tmp_path):
    log = DecisionLog(tmp_path / "d.db")
    for i in range(1, 101):
        log.record(_row(i, "large" if i <= 25 else "small"))
    log.record(_row(999, "broken", status=502, cost_estimate=None))
    log.record(_row(1000, "small", status=499, cost_estimate=None))  # its client went
    # Refused by the proxy (malformed, over a rate limit): the client's doing, not a failure.
    log.record(_row(1001, "small", status=400, cost_estimate=None))
    log.record(_row(1002, "small", status=429, cost_estimate=None))
    log.close()
    s = summarise(tmp_path / "d.db")
    assert (s.requests, s.errors, s.client_left, s.refused) == (104, 1, 1, 2)
    assert s.share == {"small": 0.75, "large": 0.25}
    assert s.escalation_rate == pytest.approx(25 / 104)
    assert s.cost == pytest.approx(25 * 1.0 + 75 * 0.1) and s.large_cost == pytest.approx(100.0)
    assert s.savings == pytest.approx(1 - 32.5 / 100)
    assert s.latency_ms["p50"] == pytest.approx(53, abs=1) and s.latency_ms["p99"] >= 99


def test_router_stats_command(tmp_path):
    log = DecisionLog(tmp_path / "d.db")
    for i in range(1, 11):
        log.record(_row(i, "large" if i <= 2 else "small"))
    log.close()
    runner = CliRunner()
    res = runner.invoke(app, ["stats", "--db", str(tmp_path / "d.db")])
    assert res.exit_code == 0, res.output
    for text in (
        "share small",
        "80.0%",
        "escalation rate",
        "estimated savings",
        "latency ms",
        "p99",
    ):
        assert text in res.output
    res = runner.invoke(app, ["stats", "--db", str(tmp_path / "d.db"), "--json"])
    assert json.loads(res.output)["share"] == {"small": 0.8, "large": 0.2}
    res = runner.invoke(app, ["stats", "--db", str(tmp_path / "missing.db")])
    assert res.exit_code == 2 and "no decision log" in res.output
