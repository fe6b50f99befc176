"""A verifier that knows what it does not know: novelty of answers unlike its training ones, the
verdict falling back to the router's prompt estimate there, and what a saved verifier keeps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from router.core.answer_checks import dense_features
from router.core.data import Example
from router.core.novelty import AnswerNovelty, CharCounts, _TextView
from router.core.verifier import (
    DEFAULT_GATE,
    AnswerCase,
    AnswerVerifier,
    VerifierError,
    Weighing,
    auroc,
    fit_weighing,
)


def _maths(n: int = 120, seed: int = 0):
    """Two tasks of word problems whose answers show their sums; half of them slip."""
    rng = np.random.default_rng(seed)
    cases, y, groups = [], [], []
    for i in range(n):
        a, b = int(rng.integers(3, 60)), int(rng.integers(3, 60))
        right = i % 2 == 0
        if i % 4 < 2:
            c = a + b if right else a + b + int(rng.integers(1, 9))
            prompt = f"Tom has {a} apples and buys {b} more. How many apples does he have?"
            answer = f"He has {a} + {b} = {c} apples.\n#### {c}"
            groups.append("apples")
        else:
            c = a * b if right else a * b + int(rng.integers(1, 9))
            prompt = f"A box holds {a} pens. How many pens are in {b} boxes?"
            answer = f"There are {a} * {b} = {c} pens.\n#### {c}"
            groups.append("pens")
        cases.append(AnswerCase(prompt, answer))
        y.append(float(right))
    return cases, np.array(y), np.array(groups)


FOREIGN = AnswerCase(
    "Summarise the causes of the French Revolution in two sentences, for a history class.",
    "The French Revolution grew out of a fiscal crisis, Enlightenment ideas about sovereignty "
    "and resentment of aristocratic privilege. Bread shortages and the deadlock of the "
    "Estates-General turned those grievances into open revolt in 1789.",
)


@pytest.fixture(scope="module")
def fitted():
    cases, y, groups = _maths()
    # A prompt side that knows nothing of these rows: the verdict must learn the answer wins.
    prompt_p = np.random.default_rng(1).uniform(0.05, 0.95, len(y))
    return AnswerVerifier().fit(cases, y, prompt_p, groups)


def test_novelty_is_spread_on_familiar_answers_and_high_on_foreign_ones(fitted):
    new_cases, _, _ = _maths(40, seed=7)
    familiar = fitted.verdicts(new_cases).novelty
    assert np.median(familiar) < 0.8
    assert fitted.verdicts([FOREIGN]).novelty[0] > 0.95


def test_out_of_distribution_the_verdict_follows_the_prompt_side(fitted):
    for prompt_p in (0.1, 0.9):
        v = fitted.verdicts([FOREIGN], [prompt_p])
        one = v.one()
        assert one["out_of_distribution"] is True
        assert one["prompt_weight"] > 0.6 > one["answer_weight"]
        # Closer to the router's estimate than the answer side alone would be.
        assert abs(v.probability[0] - prompt_p) < abs(v.answer_probability[0] - prompt_p)
        assert abs(v.probability[0] - prompt_p) < 0.25


def test_in_distribution_the_answer_evidence_dominates(fitted):
    cases, y, _ = _maths(40, seed=11)
    # A router that knows nothing of these answers: the verdict ranks them by the answers.
    noise = np.random.default_rng(2).uniform(0.05, 0.95, len(y))
    v = fitted.verdicts(cases, list(noise))
    assert v.out_of_distribution.mean() < 0.2
    assert v.answer_weight.mean() > 0.6
    assert auroc(y, v.probability) > 0.8
    assert v.answer_weight.mean() > fitted.verdicts([FOREIGN], [0.5]).answer_weight[0] + 0.3


def test_the_gate_is_learned_from_held_out_groups():
    rng = np.random.default_rng(0)
    za, zp, y = rng.normal(size=200), rng.normal(size=200), (rng.random(200) < 0.5) * 1.0
    within = rng.uniform(0, 1, 200)
    outside = rng.beta(5, 1, 200)  # held-out groups look unfamiliar
    w = fit_weighing(za, zp, y, within, outside)
    assert w.e1 > 1.0
    assert w.in_distribution(np.array([0.2]))[0] > w.in_distribution(np.array([0.98]))[0]
    # With no held-out group to learn from, the documented prior gate.
    w = fit_weighing(za, zp, y, within, None)
    assert (w.e0, w.e1) == DEFAULT_GATE
    # Without novelty (format 1) the answer side is the verdict.
    z, share = Weighing().verdict(np.array([2.0]), np.array([-3.0]), np.array([0.0]))
    assert z[0] == pytest.approx(2.0) and share[0] == pytest.approx(1.0)


def test_char_counts_reproduce_the_vectorizer():
    texts = ["He has 3 + 4 = 7 apples.", "There are 5 * 6 = 30 pens.", "He has 8 apples.", ""]
    view = _TextView(4, 50, 2, 0).fit(CharCounts.of(texts * 3))
    from_counts = view.signals_from_counts(CharCounts.of(texts * 3).rows([0, 1, 2, 3]))
    from_text = view.signals(texts)
    for a, b in zip(from_counts, from_text, strict=True):
        assert np.allclose(a, b, atol=1e-5)
    assert from_text[0][3] == 1.0  # an empty text has nothing unfamiliar in it


def test_novelty_needs_fit_and_reference():
    cases, _, _ = _maths(20)
    nov = AnswerNovelty()
    with pytest.raises(ValueError, match="not fitted"):
        nov.familiarity(cases, dense_features(cases))
    nov.fit(cases, dense_features(cases))
    with pytest.raises(ValueError, match="reference"):
        nov.novelty(cases, dense_features(cases))


def test_save_load_keeps_the_weighing_novelty_and_training_prompts(fitted, tmp_path):
    fitted.save(tmp_path / "v")
    v = AnswerVerifier.load(tmp_path / "v")
    new_cases, _, _ = _maths(10, seed=3)
    cases = [*new_cases, FOREIGN]
    p = list(np.linspace(0.1, 0.9, len(cases)))
    a, b = fitted.verdicts(cases, p), v.verdicts(cases, p)
    for field in ("probability", "answer_probability", "answer_weight", "novelty"):
        assert np.allclose(getattr(a, field), getattr(b, field), atol=1e-5), field
    meta = json.loads((tmp_path / "v" / "verifier.json").read_text())
    assert meta["format_version"] == 2 and set(meta["weighing"]) == {"d0", "d1", "d2", "e0", "e1"}
    seen = Example(prompt=_maths(1)[0][0].prompt, scores={"m": 1.0})  # a training prompt
    unseen = Example(prompt=FOREIGN.prompt, scores={"m": 1.0})
    assert list(v.trained_on([seen, unseen])) == [True, False]


def test_a_format_1_verifier_loads_as_the_answer_side_alone(fitted, tmp_path):
    fitted.save(tmp_path / "v")
    meta = json.loads((tmp_path / "v" / "verifier.json").read_text())
    meta["format_version"] = 1
    for k in ("novelty", "weighing", "training_groups"):
        meta.pop(k)
    (tmp_path / "v" / "verifier.json").write_text(json.dumps(meta))
    with np.load(tmp_path / "v" / "weights.npz") as z:
        arrays = {k: z[k] for k in z.files if k in ("coef", "mean", "scale") or "idf" in k}
    arrays = {k: v for k, v in arrays.items() if not k.startswith("novelty_")}
    np.savez_compressed(tmp_path / "v" / "weights.npz", **arrays)
    old = AnswerVerifier.load(tmp_path / "v")
    v = old.verdicts([FOREIGN], [0.9])
    assert v.probability[0] == pytest.approx(v.answer_probability[0])
    assert v.one()["novelty"] is None and v.one()["out_of_distribution"] is None
    assert v.one()["answer_weight"] == 1.0
    assert old.trained_on([Example(prompt="x", scores={"m": 1.0})]) is None
    with pytest.raises(VerifierError, match="retrain"):
        old.save(tmp_path / "again")


def test_an_answer_with_no_ngram_the_training_answers_had_is_unfamiliar():
    """Text made wholly of n-grams the training answers never had (another script, letters
    they never used) is as unfamiliar as text can be, not as familiar as an empty answer."""
    cases = [AnswerCase(f"Quick check {w} {i}: name a fruit.", f"echo: {w} {i}") for i, w in
             enumerate(["alpha", "omega"] * 30)]  # fmt: skip
    y = [1.0 if i % 2 == 0 else 0.0 for i in range(len(cases))]
    groups = ["a" if i % 4 < 2 else "b" for i in range(len(cases))]
    v = AnswerVerifier().fit(cases, y, [0.5] * len(y), groups)
    prompt = "Quick check omega 999: name a fruit."
    familiar, *strangers = v.verdicts(
        [AnswerCase(prompt, "echo: omega 999"), AnswerCase(prompt, "zzzz qqqq"),
         AnswerCase(prompt, "果物の名前")],
        [0.9, 0.9, 0.9],
    ).novelty  # fmt: skip
    for novelty in strangers:
        assert novelty > 0.95 and novelty > familiar
    # An empty text still has nothing unfamiliar in it (the cascade escalates it anyway).
    view = v.novelty_.answers_
    inside, near = view.signals(["zzzz qqqq", ""])
    assert (inside[0], near[0]) == (0.0, -1.0) and (inside[1], near[1]) == (1.0, 1.0)
