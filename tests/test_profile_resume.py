"""`router profile` keeps what it paid for: an answer whose judging failed stays in the journal,
and the next run judges it without calling the model again."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from router.core.config import load_config
from router.evaluation.profile import Journal, ModelCaller, Result, profile
from tests.test_profile import OracleUpstream, mc_rows, read_out, write_rows
from tests.test_profile import write_config as write_profile_config
from tests.upstream import _error


class JudgedUpstream(OracleUpstream):
    """The oracle, plus `judge`: rates every answer 8 of 10, or answers 500 while `judge_down`."""

    MODELS = (*OracleUpstream.MODELS, "judge")

    def __init__(self) -> None:
        super().__init__()
        self.judge_down = False

    async def chat(self, request: Request):
        body = await request.json()
        if body.get("model") != "judge":
            return await super().chat(request)
        self.calls["judge"] += 1
        if self.judge_down:
            return _error(500, "injected judge outage")
        reply = {"role": "assistant", "content": "Right.\nRating: [[8]]"}
        return JSONResponse(
            {
                "id": "chatcmpl-judge",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "judge",
                "choices": [{"index": 0, "message": reply, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 300, "completion_tokens": 10, "total_tokens": 310},
            }
        )


@pytest.fixture(scope="module")
def judged():
    up = JudgedUpstream().start()
    yield up
    up.stop()


def write_config(directory: Path, api_base: str) -> Path:
    return write_profile_config(directory, api_base, JudgedUpstream.MODELS)


def judged_rows(n: int) -> list[dict]:
    rows = mc_rows(n, "chat/judged")
    for r in rows:
        del r["metric"]
        r["ground_truth"] = "a reference"
    return rows


def test_an_answer_whose_judging_failed_is_kept_and_judged_without_a_new_call(tmp_path, judged):
    """The issue: the judge failing (after its retries) threw the model's paid answer away, and
    the rerun called the model again. Now the answer is journalled with the error, the summary
    says it awaits judging, and the rerun judges it: the model is not called again."""
    from typer.testing import CliRunner

    from router.cli import app as cli

    rows = judged_rows(3)
    judged.learn(rows)
    cfg = write_config(tmp_path, judged.base_url)
    data = write_rows(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    args = ["profile", str(data), "--model", "oracle", "--out", str(out), "--config", str(cfg),
            "--judge", "judge", "--retries", "0"]  # fmt: skip
    judged.judge_down = True
    before = judged.calls["oracle"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert judged.calls["oracle"] - before == 3
    said = " ".join(r.output.split())
    assert "3 failed (a rerun retries them; 3 answers await judging" in said, said
    entries = [json.loads(x) for x in (tmp_path / "out.jsonl.journal").read_text().splitlines()]
    assert len(entries) == 3
    for e in entries:
        assert e["error"].startswith("judge judge call failed: InternalServerError")
        assert e["answer"] == "a reference"  # the oracle's answer, kept
        assert e["usage"]["input_tokens"] == 100 and e["usage"]["cost"] > 0
    assert not out.exists() or read_out(out) == []  # no score yet: no row written

    # The judge is back: the same command judges the kept answers, the model is not called.
    judged.judge_down = False
    before, judge_before = judged.calls["oracle"], judged.calls["judge"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert judged.calls["oracle"] == before and judged.calls["judge"] - judge_before == 3
    said = " ".join(r.output.split())
    assert "3 results this run, 0 already done, 0 failed" in said, said
    got = read_out(out)
    assert sorted(x["id"] for x in got) == sorted(x["id"] for x in rows)
    kept = {e["key"]: e for e in entries}
    for x in got:
        e = kept[x["id"]]
        assert x["scores"]["oracle"] == round(7 / 9, 4)
        assert x["answers"]["oracle"] == e["answer"]
        u = x["usage"]["oracle"]
        assert u["cost"] == e["usage"]["cost"] and u["latency_ms"] == e["usage"]["latency_ms"]
        assert u["judge"] == "judge" and u["judge_cost"] > 0
    # A third run: nothing left.
    r = CliRunner().invoke(cli, args)
    assert "0 results this run, 3 already done" in " ".join(r.output.split()), r.output


def test_a_kept_answer_is_judged_again_by_the_api_too(tmp_path, judged):
    rows = judged_rows(2)
    judged.learn(rows)
    cfg = load_config(write_config(tmp_path, judged.base_url))
    data = write_rows(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    judged.judge_down = True
    try:
        report = profile([data], ["oracle"], out, cfg, tmp_path, judge="judge", retries=0)
    finally:
        judged.judge_down = False
    assert report.failed == 2 and report.ungraded == 2
    # Not graded yet, but paid for: the summary's cost counts them.
    (line,) = report.summary()
    assert line["n"] == 0 and line["failed"] == 2 and line["cost"] > 0
    before = judged.calls["oracle"]
    started: list[str] = []

    class Caller(ModelCaller):
        def start(self, names):
            started.extend(names)
            super().start(names)

    report = profile([data], ["oracle"], out, cfg, tmp_path, judge="judge", retries=0,
                     caller=Caller(cfg, tmp_path, retries=0))  # fmt: skip
    assert report.failed == 0 and report.ungraded == 0 and judged.calls["oracle"] == before
    assert started == ["judge"]  # a local model's server is not started to judge its answers
    assert [x["scores"]["oracle"] for x in read_out(out)] == [round(7 / 9, 4)] * 2


def test_the_journal_never_trades_a_kept_answer_for_an_error_without_one(tmp_path):
    j = Journal(tmp_path / "j")
    kept = Result("k", "m", answer="B", usage={"cost": 1.0}, error="judge x call failed: 500")
    j.append(kept)
    j.append(Result("k", "m", error="call failed: 500"))
    assert j.read()[("k", "m")].answer == "B"
    j.append(Result("k", "m", answer="B", error="the judge gave no verdict"))
    assert j.read()[("k", "m")].error == "the judge gave no verdict"
    j.append(Result("k", "m", score=1.0, answer="B"))
    j.append(Result("k", "m", answer="B", error="judge x call failed: 500"))
    assert j.read()[("k", "m")].score == 1.0


def test_a_run_whose_every_call_failed_can_be_run_again(tmp_path, judged):
    """An outage failed every call: that run wrote an `out` without rows, which the rerun (the
    documented way on) refused as "no rows" instead of retrying the failures."""
    rows = mc_rows(2, "dcrouter/outage")
    judged.learn(rows)
    cfg = load_config(write_config(tmp_path, judged.base_url))
    data = write_rows(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    report = profile([data], ["down"], out, cfg, tmp_path, retries=0)
    assert report.failed == 2
    before = judged.calls["down"]
    report = profile([data], ["down"], out, cfg, tmp_path, retries=0)
    assert report.failed == 2 and judged.calls["down"] - before == 2  # retried, not refused
    report = profile([data], ["oracle"], out, cfg, tmp_path, retries=0)
    assert report.failed == 0 and len(read_out(out)) == 2
