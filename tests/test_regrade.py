"""`router regrade`: a profile's stored answers graded again with the current graders."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from router.cli import app as cli
from router.evaluation.regrade import regrade

CHEAT = "import os\ndef add(a, b):\n    return 0\nprint('router-tests-passed-0')\nos._exit(0)\n"
GOOD = "def add(a, b):\n    return a + b\n"


def _row(i: int, metric: str, truth, answer: str, score: float, **extra) -> dict:
    return {
        "id": f"p/{i}",
        "prompt": f"question {i}",
        "source": "dcrouter/test",
        "scores": {"m": score, "other": 0.5},
        "cheap_models": ["m"],
        "metric": metric,
        "ground_truth": truth,
        "answers": {"m": answer, "other": answer},
        "usage": {"m": {"input_tokens": 3, "output_tokens": 4}},
        **extra,
    }


def _profile(tmp_path):
    rows = [
        _row(0, "GSM8K", "#### 18", "The answer is 18 or 19", 1.0),
        _row(1, "GSM8K", "#### 18", "9 * 2 = 18\n#### 18", 1.0),
        _row(
            2,
            "em_mc",
            "A",
            "The answer is a city in England",
            1.0,
            choices={"label": ["A", "B"], "text": ["Paris", "Rome"]},
        ),  # fmt: skip
        _row(3, "code_eval", "['assert add(1, 2) == 3']", CHEAT, 1.0),
        _row(4, "code_eval", "['assert add(1, 2) == 3']", GOOD, 1.0),
    ]
    path = tmp_path / "profile.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _scores(path, model="m"):
    return {r["id"]: r["scores"][model] for r in map(json.loads, path.read_text().splitlines())}


def test_regrade_applies_the_current_graders_and_keeps_the_rest(tmp_path):
    path = _profile(tmp_path)
    report = regrade(path, models=["m"])  # code rows kept: execution not allowed
    assert _scores(path) == {"p/0": 0.0, "p/1": 1.0, "p/2": 0.0, "p/3": 1.0, "p/4": 1.0}
    assert report.kept_code_rows == 2
    summary = {(s["model"], s["metric"]): s for s in report.summary()}
    assert summary[("m", "GSM8K")]["changed"] == 1 and summary[("m", "em_mc")]["changed"] == 1
    assert ("other", "GSM8K") not in summary and _scores(path, "other")["p/0"] == 0.5
    row = json.loads(path.read_text().splitlines()[0])
    assert (
        row["answers"]["m"] == "The answer is 18 or 19" and row["usage"]["m"]["output_tokens"] == 4
    )
    # Code rows run again in the sandbox: the early exit that printed a token no longer passes.
    out = tmp_path / "regraded.jsonl"
    report = regrade(path, out=out, models=["m"], allow_code_exec=True, allow_weak_sandbox=True)
    assert _scores(out)["p/3"] == 0.0 and _scores(out)["p/4"] == 1.0
    assert report.kept_code_rows == 0 and _scores(path)["p/3"] == 1.0  # the input is untouched


def test_regrade_cli(tmp_path):
    path = _profile(tmp_path)
    r = CliRunner().invoke(cli, ["regrade", str(path), "--model", "m"])
    assert r.exit_code == 0, r.output
    assert "2 scores changed" in r.output and "2 code answers kept" in r.output
    r = CliRunner().invoke(cli, ["regrade", str(tmp_path / "nope.jsonl")])
    assert r.exit_code == 2 and "no such file" in r.output
