"""Building and judging verifiers from the command line: the figures a verifier records, the
refusal to replace a better one, the overlap warnings, and leave-one-task/model-out."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from router.cli import app
from router.core.data import Example, task_of, write_jsonl
from router.core.verifier import AnswerVerifier, verifier_cases
from router.evaluation.evaluate import EvalData, group_labels
from router.evaluation.two_tier import POOLED, answered_rows

A, B = "cheap-a", "cheap-b"


def _rows(n: int = 72, offset: int = 0) -> list[Example]:
    """Sums answered by two cheap models (A slips on every third, B on every fourth, visibly;
    both misread every fifth question, invisibly), from two tasks; a large model always right."""
    rows = []
    for i in range(offset, offset + n):
        a, b = i + 2, 7
        answers, scores = {}, {"big": 1.0}
        for m, slips in ((A, i % 3 == 0), (B, i % 4 == 0)):
            c = a + b + (1 if slips else 0)
            answers[m] = f"{a} + {b} = {c}. #### {c}"
            scores[m] = 0.0 if slips or i % 5 == 0 else 1.0
        rows.append(
            Example(
                prompt=f"What is {a} + {b}? ({i})",
                source="gsm8k" if i % 2 else "dcrouter/math",
                scores=scores,
                costs={A: 0.001, B: 0.002, "big": 0.01},
                cheap_models=[A, B],
                extra={"answers": answers},
            )
        )
    return rows


def test_task_of_names_the_dataset():
    assert task_of("gsm8k") == task_of("dcrouter/gsm8k") == "gsm8k"
    assert task_of("mmlu/anatomy") == task_of("dcrouter/mmlu") == "mmlu"
    assert task_of("routerbench/hellaswag") == "hellaswag"


def test_answered_rows_pool_two_models_under_one_column():
    rows = answered_rows(_rows(8), [A, B])
    assert len(rows) == 16
    assert {tuple(sorted(r.scores)) for r in rows} == {(POOLED, "large")}
    assert {r.extra["cheap_model"] for r in rows} == {A, B}
    assert all(set(r.extra["answers"]) == {POOLED} for r in rows)
    found = verifier_cases(rows, [POOLED])
    assert sorted(set(found.models)) == [A, B]  # who answered, not the pooled column
    one = answered_rows(_rows(8), [A])
    assert {tuple(sorted(r.scores)) for r in one} == {(A, "large")}
    data = EvalData.from_examples(rows)
    assert list(group_labels(data, "model")) == [r.extra["cheap_model"] for r in data.examples]
    assert set(group_labels(data, "task")) == {"gsm8k", "math"}


def _train(tmp_path, test_config, *extra: str):
    data = tmp_path / "rows.jsonl"
    if not data.exists():
        write_jsonl(_rows(), data)
    args = ["train-verifier", str(data), "--models", f"{A},{B}", "--cv", "3"]
    args += ["--out", str(tmp_path / "v"), "-c", str(test_config), *extra]
    return CliRunner().invoke(app, args)


def test_train_verifier_records_figures_and_refuses_to_replace_a_better_one(tmp_path, test_config):
    # --force: on these synthetic rows whether the cascade beats the router out of distribution
    # (a refusal of its own, tested below) depends on the shipped scorer, not on this test.
    res = _train(tmp_path, test_config, "--force")
    assert res.exit_code == 0, res.output
    meta_file = tmp_path / "v" / "verifier.json"
    meta = json.loads(meta_file.read_text())
    figures = meta["figures"]
    for grouping in ("cv", "task", "model"):
        assert figures[grouping]["verifier_auroc"] is not None
        assert figures[grouping]["cascade_apgr"] is not None
        assert figures[grouping]["router_apgr"] is not None
    assert figures["data"]["by_model"] == {A: 72, B: 72}
    assert "leave-one-task-out" in res.output and "leave-one-model-out" in res.output
    # The artifact on disk claims better figures than any retraining can reach: refused.
    meta["figures"]["task"]["verifier_auroc_within"] = 0.999
    meta_file.write_text(json.dumps(meta))
    before = (tmp_path / "v" / "weights.npz").read_bytes(), meta_file.read_text()
    res = _train(tmp_path, test_config)
    assert res.exit_code == 1, res.output
    assert "not written" in res.output and "task.verifier_auroc_within" in res.output
    assert "0.9990" in res.output  # the previous figure, beside the new one
    assert ((tmp_path / "v" / "weights.npz").read_bytes(), meta_file.read_text()) == before
    res = _train(tmp_path, test_config, "--force")
    assert res.exit_code == 0, res.output
    meta = json.loads(meta_file.read_text())
    assert meta["replaced"]["task"]["verifier_auroc_within"] == 0.999
    assert meta["figures"]["task"]["verifier_auroc_within"] < 0.999


def _pooled(tmp_path) -> tuple:
    path = tmp_path / "pooled.jsonl"
    rows = answered_rows(_rows(), [A, B])
    write_jsonl(rows, path)
    return path, rows


def test_eval_cascade_leaves_one_task_or_model_out(tmp_path, test_config):
    path, _ = _pooled(tmp_path)
    for by, mode in (("model", "leave-one-model-out"), ("task", "leave-one-task-out")):
        out = tmp_path / f"{by}.json"
        args = ["eval", str(path), "--cascade", "--group-by", by, "--json", str(out)]
        res = CliRunner().invoke(app, [*args, "-c", str(test_config)])
        assert res.exit_code == 0, res.output
        report = json.loads(out.read_text())
        assert report["mode"] == mode
        assert report["cascade"]["answer_side_auroc"] is not None
        assert 0 <= report["cascade"]["mean_answer_weight"] <= 1
    one = tmp_path / "one.jsonl"
    write_jsonl(answered_rows(_rows(), [A]), one)
    res = CliRunner().invoke(
        app, ["eval", str(one), "--cascade", "--group-by", "model", "-c", str(test_config)]
    )
    assert res.exit_code == 2 and "two or more cheap models" in res.output


@pytest.fixture
def verifiers(tmp_path):
    """A verifier trained on the pooled rows, and one trained on other prompts."""
    _, rows = _pooled(tmp_path)
    found = verifier_cases(rows, [POOLED])
    AnswerVerifier().fit(found.cases, found.y).save(tmp_path / "seen")
    other = verifier_cases(answered_rows(_rows(offset=500), [A, B]), [POOLED])
    AnswerVerifier().fit(other.cases, other.y).save(tmp_path / "unseen")
    return tmp_path / "seen", tmp_path / "unseen"


def test_eval_cascade_warns_when_the_verifier_learned_from_the_rows(
    tmp_path, test_config, verifiers
):
    path, _ = _pooled(tmp_path)
    seen, unseen = verifiers
    base = ["eval", str(path), "--cascade", "-c", str(test_config)]
    res = CliRunner().invoke(app, [*base, "--verifier", str(seen)])
    assert res.exit_code == 0, res.output
    assert "144 of 144 rows" in res.output and "the verifier was trained on" in res.output
    assert "Use --cv" in " ".join(res.output.split())
    res = CliRunner().invoke(app, [*base, "--verifier", str(unseen)])
    assert res.exit_code == 0, res.output
    assert "the verifier was trained on" not in res.output
    # With --cv each fold's verifier is trained without the fold: nothing to warn about.
    res = CliRunner().invoke(app, [*base, "--cv", "3"])
    assert res.exit_code == 0, res.output
    assert "the verifier was trained on" not in res.output


def test_calibrate_cascade_warns_when_the_verifier_learned_from_the_rows(
    tmp_path, test_config, verifiers
):
    cfg_dir = tmp_path / "cfg"
    shutil.copytree(test_config.parent, cfg_dir)
    # The rows name the cheap model of the policy ("small-math") so it stands in for it.
    rows = []
    for ex in _rows():
        ex.scores = {"small-math": ex.scores[A], "large": 1.0}
        ex.cheap_models = ["small-math"]
        ex.extra = {"answers": {"small-math": ex.extra["answers"][A]}}
        ex.costs = None
        rows.append(ex)
    data = tmp_path / "cal.jsonl"
    write_jsonl(rows, data)
    seen = verifier_cases(rows, ["small-math"])
    AnswerVerifier().fit(seen.cases, seen.y).save(tmp_path / "cal-verifier")
    for name, verifier, warned in (
        ("seen", tmp_path / "cal-verifier", True),
        ("unseen", verifiers[1], False),
    ):
        (cfg_dir / "policies" / f"{name}.yaml").write_text(
            f"default: [small-math]\nlarge: [large]\ncascade: {{verifier: {verifier}}}\n"
        )
        args = ["calibrate", "--policy", name, "--data", str(data), "--cascade"]
        args += ["--target", "quality=0.9", "-c", str(cfg_dir / "config.yaml")]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        assert ("prompts the verifier was trained on" in res.output) is warned, res.output
        # calibrate has no --cv: the warning offers what it has.
        assert "--cv" not in res.output
        assert ("Calibrate on data it did not see" in " ".join(res.output.split())) is warned


def test_a_verifier_whose_cascade_loses_to_the_router_is_refused():
    """Whatever the previous verifier recorded, a cascade worse than the router alone (in CV
    or leaving a task or a model out) is named as worse, so make verifier does not ship it."""
    from router.evaluation.verifier_build import compare

    good = {
        g: {
            "verifier_auroc": 0.8,
            "verifier_auroc_within": 0.7,
            "cascade_apgr": 0.6,
            "router_apgr": 0.5,
        }
        for g in ("cv", "task", "model")
    }
    assert compare(good, None).worse == []
    bad = json.loads(json.dumps(good))
    bad["task"]["cascade_apgr"] = 0.478
    bad["task"]["router_apgr"] = 0.493
    assert compare(bad, None).worse == ["task.cascade_apgr below its router_apgr"]
    assert compare(bad, None, tolerance=0.02).worse == []
