"""`router eval --cascade`: operating points counted by hand, the verifier trained inside folds,
and the CLI's JSON with results.router / cascade / hybrid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from router.core.data import Example, write_jsonl
from router.evaluation.evaluate import EvalData, Predictions
from router.evaluation.evaluate_cascade import (
    CascadeCurves,
    CascadeInputs,
    cascade_curve,
    operating_point,
)


def _inputs(verifier_p, prompt_p, cheap=(1, 0, 1, 0), large=(1, 1, 1, 1)) -> CascadeInputs:
    n = len(cheap)
    return CascadeInputs(
        cheap_score=np.array(cheap, float),
        large_score=np.array(large, float),
        cheap_cost=np.full(n, 1.0),
        large_cost=np.full(n, 10.0),
        verifier_p=np.array(verifier_p, float),
        prompt_p=np.array(prompt_p, float),
    )


def test_cascade_pays_the_cheap_call_on_every_judged_row():
    x = _inputs([0.9, 0.1, 0.8, 0.2], [0.5] * 4)
    cost, quality, share = operating_point(x, 0.5, None)
    # Every row pays 1; rows 2 and 4 escalate and pay 10 more; all four end right.
    assert cost == pytest.approx((4 * 1 + 2 * 10) / 4)
    assert quality == 1.0
    assert share == pytest.approx((2 * 10 / 9) / 4)  # an escalated row counts 10/9 of a large call
    assert operating_point(x, 0.0, None) == (1.0, 0.5, 0.0)  # nothing escalated
    assert operating_point(x, 1.0, None)[:2] == (11.0, 1.0)  # all escalated: dearer than large


def test_hybrid_skips_the_cheap_call_when_sure_hard_and_the_verdict_when_sure_easy():
    x = _inputs([0.1, 0.1, 0.9, 0.1], [0.95, 0.05, 0.5, 0.5])
    cost, quality, share = operating_point(x, 0.5, 0.3)
    # Row 1 sure-easy: cheap, unchecked (right). Row 2 sure-hard: large only (10).
    # Row 3 judged, kept (1). Row 4 judged, escalated (1 + 10).
    assert cost == pytest.approx((1 + 10 + 1 + 11) / 4)
    assert quality == 1.0
    assert share == pytest.approx((0 + 1 + 0 + 10 / 9) / 4)  # the sure-hard row wastes nothing


def test_rows_without_answers_follow_the_prompt_scorer():
    x = _inputs([np.nan, np.nan, 0.9, 0.1], [0.9, 0.1, 0.5, 0.5])
    cost, quality, _ = operating_point(x, 0.5, None)
    # Row 1 kept on the prompt's word (1), row 2 escalated without a cheap call (10).
    assert cost == pytest.approx((1 + 10 + 1 + 11) / 4)


def test_curve_is_cut_at_the_all_large_cost():
    x = _inputs([0.9, 0.1, 0.8, 0.2], [0.5] * 4)
    c = cascade_curve("cascade", x, None)
    assert c.share.max() == pytest.approx(1.0)
    assert c.cost.max() == pytest.approx(10.0)
    assert c.share.min() == pytest.approx(0.0)
    # A perfect verifier recovers the whole gap: quality 1 at cost 1 + 10 / 2 (share 4.5 / 9).
    assert c.quality[0] == 0.5
    assert c.quality[np.searchsorted(c.share, 0.5)] == 1.0


def _rows(n: int = 60) -> list[Example]:
    rows = []
    for i in range(n):
        right = i % 3 != 0
        a, b = i + 2, 7
        c = a + b if right else a + b + 1
        rows.append(
            Example(
                prompt=f"What is {a} + {b}? ({i})",
                source="gsm8k" if i < n // 2 else "mmlu/elementary_mathematics",
                scores={"cheap": float(right), "big": 1.0},
                costs={"cheap": 0.001, "big": 0.01},
                cheap_models=["cheap"],
                extra={"answers": {"cheap": f"{a} + {b} = {c}. #### {c}", "big": str(a + b)}},
            )
        )
    return rows


def test_verifier_is_trained_inside_the_folds():
    rows = _rows()
    data = EvalData.from_examples(rows)
    n = len(rows)
    preds = Predictions(np.ones((n, 1)), np.full(n, 0.5), np.full(n, 0.2), np.full((n, 2), np.nan))
    folds = np.arange(n) % 4
    curves, settings = CascadeCurves(band=0.2)(data, preds, folds, True)
    assert [c.name for c in curves] == ["cascade", "hybrid"]
    assert settings["cascade"]["rows_with_answers"] == n
    assert settings["cascade"]["verifier_auroc"] > 0.9  # the arithmetic check gives it away
    # A fold whose training rows carry no answers gets no verifier (no leak from the test fold).
    for ex in rows[: n // 2]:
        ex.extra = {}
    data = EvalData.from_examples(rows)
    folds = np.array([0] * (n // 2) + [1] * (n - n // 2))
    _, settings = CascadeCurves()(data, preds, folds, True)
    assert settings["cascade"]["folds_without_verifier"] == [1]


def test_cli_eval_cascade_json(tmp_path, test_config):
    from router.cli import app

    path = tmp_path / "toy.jsonl"
    write_jsonl(_rows(), path)
    out = tmp_path / "report.json"
    res = CliRunner().invoke(
        app,
        ["eval", str(path), "--cv", "3", "--cascade", "--json", str(out), "-c", str(test_config)],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    for name in ("router", "cascade", "hybrid"):
        r = report["results"][name]
        assert r["apgr"] is not None and r["aiq"] is not None and "cpt_95" in r
        assert "cost_reduction_at_95" in r
    assert report["results"]["cascade"]["apgr"] > 0.8
    assert report["cascade"]["verifier"] == "trained inside each fold"
    res = CliRunner().invoke(
        app, ["eval", str(path), "--group-by", "source", "--cascade", "-c", str(test_config)]
    )
    assert res.exit_code == 0, res.output


def test_cli_calibrate_cascade_writes_threshold_and_band(tmp_path, test_config):
    import shutil

    import yaml

    from router.cli import app
    from router.core.data import read_jsonl

    cfg_dir = tmp_path / "cfg"
    shutil.copytree(test_config.parent, cfg_dir)
    pol = cfg_dir / "policies" / "casc.yaml"
    pol.write_text("default: [small-math]\nlarge: [large]\ncascade: {verifier: default}\n")
    routellm = Path(__file__).resolve().parent.parent / "data" / "routing" / "routellm.jsonl"
    rows = [ex for ex in read_jsonl(routellm) if ex.source == "gsm8k"][:120]
    data = tmp_path / "gsm8k.jsonl"
    write_jsonl(rows, data)
    args = ["calibrate", "--policy", "casc", "--data", str(data), "--cascade"]
    args += ["-c", str(cfg_dir / "config.yaml")]
    res = CliRunner().invoke(app, [*args, "--target", "quality=0.97"])
    assert res.exit_code == 0, res.output
    written = yaml.safe_load(pol.read_text())
    assert written["cascade"]["verifier"] == "default"
    assert 0 <= written["cascade"]["threshold"] <= 1
    assert "cascade.threshold" in res.output
    res = CliRunner().invoke(app, [*args, "--target", "large-share=0.0"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(pol.read_text())["cascade"]["threshold"] == 0  # never escalate


def test_mixed_data_judged_rows_take_the_routers_values_in_the_verifiers_order():
    from router.evaluation.evaluate_cascade import cascade_inputs as _inputs

    rows = _rows(8)
    data = EvalData.from_examples(rows)
    gain = np.array([0.1, 0.5, 0.3, 0.2, 0.6, 0.05, 0.4, 0.35])
    success = np.full((8, 2), np.nan)
    preds = Predictions(np.ones((8, 1)), np.full(8, 0.5), gain, success)
    vp = np.array([0.9, 0.2, 0.5, np.nan, np.nan, np.nan, np.nan, np.nan])
    x = _inputs(data, preds, vp)
    router_p = 1 - gain  # the router's values on the verifier's scale (P(large right) unknown)
    # The judged rows hold the router's values for them, most-likely-right first by the verifier.
    assert sorted(x.verifier_p[:3]) == pytest.approx(sorted(router_p[:3]))
    assert list(np.argsort(x.verifier_p[:3])) == list(np.argsort(vp[:3]))
    # Unjudged rows: the router's values, for the hybrid's band too.
    assert x.fallback_p[3:] == pytest.approx(router_p[3:])
    assert x.prompt_p[3:] == pytest.approx(router_p[3:])
