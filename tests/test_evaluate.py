"""`router eval` and `router calibrate` end to end on a small dataset with a real signal."""

import json
import random

import numpy as np
import pytest
import yaml

from router.core.data import Example, write_jsonl
from router.core.encoder import load_encoder
from router.evaluation.evaluate import EvalData, evaluate
from router.evaluation.train import embed_examples

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
    # One source: knowing it tells nothing about which prompt needs the big model (the
    # folds' rates differ a little, and order the folds at random).
    assert res["source-rates"]["apgr"] == pytest.approx(0.5, abs=0.05)
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
    assert "source-rates: each test prompt's source's mean outcomes" in r.stdout
    assert png.stat().st_size > 10_000
    r = run("eval", str(data), "--group-by", "source", "--config", str(test_config))
    assert r.returncode == 0 and "leave-one-source-out" in r.stdout, r.stderr
    assert "source-rates" not in r.stdout  # no training rows of the held-out source
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


def test_eval_names_data_it_cannot_measure_instead_of_a_traceback(tmp_path, test_config):
    """Mistakes a new user makes: one model, models of one price, a price that is no number,
    a price for a model the data lacks, more folds than prompts."""
    from tests.test_cli import ENV, run

    ENV["ROUTER_CACHE_DIR"] = str(tmp_path / "emb")
    rows = make_rows(12)
    two = tmp_path / "two.jsonl"
    write_jsonl(rows, two)
    one = tmp_path / "one.jsonl"
    for r in rows:
        r.scores, r.costs, r.cheap_models = {"big": r.scores["big"]}, {"big": 0.01}, []
    write_jsonl(rows, one)
    cfg = ("--config", str(test_config))
    cases = [
        ((str(one),), "the data scores one model, big"),
        ((str(two), "--price", "small=0.01", "--price", "big=0.01"), "costs the same"),
        ((str(two), "--price", "small=abc"), "--price 'small=abc'"),
        ((str(two), "--price", "small=nan"), "--price 'small=nan'"),
        ((str(two), "--price", "small=-1"), "--price 'small=-1'"),
        ((str(two), "--price", "gpt-4=0.01"), "--price for ['gpt-4']: not models of the data"),
        ((str(two), "--cv", "20"), "--cv 20: the data has 12 distinct prompts"),
    ]
    for args, says in cases:
        r = run("eval", *args, *cfg)
        assert r.returncode == 2 and says in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_calibrate_checks_its_target_and_out_before_any_work(tmp_path, test_config):
    """A directory or a file name that cannot name a policy as --out, a bad target or an
    unknown policy: an error before the data is embedded, and nothing written."""
    from tests.test_cli import run

    data = tmp_path / "d.jsonl"
    write_jsonl(make_rows(12), data)
    base = ("calibrate", "--data", str(data), "--config", str(test_config))
    tune = ("--policy", "balanced", "--target", "quality=0.9", "--out")
    cases = [
        ((*tune, str(tmp_path)), "a directory"),
        ((*tune, str(tmp_path / "a b.yaml")), "the file name 'a b' is the policy's name"),
        (("--policy", "balanced", "--target", "quality=2"), "between 0 and 1"),
        (("--policy", "nope", "--target", "quality=0.9"), "unknown policy 'nope'"),
    ]
    for args, says in cases:
        r = run(*base, *args)
        assert r.returncode == 2 and says in r.stderr, (args, r.stderr)
        assert "embedding" not in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "a b.yaml").exists()


def test_a_users_rows_without_domain_or_tier_train_and_evaluate_from_the_cli(tmp_path, test_config):
    """Prompts, scores and costs are enough: the cheap tier is the cheaper half by cost, and
    the shipped scorer's domain head stands in for the domains the rows do not carry."""
    from tests.test_cli import ENV, run

    ENV["ROUTER_CACHE_DIR"] = str(tmp_path / "emb")
    data = tmp_path / "own.jsonl"
    rows = make_rows(80, models=("small", "big", "mid"))
    for r in rows:
        r.source, r.cheap_models = "", []
    write_jsonl(rows, data)
    assert '"cheap_models"' not in data.read_text()
    r = run("train", str(data), "--out", str(tmp_path / "own"), "--config", str(test_config))
    assert r.returncode == 0, r.stderr
    assert "cheap tier small," in r.stdout and "the shipped scorer's head" in r.stdout
    r = run("eval", str(data), "--cv", "2", "--config", str(test_config))
    assert r.returncode == 0, r.stderr
    assert "80 prompts, 2-fold CV" in r.stdout and "router-no-shared" in r.stdout


