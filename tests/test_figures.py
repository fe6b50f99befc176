"""The figures of a window of the decision log (router/serving/decision_log/figures.py), on
SQLite and PostgreSQL: totals, the time series, cascades, quality with its interval, drift, and
the cache of settled buckets (a late row is still counted)."""

from __future__ import annotations

import json
import time

import pytest

from router.core.decision import Attempt, Decision
from router.serving.decision_log import (
    DecisionLog,
    LogReader,
    decision_row,
    parse_since,
    read_figures,
)
from router.serving.decision_log.figures import bucket_step, wilson

# A fixed "now" for each run, every row's time relative to it. Outcomes take the real time of
# their writing, which must come after their request's (as it does in life).
NOW = float(int(time.time())) + 1.0


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "d.db")
    return request.getfixturevalue("postgres_url")


def _decision(model: str, tier: str, domain: str = "math", **kw) -> Decision:
    return Decision(
        model=model,
        tier=tier,
        policy="balanced",
        domain=domain,
        domain_confidence=0.9,
        difficulty=kw.pop("difficulty", 0.3),
        gain=kw.pop("gain", 0.1),
        success={},
        reason="test",
        fallbacks=[],
        cost_estimate=kw.pop("cost", 0.1 if tier == "small" else 1.0),
        large_cost_estimate=1.0,
        escalated=tier == "large",
        attempts=kw.pop("attempts", [Attempt(model, True, None, 5.0)]),
        **kw,
    )


def _write(url: str, rows: list[dict], outcomes: list[tuple] = ()) -> None:
    log = DecisionLog(url)
    for r in rows:
        log.record(r)
    log.flush()
    for o in outcomes:
        log.record_outcome(*o)
    log.close()


def _row(i: int, d: Decision | None, ago: float, status: int = 200, **kw) -> dict:
    return decision_row(
        d, f"r{i}", ts=NOW - ago, status=status, latency_ms=kw.pop("latency_ms", 40.0), **kw
    )


def test_totals_models_domains_and_the_series(log_url):
    rows = []
    for i in range(30):  # 30 small answers of 0.1 in the last 10 minutes
        rows.append(_row(i, _decision("small", "small", "math" if i % 3 else "code"), 20 * i + 5))
    for i in range(30, 40):  # 10 escalated answers of 1.0
        rows.append(_row(i, _decision("large", "large", "writing"), 100 + i))
    failed = _decision("large", "large", attempts=[Attempt("large", False, "boom", 3.0)])
    rows.append(_row(40, failed, 50, status=502, error="boom"))  # an error: no spend
    rows.append(_row(41, _decision("small", "small"), 30, kind="route"))  # no model called
    rows.append(_row(42, _decision("small", "small"), 7200))  # before the window
    _write(log_url, rows)

    f = read_figures(log_url, 3600, now=NOW)
    assert f["requests"] == 41 and f["answered"] == 40 and f["errors"] == 1
    assert f["cost_usd"] == pytest.approx(30 * 0.1 + 10 * 1.0)
    assert f["large_cost_usd"] == pytest.approx(40.0)
    assert f["saved_share"] == pytest.approx(1 - 13 / 40)
    assert f["escalation_rate"] == pytest.approx(11 / 41)
    assert f["fallback_rate"] == 0  # the failed request tried one model: no fallback
    assert f["small_share"] == pytest.approx(30 / 40)
    assert [(m["model"], m["requests"]) for m in f["models"]] == [("small", 30), ("large", 10)]
    assert f["models"][0]["share"] == pytest.approx(0.75)
    domains = {d["domain"]: d["requests"] for d in f["domains"]}
    assert domains == {"math": 20 + 1, "code": 10, "writing": 10}
    # The series adds up to the totals, bucket by bucket (60 s buckets over an hour).
    s = f["series"]
    assert f["window"]["bucket_s"] == 60 == bucket_step(3600)
    assert sum(s["requests"]) == 41 and sum(s["cost_usd"]) == pytest.approx(13.0)
    assert sum(s["models"]["small"]) == 30 and sum(s["models"]["large"]) == 10
    assert list(s["models"]) == ["small", "large"]  # most requests first
    assert s["start"] == sorted(s["start"]) and len(s["start"]) == len(s["requests"])
    assert f["latency_histogram"]["counts"][LATENCY_BIN_40MS] == 41
    assert f["latency_ms"]["p50"] == 40.0 and f["latency_ms"]["of"] == 41


LATENCY_BIN_40MS = 2  # (25, 50] ms


