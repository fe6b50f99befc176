"""The encoder-tuning measurement (scripts/tune_encoder.py): its splits keep what they hold out
unseen, its outcome table is every model's, and a run goes on from its checkpoint."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from router.core.data import Example, group_key, task_of

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tune_encoder():
    spec = importlib.util.spec_from_file_location("tune_encoder", ROOT / "scripts/tune_encoder.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rows(n_tasks=6, per_task=20):
    out = []
    for t in range(n_tasks):
        for i in range(per_task):
            # Two rows share each text: a split must keep them on one side.
            out.append(
                Example(
                    prompt=f"question {i // 2} of task {t}: what is {t} plus {i // 2}?",
                    source=f"dcrouter/task{t}" if t % 2 else f"task{t}/sub",
                    scores={"small": float(i % 3 == 0), "big": 1.0},
                )
            )
    return out


def test_task_splits_hold_whole_tasks_out_and_cv_keeps_duplicates_together(tune_encoder):
    exs = rows()
    splits = tune_encoder.splits(exs)
    tasks = np.array([task_of(e.source) for e in exs])
    a, b = splits["tasks-a"], splits["tasks-b"]
    assert (a ^ b).all()  # each row is held out by exactly one of the two halves
    assert not set(tasks[a]) & set(tasks[~a])
    assert set(tasks[~a]) and set(tasks[~b])
    keys = np.array([group_key(e) for e in exs])
    cv = splits["cv"]
    for k in set(keys):
        assert len(set(cv[keys == k])) == 1
    assert 0 < (~cv).sum() < len(exs)


def test_outcome_table_has_a_column_per_model_and_dataset(tune_encoder):
    exs = [
        Example(prompt="a", scores={"m1": 1.0, "m2": 0.0}),
        Example(prompt="b", scores={"m1": 0.5}),
    ]
    y, heads = tune_encoder.outcome_table(exs, ["d1", "d2"])
    assert heads == ["d1:m1", "d1:m2", "d2:m1"]
    np.testing.assert_array_equal(np.isnan(y), [[False, False, True], [True, True, False]])
    assert y[0, 0] == 1.0 and y[1, 2] == 0.5


def test_a_run_resumes_from_its_checkpoint(tune_encoder, tmp_path, capsys):
    from router.core.encoder import MiniLMTokens

    exs = rows(n_tasks=2, per_task=16)
    y, _ = tune_encoder.outcome_table(exs, ["d"] * len(exs))
    tokens = MiniLMTokens(32)
    seqs = [tokens(e.text()) for e in exs]
    run = tmp_path / "run"
    tune_encoder.tune(run, seqs, y, layers=1, minutes=0.01)
    first = json.loads((run / "done.json").read_text())
    assert first["step"] >= 1
    model = tune_encoder.tune(run, seqs, y, layers=1, minutes=0.03)
    second = json.loads((run / "done.json").read_text())
    assert f"resumed at step {first['step']}" in capsys.readouterr().out
    assert second["step"] > first["step"] and second["minutes"] > first["minutes"]
    vectors = tune_encoder.embed(model, seqs)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    frozen = tune_encoder.embed(tune_encoder.build_encoder(1), seqs)
    assert not np.allclose(vectors, frozen)  # tuning moved the encoder


def test_minutes_past_an_hour_are_refused(tune_encoder, capsys):
    with pytest.raises(SystemExit):
        tune_encoder.main(["--minutes", "90"])
    assert "at most 60 minutes" in capsys.readouterr().err


@pytest.fixture(scope="module")
def fold_figures():
    spec = importlib.util.spec_from_file_location(
        "tuned_encoder_figures", ROOT / "scripts/tuned_encoder_figures.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_each_fold_is_scored_by_an_encoder_that_never_saw_it(fold_figures):
    """scripts/tuned_encoder_figures.py: the CV fold k of either evaluated dataset is held out
    of the `cvk` tuning, and a source left out is scored by the half that never saw its task."""
    from router.evaluation.evaluate import fold_ids, source_groups

    rows, _ = fold_figures.T.load_rows()
    tuning_keys = {
        s: {
            group_key(e)
            for e, out in zip(rows, fold_figures.held_out_mask(s, rows), strict=True)
            if not out
        }
        for s in fold_figures.SPLITS
    }
    for name, data in fold_figures.eval_data().items():
        folds = fold_ids(data, fold_figures.CV, 0)
        for k in range(fold_figures.CV):
            test = {group_key(e) for e, f in zip(data.examples, folds, strict=True) if f == k}
            assert test and not test & tuning_keys[fold_figures.split_of("cv", k)], (name, k)
        for g in np.unique(source_groups(data)):
            half = fold_figures.split_of("loso", g)
            tuned_on = {
                task_of(e.source)
                for e, out in zip(rows, fold_figures.held_out_mask(half, rows), strict=True)
                if not out
            }
            assert task_of(str(g)) not in tuned_on, (name, g, half)
    # Every task of the data is in one half: no source is scored by an encoder that saw it.
    tasks = {task_of(e.source) for e in rows}
    assert tasks == set().union(*fold_figures.HALVES.values())