def test_calibrate_takes_the_cheap_tier_from_the_catalogue_when_the_rows_name_none(
    tmp_path, test_config
):
    """Rows naming no cheap tier calibrate as if they named the catalogue's small models."""
    from tests.test_cli import ENV, run

    ENV["ROUTER_CACHE_DIR"] = str(tmp_path / "emb")
    mixtral, gpt4 = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
    rows = make_rows(80, source_split=True)
    for r in rows:
        r.scores = {mixtral: r.scores["small"], gpt4: r.scores["big"]}
        r.costs, r.cheap_models = {mixtral: 0.0006, gpt4: 0.01}, [mixtral]
    named, unnamed = tmp_path / "named.jsonl", tmp_path / "unnamed.jsonl"
    write_jsonl(rows, named)
    for r in rows:
        r.cheap_models = []
    write_jsonl(rows, unnamed)
    said = []
    for data in (named, unnamed):
        r = run(
            "calibrate", "--policy", "balanced", "--data", str(data),
            "--target", "quality=0.9", "--config", str(test_config),
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        said.append(r.stdout.split("wrote")[0])
    assert " = " in said[0] and said[0] == said[1], said


def test_calibrate_names_a_large_model_the_data_never_scores(tmp_path, test_config):
    """Its outcomes come from the data's best model outside the cheap ones: said, not silent."""
    from tests.test_cli import ENV, run

    ENV["ROUTER_CACHE_DIR"] = str(tmp_path / "emb")
    mixtral = "mistralai/Mixtral-8x7B-Instruct-v0.1"
    said = {}
    for large in ("gpt-4-1106-preview", "someone-elses-big-model"):
        rows = make_rows(80, source_split=True)
        for r in rows:
            r.scores = {mixtral: r.scores["small"], large: r.scores["big"]}
            r.costs, r.cheap_models = {mixtral: 0.0006, large: 0.01}, [mixtral]
        data = tmp_path / f"{large}.jsonl"
        write_jsonl(rows, data)
        r = run(
            "calibrate", "--policy", "balanced", "--data", str(data),
            "--target", "quality=0.9", "--config", str(test_config),
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        said[large] = " ".join(r.stderr.split())
    note = "note: the data never scores large (by name or `profile:`): stood in for"
    assert note not in said["gpt-4-1106-preview"], said  # `large` is profiled as GPT-4
    assert note in said["someone-elses-big-model"], said


def test_calibrate_in_place_changes_the_threshold_and_keeps_the_files_comments(
    tmp_path, test_config
):
    """`router calibrate` without --out rewrites only the tuned number of the policy file: a
    user's comments and layout stay."""
    import shutil

    from tests.test_cli import ENV, run

    ENV["ROUTER_CACHE_DIR"] = str(tmp_path / "emb")
    cfg_dir = tmp_path / "cfg"
    shutil.copytree(test_config.parent, cfg_dir)
    policy = cfg_dir / "policies" / "balanced.yaml"
    text = policy.read_text().replace(
        "escalation:\n", "escalation:  # tuned by router calibrate\n  max_gain: 0.5\n"
    )
    policy.write_text("# Our team's policy: ask before changing.\n" + text)
    mixtral, gpt4 = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
    rows = make_rows(80, source_split=True)
    for r in rows:
        r.scores = {mixtral: r.scores["small"], gpt4: r.scores["big"]}
        r.costs, r.cheap_models = {mixtral: 0.0006, gpt4: 0.01}, [mixtral]
    data = tmp_path / "d.jsonl"
    write_jsonl(rows, data)
    r = run(
        "calibrate", "--policy", "balanced", "--data", str(data),
        "--target", "quality=0.9", "--config", str(cfg_dir / "config.yaml"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    tuned = float(r.stdout.split("max_gain = ")[1].split()[0])
    written = policy.read_text()
    assert written.startswith("# Our team's policy: ask before changing.\n")
    assert "escalation:  # tuned by router calibrate\n" in written
    assert "max_gain: 0.5\n" not in written
    assert abs(yaml.safe_load(written)["escalation"]["max_gain"] - tuned) < 1e-4


def test_eval_data_errors_name_the_row():
    from router.core.data import DataError

    a = Example(prompt="x", scores={"a": 1, "b": 0}, costs={"a": 1, "b": 2})
    b = Example(prompt="y", scores={"a": 1}, costs={"a": 1})
    # A row missing one model's score (a missing label) is left out and counted.
    d = EvalData.from_examples([a, b])
    assert len(d.examples) == 1 and d.dropped == 1 and d.models == ["a", "b"]
    # Rows of two different model sets, none scoring them all: refused, naming the row.
    e = Example(prompt="z", scores={"c": 1}, costs={"c": 1})
    with pytest.raises(DataError, match="row 2.*one model set"):
        EvalData.from_examples([b, e])
    c = Example(prompt="y", scores={"a": 1, "b": 1})
    with pytest.raises(DataError, match="--price"):
        EvalData.from_examples([a, c])
    assert EvalData.from_examples([a, c], prices={"a": 1, "b": 2}).costs[1, 1] == 2
    np.testing.assert_array_equal(EvalData.from_examples([a]).scores, [[1, 0]])


def _data(scores, costs, cheap):
    rows = [
        Example(prompt=f"p{i}", scores=dict(s), costs=dict(c), cheap_models=cheap)
        for i, (s, c) in enumerate(zip(scores, costs, strict=True))
    ]
    return EvalData.from_examples(rows)


def test_random_baseline_is_the_zero_router_of_the_single_models():
    from router.evaluation.evaluate import baselines, score_curve

    # Means: a (q 0.5, $1), b (q 0.5, $2: on no hull), c (q 1.0, $3).
    scores = [{"a": 1, "b": 0, "c": 1}, {"a": 0, "b": 1, "c": 1}]
    costs = [{"a": 1, "b": 2, "c": 3}] * 2
    data = _data(scores, costs, ["a"])
    rnd = {c.name: c for c in baselines(data)}["random"]
    # The hull from a to c: quality 0.5 + 0.25 per dollar; b's point (2, 0.5) is under it.
    assert rnd.cost[0] == pytest.approx(1.0) and rnd.cost[-1] == pytest.approx(3.0)
    np.testing.assert_allclose(rnd.quality, 0.5 + 0.25 * (rnd.cost - 1.0))
    assert rnd.share is None  # more than two models: no single "strong" share
    m = score_curve(rnd, data)
    assert m["quality_at_best_single_cost"] == pytest.approx(1.0)
    # Half way in cost ($2): 0.75 by mixing a and c, more than b alone (0.5).
    from router.evaluation import metrics as M

    assert M.quality_at_cost(rnd.cost, rnd.quality, 2.0) == pytest.approx(0.75)
    # AIQ of a straight line from (0, 0.5) to (1, 1.0) over normalised cost: 0.75.
    assert m["aiq"] == pytest.approx(0.75, abs=1e-3)


def test_two_tier_random_baseline_has_apgr_one_half_and_full_share_range():
    from router.evaluation.evaluate import baselines, score_curve

    scores = [{"w": 1, "s": 1}, {"w": 0, "s": 1}]
    data = _data(scores, [{"w": 1, "s": 5}] * 2, ["w"])
    rnd = {c.name: c for c in baselines(data)}["random"]
    np.testing.assert_allclose(rnd.share, (rnd.cost - 1) / 4)
    m = score_curve(rnd, data)
    assert m["apgr"] == pytest.approx(0.5, abs=1e-9)
    assert (m["large_share_from"], m["large_share_to"]) == (0.0, 1.0)
    assert m["cpt_50"] == pytest.approx(0.5, abs=1e-3)


def test_a_router_curve_short_of_full_share_is_scored_on_its_range():
    from router.evaluation.evaluate import Curve, score_curve

    # Weak 0.5, strong 1.0. A curve over shares 0..0.5 only: PGR 0 at 0, 1 at 0.5.
    # Mean PGR over [0, 0.5] = 0.5; CPT(95%) = 0.475; flat extrapolation would give 0.75.
    scores = [{"w": 1, "s": 1}, {"w": 0, "s": 1}]
    data = _data(scores, [{"w": 1, "s": 5}] * 2, ["w"])
    curve = Curve("router", np.array([1.0, 3.0]), np.array([0.5, 1.0]), np.array([0.0, 0.5]))
    m = score_curve(curve, data)
    assert (m["large_share_from"], m["large_share_to"]) == (0.0, 0.5)
    assert m["apgr"] == pytest.approx(0.5, abs=1e-6)
    assert m["cpt_95"] == pytest.approx(0.475, abs=1e-3)
    js = Curve("x", curve.cost, curve.quality, curve.share, metrics=m).to_json()
    assert (js["large_share_from"], js["large_share_to"]) == (0.0, 0.5)


def test_eval_and_calibrate_warn_when_the_data_overlaps_the_scorers_training(
    tmp_path, test_config, monkeypatch
):
    from router.core.config import load_config
    from router.core.scorer import Scorer
    from tests.test_cli import ENV, run

    spec = load_config(test_config).encoder  # the scorer must read the config's vectors
    enc = load_encoder(spec.name, spec.max_tokens, cache_size=0)

    monkeypatch.setenv("ROUTER_CACHE_DIR", str(tmp_path / "emb"))
    ENV["ROUTER_CACHE_DIR"] = str(tmp_path / "emb")
    mix, gpt = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
    rows = make_rows(80, seed=7)
    for r in rows:
        r.scores = {mix: r.scores["small"], gpt: r.scores["big"]}
        r.costs = {mix: 0.0006, gpt: 0.01}
        r.cheap_models = [mix]
    seen = rows[:60]
    Scorer().fit(embed_examples(enc, seen), seen, enc.identity).save(tmp_path / "sc")
    data = tmp_path / "d.jsonl"
    write_jsonl(rows, data)
    args = ("--scorer", str(tmp_path / "sc"), "--config", str(test_config))
    r = run("eval", str(data), *args)
    assert r.returncode == 0, r.stderr
    assert "60 of 80 rows (75.0%) are prompts the scorer was trained on" in r.stderr
    r = run("eval", str(data), "--held-out", *args)
    assert r.returncode == 0, r.stderr
    assert "20 prompts" in r.stdout and "trained on" not in r.stderr
    # With --cv every fold's scorer is fresh: nothing to warn about.
    r = run("eval", str(data), "--cv", "2", "--config", str(test_config))
    assert r.returncode == 0 and "trained on" not in r.stderr, r.stderr
    r = run("eval", str(data), "--cv", "2", "--held-out", "--config", str(test_config))
    assert r.returncode == 2 and "--held-out" in r.stderr
    pol = tmp_path / "tuned.yaml"
    r = run(
        "calibrate",
        *("--policy", "balanced", "--data", str(data), "--target", "large-share=0.5"),
        *("--out", str(pol)),
        *args,
    )
    assert r.returncode == 0, r.stderr
    assert "60 of 80 rows (75.0%)" in r.stderr and "expected figures" in r.stderr
    # An older artifact without hashes: the check says it cannot tell.
    import numpy as np

    with np.load(tmp_path / "sc" / "weights.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "train_hashes"}
    np.savez_compressed(tmp_path / "sc" / "weights.npz", **arrays)
    r = run("eval", str(data), *args)
    assert r.returncode == 0 and "recorded no training prompts" in r.stderr, r.stderr


def test_task_of_names_the_task_across_datasets():
    from router.core.data import task_of

    assert task_of("dcrouter/gsm8k") == task_of("gsm8k") == "gsm8k"
    assert task_of("mmlu/anatomy") == task_of("dcrouter/mmlu") == "mmlu"
    assert task_of("mt_bench/writing") == "mt_bench"


def test_train_also_never_trains_on_a_test_prompt_nor_on_a_held_out_task():
    from router.evaluation.evaluate import TrainAlso

    test = [
        Example(prompt="What is 2 + 2?", source="gsm8k", scores={"a": 1}),
        Example(prompt="Name a prime.", source="mmlu/college_mathematics", scores={"a": 1}),
    ]
    extra = [
        Example(prompt="what is 2 + 2 ?", source="dcrouter/math", scores={"b": 1}),  # same text
        Example(prompt="Solve x + 1 = 3.", source="dcrouter/gsm8k", scores={"b": 0}),  # task
        Example(prompt="Which gas do plants use?", source="dcrouter/arc", scores={"b": 1}),
    ]
    also = TrainAlso(extra, np.zeros((3, 4)))
    assert also.for_fold(test, whole_tasks=False).tolist() == [False, True, True]
    assert also.for_fold(test, whole_tasks=True).tolist() == [False, False, True]


def test_train_also_rows_train_every_fold_and_are_never_scored(enc, tmp_path_factory, monkeypatch):
    from router.evaluation.evaluate import TrainAlso

    monkeypatch.setenv("ROUTER_CACHE_DIR", str(tmp_path_factory.mktemp("emb")))
    rows = make_rows(60, source_split=True)
    # Another dataset's rows with the same signal, on other models: only train.
    extra = [
        Example(
            prompt=r.prompt + " Explain.",
            source="dcrouter/" + r.source.split("/")[0],
            scores={"small2": r.scores["small"], "big2": 1.0},
            costs={"small2": 0.001, "big2": 0.01},
            cheap_models=["small2"],
            id=f"x{r.id}",
        )
        for r in make_rows(80, seed=3, source_split=True)
    ]
    data = EvalData.from_examples(rows)
    X, XE = embed_examples(enc, rows), embed_examples(enc, extra)
    seen = []

    def log(msg):
        seen.append(msg)

    report = evaluate(
        data,
        X,
        cv=3,
        encoder_identity=enc.identity,
        log=log,
        train_also=TrainAlso(extra, XE),
        scorer_params={"shared_dims": 2},
    )
    assert report.to_json()["rows"] == 60 and report.to_json()["trained_also_on"] == 80
    # Every fold trained on its 40 rows plus the 80 others.
    assert any("train 120" in m or "train 119" in m or "train 121" in m for m in seen), seen
    report = evaluate(
        data,
        X,
        group_by_source=True,
        encoder_identity=enc.identity,
        log=log,
        train_also=TrainAlso(extra, XE),
    )
    # Leaving gsm8k out leaves dcrouter/gsm8k out too: 30 + 40 rows train, not 30 + 80.
    assert any("train 70" in m for m in seen), seen
    # The held-out source has no training rows: no source-rates reference leaving it out.
    assert "source-rates" not in report.to_json()["results"]


def test_source_rates_give_each_prompt_its_sources_training_outcomes():
    from router.evaluation.evaluate import source_rate_predictions

    def rows(src, cheap, n):
        return [
            Example(
                prompt=f"{src} {i}",
                source=src,
                scores={"w": cheap, "s": 1.0},
                costs={"w": 1, "s": 5},
                cheap_models=["w"],
            )
            for i in range(n)
        ]

    train = EvalData.from_examples(rows("a/x", 0.0, 4) + rows("b/y", 1.0, 4))
    test = EvalData.from_examples(rows("a/x", 1.0, 1) + rows("b/y", 0.0, 1) + rows("c", 1, 1))
    p = source_rate_predictions(train, test)
    # Ten pseudo-rows at the training mean (gain 0.5) plus the source's four rows.
    np.testing.assert_allclose(p.gain, [(4 + 5) / 14, 5 / 14, 0.5])
    np.testing.assert_allclose(p.difficulty, p.gain)
    np.testing.assert_allclose(p.success[:, train.models.index("w")], [5 / 14, 9 / 14, 0.5])
    np.testing.assert_allclose(p.success[:, train.models.index("s")], 1.0)


def test_a_two_tier_sweep_thresholds_the_gain_the_policy_compares():
    from router.core.config import Policy
    from router.evaluation.evaluate import Predictions, score_curve, sweep

    # The success estimates know each prompt's outcomes; the gain head says the same for
    # every prompt. The sweep escalates on the blend of both (`gain_estimate: blend`, the
    # default), at thresholds spread over the blend's values, and gains from it; on the head
    # alone it can only send all or nothing: random.
    rng = np.random.default_rng(0)
    n = 400
    weak, strong = rng.random(n) < 0.5, rng.random(n) < 0.8
    scores = [{"w": float(a), "s": float(b)} for a, b in zip(weak, strong, strict=True)]
    data = _data(scores, [{"w": 1, "s": 5}] * n, ["w"])
    success = np.full((n, 2), np.nan)
    success[:, data.models.index("w")] = np.where(weak, 0.9, 0.1)
    success[:, data.models.index("s")] = np.where(strong, 0.9, 0.1)
    preds = Predictions(np.ones((n, 1)), rng.random(n), np.full(n, 0.3), success, None)
    curve = sweep("router", data, preds)
    blend = score_curve(curve, data)["apgr"]
    # Thresholds at the blend's quantiles: the head's would be 0.3 alone (and 0 and 1).
    assert len(set(curve.params)) > 3
    head_only = Policy(name="h", default=("w",), large=("s",), escalation={"gain_estimate": "head"})
    head = score_curve(sweep("router", data, preds, head_only), data)["apgr"]
    assert blend > 0.7 and head == pytest.approx(0.5)
    # Success estimates learned on different prompts (`Predictions.comparable`): the head alone.
    preds.comparable = np.eye(2, dtype=bool)
    assert score_curve(sweep("router", data, preds), data)["apgr"] == pytest.approx(0.5)


def test_predictions_say_which_success_estimates_may_be_multiplied():
    from router.evaluation.evaluate import predictions_from_batch
    from tests.test_scorer import texts, two_datasets

    scorer, X1, one = two_datasets()
    batch = scorer.predict(X1[:5], texts(one[:5]))
    p = predictions_from_batch(batch, ["big", "small", "huge", "absent"])
    T, F = True, False
    assert p.comparable.tolist() == [[T, T, F, F], [T, T, F, F], [F, F, T, F], [F, F, F, F]]


def test_fold_embeddings_give_each_fold_its_own_vectors(enc, tmp_path_factory, monkeypatch):
    """An encoder trained per fold: each fold's router and kNN read that fold's vectors, and
    its training-only rows' too (scripts/tuned_encoder_figures.py)."""
    from router.evaluation.evaluate import TrainAlso

    monkeypatch.setenv("ROUTER_CACHE_DIR", str(tmp_path_factory.mktemp("emb")))
    rows = make_rows()
    extra = [
        Example(
            prompt=r.prompt,
            scores={"small2": r.scores["small"], "big2": 1.0},
            cheap_models=["small2"],
            id=f"x{r.id}",
        )
        for r in make_rows(30, seed=5)
    ]
    data = EvalData.from_examples(rows)
    X, XE = embed_examples(enc, rows), embed_examples(enc, extra)
    noise = np.random.default_rng(0).normal(size=X.shape).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    calls = []

    def fold_embeddings(fold):
        calls.append(fold)
        return X, XE

    def apgr(**kw):
        report = evaluate(data, noise, cv=3, encoder_identity=enc.identity, **kw)
        return {c.name: c.metrics["apgr"] for c in report.curves}

    # The noise tells the neighbours nothing (the router reads the texts too: not blind).
    assert apgr()["knn"] < 0.6
    seeing = apgr(fold_embeddings=fold_embeddings, train_also=TrainAlso(extra, XE[::-1].copy()))
    assert sorted(calls) == [0, 1, 2]
    assert seeing["knn"] > 0.65 and seeing["router"] > 0.7

    def broken_for_training_rows(fold):
        return X, np.full_like(XE, np.nan)

    with pytest.raises(ValueError, match="NaN"):
        apgr(fold_embeddings=broken_for_training_rows, train_also=TrainAlso(extra, XE))