def test_cascade_counts_and_what_escalation_threw_away(log_url):
    def cascaded(escalated: bool, tokens: int, verdict: str | None = "verifier") -> Decision:
        info = {"mode": "judged", "first": "small", "large": "large", "escalated": escalated}
        info.update(verdict=verdict, cheap_tokens_wasted=tokens, cheap_cost=0.01 * tokens)
        return _decision("large" if escalated else "small", "small", cascade=info)

    rows = [
        _row(1, cascaded(True, 12), 10),
        _row(2, cascaded(True, 8), 20),
        _row(3, cascaded(False, 0), 30),
        _row(4, cascaded(False, 0, verdict=None), 40),  # the cheap call failed: no verdict
        _row(5, _decision("small", "small", cascade={"mode": "unchecked"}), 50),
        _row(6, _decision("large", "large", cascade={"mode": "large"}), 60),
        _row(7, _decision("small", "small"), 70),  # no cascade at all
    ]
    _write(log_url, rows)
    c = read_figures(log_url, 3600, now=NOW)["cascade"]
    assert (c["requests"], c["judged"], c["escalated"], c["accepted"]) == (6, 3, 2, 1)
    assert (c["unchecked"], c["large"], c["first_failed"]) == (1, 1, 1)
    assert c["escalation_rate"] == pytest.approx(2 / 3)
    assert c["wasted_tokens"] == 20 and c["wasted_cost_usd"] == pytest.approx(0.2)


def test_quality_from_feedback_and_shadow_verdicts(log_url):
    rows = [_row(i, _decision("small", "small"), 10 + i) for i in range(10)]
    rows.append(_row(99, _decision("small", "small"), 7200))  # feedback outside the window
    shadow = [
        (f"r{i}", 0.9, "shadow", "small", {"agrees": i < 6}) for i in range(8)
    ]  # one verdict per request: the routed model's row; the other model's row is ignored
    shadow += [(f"r{i}", 0.2, "shadow", "large", {"agrees": i < 6}) for i in range(8)]
    feedback = [(f"r{i}", 1.0 if i < 3 else 0.0, "feedback") for i in range(4)]
    _write(log_url, rows, [*shadow, *feedback, ("r99", 1.0, "feedback")])
    q = read_figures(log_url, 3600, now=NOW)["quality"]
    assert q["feedback"]["n"] == 4 and q["feedback"]["mean"] == pytest.approx(0.75)
    assert (q["feedback"]["low"], q["feedback"]["high"]) == pytest.approx(wilson(3, 4))
    assert q["shadow"]["n"] == 8 and q["shadow"]["agreement"] == pytest.approx(6 / 8)
    assert q["shadow"]["low"] < 0.75 < q["shadow"]["high"]


