"""`router eval` and `router calibrate` end to end on a small dataset with a real signal."""

import json
import random

import numpy as np
import pytest

from router.data import Example, write_jsonl
from router.encoder import load_encoder
from router.evaluate import EvalData, evaluate
from router.train import embed_examples

EASY = ["What is {a} plus {b}?", "Add {a} and {b}.", "What is {a} + {b}?"]
HARD = [
    "Prove that every finite group of order {a} has a normal Sylow subgroup, citing the theorems used.",
    "Derive the closed form of the integral of x^{a} e^(-{b}x) and justify convergence rigorously.",
    "Show that the Galois group of x^{a} - {b} over Q is solvable, with a full proof.",
]


def make_rows(n=120, models=("small", "big"), seed=0, source_split=False):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        hard = i % 2 == 1
        text = rng.choice(HARD if hard else EASY).format(
            a=rng.randint(2, 999), b=rng.randint(2, 999)
        )
        scores = {"small": 0.0 if hard else 1.0, "big": 1.0}
        costs = {"small": 0.001, "big": 0.01}
        if "mid" in models:
            scores["mid"] = 1.0 if (not hard or i % 4 == 1) else 0.0
            costs["mid"] = 0.004
        rows.append(
            Example(
                prompt=text,
                source=("gsm8k" if i < n // 2 else "mmlu/college_mathematics")
                if source_split
                else "gsm8k",
                scores=scores,
                costs=costs,
                cheap_models=["small"],
                id=str(i),
            )
        )
    return rows


@pytest.fixture(scope="module")
def enc():
    return load_encoder("minilm-int8", 128, cache_size=0)


def test_cross_validated_router_beats_random_on_a_learnable_signal(
    enc, tmp_path_factory, monkeypatch
):
    monkeypatch.setenv("ROUTER_CACHE_DIR", str(tmp_path_factory.mktemp("emb")))
    rows = make_rows()
    data = EvalData.from_examples(rows)
    X = embed_examples(enc, rows)
    report = evaluate(data, X, cv=3, encoder_identity=enc.identity)
    res = {c.name: c.metrics for c in report.curves}
    # Half the prompts need the big model: a perfect router scores 0.5*0.5 + 0.5 = 0.75.
    assert 0.7 < res["router"]["apgr"] <= 0.75 + 1e-9
    assert res["random"]["apgr"] == pytest.approx(0.5, abs=0.01)
    assert res["knn"]["apgr"] > 0.65
    assert res["single:big"]["quality_at_best_single_cost"] == pytest.approx(1.0)
    # Half the prompts are easy: matching the big model costs about 0.55 of it.
    assert res["router"]["cost_to_match_best_single"] < 0.7
    assert res["router"]["cost_reduction_at_95"] > 0.3
    out = report.to_json()
    assert out["oracle"]["quality"] == pytest.approx(1.0)
    assert set(out["results"]["router"]) >= {"apgr", "cpt_50", "cpt_80", "cpt_95", "aiq", "curve"}


def test_n_model_sweep_reports_aiq_not_apgr(enc, tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTER_CACHE_DIR", str(tmp_path))
    rows = make_rows(models=("small", "mid", "big"))
    data = EvalData.from_examples(rows)
    report = evaluate(data, embed_examples(enc, rows), cv=3, encoder_identity=enc.identity)
    res = {c.name: c.metrics for c in report.curves}
    assert report.settings["sweep"] == "cost_weight"
    assert res["router"]["apgr"] is None and res["router"]["aiq"] > res["random"]["aiq"]


def test_eval_and_calibrate_cli(tmp_path, test_config, monkeypatch):
    from tests.test_cli import ENV, run

    ENV["ROUTER_CACHE_DIR"] = str(tmp_path / "emb")
    data = tmp_path / "d.jsonl"
    rows = make_rows(80, source_split=True)
    for r in rows:  # calibrate maps catalogue models to data models by profile
        r.scores = {
            "mistralai/Mixtral-8x7B-Instruct-v0.1": r.scores["small"],
            "gpt-4-1106-preview": r.scores["big"],
        }
        r.costs = {"mistralai/Mixtral-8x7B-Instruct-v0.1": 0.0006, "gpt-4-1106-preview": 0.01}
        r.cheap_models = ["mistralai/Mixtral-8x7B-Instruct-v0.1"]
    write_jsonl(rows, data)
    js, png = tmp_path / "e.json", tmp_path / "e.png"
    r = run(
        "eval",
        str(data),
        "--cv",
        "2",
        "--json",
        str(js),
        "--plot",
        str(png),
        "--config",
        str(test_config),
    )
    assert r.returncode == 0, r.stderr
    assert "apgr" in r.stdout and "oracle" in r.stdout
    out = json.loads(js.read_text())
    assert out["mode"] == "2-fold CV by prompt text"
    assert png.stat().st_size > 10_000
    r = run("eval", str(data), "--group-by", "source", "--config", str(test_config))
    assert r.returncode == 0 and "leave-one-source-out" in r.stdout, r.stderr
    r = run("eval", str(data), "--config", str(test_config))  # the shipped scorer, as is
    assert r.returncode == 0 and "as is" in r.stdout, r.stderr
    r = run("eval", str(data), "--cv", "2", "--source", "gsm8k", "--config", str(test_config))
    assert r.returncode == 0 and "40 prompts" in r.stdout, r.stderr
    r = run("eval", str(data), "--source", "nope", "--config", str(test_config))
    assert r.returncode == 2 and "no rows with a source" in r.stderr

    pol = tmp_path / "tuned.yaml"
    r = run(
        "calibrate",
        "--policy",
        "balanced",
        "--data",
        str(data),
        "--target",
        "large-share=0.3",
        "--out",
        str(pol),
        "--config",
        str(test_config),
    )
    assert r.returncode == 0, r.stderr
    assert "large-model share" in r.stdout
    share = float(r.stdout.split("large-model share")[1].split("%")[0]) / 100
    assert share <= 0.3
    # The written policy is valid and routes.
    import shutil

    cfg_dir = tmp_path / "cfg2"
    shutil.copytree(test_config.parent, cfg_dir)
    shutil.copy(pol, cfg_dir / "policies" / "tuned.yaml")
    from router import Router

    router = Router.from_config(cfg_dir / "config.yaml")
    assert router.route("What is 2 plus 2?", policy="tuned").policy == "tuned"

    r = run(
        "calibrate",
        "--policy",
        "balanced",
        "--data",
        str(data),
        "--target",
        "quality=2",
        "--config",
        str(test_config),
    )
    assert r.returncode == 2 and "between 0 and 1" in r.stderr


def test_eval_data_errors_name_the_row():
    from router.data import DataError

    a = Example(prompt="x", scores={"a": 1, "b": 0}, costs={"a": 1, "b": 2})
    b = Example(prompt="y", scores={"a": 1}, costs={"a": 1})
    with pytest.raises(DataError, match="row 2"):
        EvalData.from_examples([a, b])
    c = Example(prompt="y", scores={"a": 1, "b": 1})
    with pytest.raises(DataError, match="--price"):
        EvalData.from_examples([a, c])
    assert EvalData.from_examples([a, c], prices={"a": 1, "b": 2}).costs[1, 1] == 2
    np.testing.assert_array_equal(EvalData.from_examples([a]).scores, [[1, 0]])