def test_wilson_interval():
    low, high = wilson(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    assert wilson(0, 0) is None
    assert wilson(10, 10)[1] == pytest.approx(1.0) and wilson(10, 10)[0] > 0.69


def test_drift_against_the_scorers_training_distributions(log_url):
    reference = {
        "domain": {"labels": ["math", "code"], "counts": [50, 50]},
        "difficulty": {"edges": [0.0, 0.5, 1.0], "counts": [50, 50]},
        "gain": {"edges": [0.0, 0.5, 1.0], "counts": [50, 50]},
    }
    # Live traffic: all maths, all easy: domain and difficulty have drifted, gain has not.
    rows = [
        _row(i, _decision("small", "small", "math", difficulty=0.1, gain=0.25 + 0.5 * (i % 2)), i)
        for i in range(40)
    ]
    _write(log_url, rows)
    d = LogReader(log_url, drift_reference=reference, drift_min_samples=20).figures(3600, NOW)
    assert d["drift"]["samples"] == {"domain": 40, "difficulty": 40, "gain": 40}
    assert d["drift"]["alarms"] == {"domain": True, "difficulty": True, "gain": False}
    assert d["drift"]["psi"]["gain"] == pytest.approx(0.0, abs=1e-9)
    assert read_figures(log_url, 3600, now=NOW)["drift"] is None  # no reference: no drift


def test_settled_buckets_are_cached_and_a_late_row_still_counts(log_url):
    _write(log_url, [_row(i, _decision("small", "small"), 600 + 10 * i) for i in range(20)])
    reader = LogReader(log_url, settle_s=30)
    first = reader.figures(3600, NOW)
    reads = reader.bucket_reads
    again = reader.figures(3600, NOW)
    assert again["requests"] == first["requests"] == 20
    assert reader.bucket_reads - reads <= 2  # only the unsettled buckets were read again
    # A row arrives late for a settled bucket (a buffered outage): the index count sees it.
    _write(log_url, [_row(100, _decision("large", "large"), 900)])
    late = reader.figures(3600, NOW)
    assert late["requests"] == 21 and late["cost_usd"] == pytest.approx(20 * 0.1 + 1.0)
    reader.close()


def test_a_stream_in_flight_counts_once_it_ends_even_in_a_settled_bucket(log_url):
    """A write-ahead row (phase "started", no status) is in flight, not an error; when its
    stream ends, the row is completed in place, and its settled bucket is read again."""
    d = _decision("small", "small")
    _write(log_url, [_row(i, d, 600 + 10 * i) for i in range(5)])
    log = DecisionLog(log_url)
    log.start(_row(99, d, 900, status=None))
    assert log.flush(60)
    reader = LogReader(log_url, settle_s=30)
    before = reader.figures(3600, NOW)
    assert before["requests"] == 5 and before["errors"] == 0  # in flight: not counted yet
    log.record(_row(99, d, 900, stream=True))  # the stream ended, 900 s after it began
    log.close()
    after = reader.figures(3600, NOW)
    assert after["requests"] == 6 and after["errors"] == 0
    assert after["cost_usd"] == pytest.approx(6 * 0.1)
    reader.close()


def test_max_age_answers_from_the_last_result(log_url):
    _write(log_url, [_row(1, _decision("small", "small"), 10)])
    reader = LogReader(log_url)
    first = reader.figures(3600, max_age=60)
    _write(log_url, [_row(2, _decision("small", "small"), 5)])
    assert reader.figures(3600, max_age=60) is first  # within max_age: the same result
    assert reader.figures(3600)["requests"] == 2
    reader.close()


def test_the_whole_log_and_old_epochs():
    assert bucket_step(10) == 10 and bucket_step(86400) == 1800
    assert bucket_step(56 * 365 * 86400) % 86400 == 0  # whole days, at most 72 buckets
    assert bucket_step(56 * 365 * 86400) * 72 >= 56 * 365 * 86400


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("15m", 900), ("1h", 3600), ("24h", 86400), ("7d", 604800), ("30", 30)],
)
def test_parse_since(text, seconds):
    assert parse_since(text) == seconds


@pytest.mark.parametrize("text", ["", "1y", "-1h", "0m", "soon", "1000d"])
def test_parse_since_names_the_field(text):
    with pytest.raises(ValueError, match="since"):
        parse_since(text)


def test_figures_are_json(tmp_path):
    url = str(tmp_path / "d.db")
    _write(url, [_row(1, _decision("small", "small"), 10)])
    json.dumps(read_figures(url, 3600, now=NOW), allow_nan=False)


def test_router_stats_since_html_and_errors(tmp_path):
    from typer.testing import CliRunner

    from router.cli import app

    url = str(tmp_path / "d.db")
    _write(
        url, [_row(1, _decision("small", "small"), 10), _row(2, _decision("large", "large"), 7200)]
    )
    run = CliRunner().invoke
    res = run(app, ["stats", "--db", url, "--since", "1h", "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert body["requests"] == 1 and body["figures"]["window"]["bucket_s"] == 60
    assert json.loads(run(app, ["stats", "--db", url, "--json"]).output)["requests"] == 2
    res = run(app, ["stats", "--db", url, "--since", "soon"])
    assert res.exit_code == 2 and "since" in res.output and len(res.output.splitlines()) == 1
    out = tmp_path / "r.html"
    res = run(app, ["stats", "--db", url, "--since", "1h", "--html", str(out)])
    assert res.exit_code == 0 and "wrote" in res.output
    text = out.read_text()
    assert 'data-figure="requests" data-value="1"' in text and "<script" not in text
    assert "<style>" in text and text.count('<svg class="chart"') == 3


def test_router_stats_reads_the_configs_log_and_drift(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from router.cli import app

    (tmp_path / "policies").mkdir()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "decision_log: logs/d.db\ndrift: {min_samples: 1}\nmodels: [{name: a, "
        "litellm_model: openai/a, input_price: 0, output_price: 0, context_window: 9}]\n"
    )
    (tmp_path / "logs").mkdir()
    _write(str(tmp_path / "logs" / "d.db"), [_row(1, _decision("small", "small"), 10)])
    monkeypatch.chdir(tmp_path)  # config.yaml found in the working directory
    res = CliRunner().invoke(app, ["stats", "--json"])
    assert res.exit_code == 0, res.output
    figures = json.loads(res.output)["figures"]
    assert figures["requests"] == 1
    assert figures["drift"]["samples"]["domain"] == 1  # the shipped scorer's distributions
