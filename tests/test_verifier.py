"""The answer verifier: each check on hand-made answers, logprob parsing, fit/predict, save/load."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from router.core.data import Example
from router.core.verifier import (
    FEATURE_NAMES,
    AnswerCase,
    AnswerVerifier,
    VerifierError,
    answer_length,
    arithmetic_claims,
    arithmetic_errors,
    arithmetic_shown,
    empty_answer,
    equation_holds,
    final_answer_inconsistent,
    final_answer_missing,
    hedges,
    logprob_features,
    refusal,
    safe_eval,
    self_corrections,
    token_logprobs,
    truncated,
    verifier_cases,
)


def case(answer: str, prompt: str = "How many apples are left?", **kw) -> AnswerCase:
    return AnswerCase(prompt=prompt, answer=answer, **kw)


# ---- arithmetic -------------------------------------------------------------------------------


def test_safe_eval_reads_arithmetic_only():
    assert safe_eval("2+3*4") == 14
    assert safe_eval("80,000 + 50,000") == 130000
    assert safe_eval("$5 x 50") == 250
    assert safe_eval("(3 + 1) / 2") == 2
    assert safe_eval("25%") == 0.25
    assert safe_eval("1/0") is None
    assert safe_eval("__import__('os')") is None
    assert safe_eval("9**9**9") is None  # never computes a huge power
    assert safe_eval("a + b") is None


def test_equation_holds_with_rounding():
    assert equation_holds("16-3-4", "9") is True
    assert equation_holds("16-3-4", "10") is False
    assert equation_holds("10/3", "3.33") is True  # rounded to the digits it shows
    assert equation_holds("10/3", "3.5") is False
    assert equation_holds("x+1", "2") is None


def test_arithmetic_errors_in_annotations():
    right = case("She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs and makes 9 * 2 = $<<9*2=18>>18.")
    wrong = case("She sells <<16-3-4=8>>8 eggs and makes <<8*2=16>>16 dollars.\n#### 16")
    assert arithmetic_errors(right) == 0
    assert arithmetic_errors(wrong) == 1  # 16-3-4 is not 8; 8*2=16 holds
    assert len(arithmetic_claims(right.answer)) == 2  # annotations, not counted twice


def test_arithmetic_errors_in_plain_text():
    assert arithmetic_errors(case("In total 12 + 15 = 27 apples, and 27 x 2 = 54.")) == 0
    assert arithmetic_errors(case("So 12 + 15 = 28 apples.")) == 1
    assert arithmetic_errors(case("It takes 2 + 1/2 = 5/2 = 3 bolts.")) == 1
    # Dates, ranges and ratios are not equations.
    assert arithmetic_errors(case("Between 2019-2020 the ratio was 3:4.")) == 0
    assert arithmetic_errors(case("a" * 50)) == 0
    assert arithmetic_errors(case("1+1=3 2+2=5 3+3=7 4+4=9")) == 3  # capped


def test_arithmetic_shown():
    assert arithmetic_shown(case("The answer is 4.")) == 0
    assert arithmetic_shown(case("2 + 2 = 4")) == pytest.approx(math.log(2))


# ---- shape ------------------------------------------------------------------------------------


def test_empty_and_refusal():
    assert empty_answer(case("  \n")) == 1
    assert empty_answer(case("4")) == 0
    assert refusal(case("I'm sorry, but I can't help with that.")) == 1
    assert refusal(case("As an AI language model, I have no opinions.")) == 1
    assert refusal(case("I cannot answer that question.")) == 1
    assert refusal(case("You cannot divide by zero, so the answer is undefined.")) == 0


def test_truncated():
    assert truncated(case("The first step is", finish_reason="length")) == 1
    assert truncated(case("```python\ndef f():\n    return")) == 1
    assert truncated(case("```python\nx = 1\n```\nDone.")) == 0
    assert truncated(case("The first step is", finish_reason="stop")) == 0
    # A streaming buffer is a prefix on purpose: not judged truncated.
    assert truncated(case("```python\ndef f():", partial=True, finish_reason="length")) == 0


def test_length_hedges_and_self_corrections():
    assert answer_length(case("")) == 0
    assert answer_length(case("one two three")) == pytest.approx(math.log(4))
    assert hedges(case("The answer is 4.")) == 0
    assert hedges(case("However, I think it might be 4.")) == 10  # 3 in 6 words, capped
    long = "The total is 4 apples. " * 4 + "However, that is the count."
    assert hedges(case(long)) == pytest.approx(100 / 25)
    assert self_corrections(case("Wait, actually I made a mistake.")) == 3
    assert self_corrections(case("The total is 12.")) == 0


def test_final_answer_missing():
    numeric = "How many eggs does she sell?"
    assert final_answer_missing(case("She sells 9 eggs.", numeric)) == 0
    assert final_answer_missing(case("She sells some eggs.", numeric)) == 1
    marker = "Give the final answer after ####."
    assert final_answer_missing(case("so 9\n#### 9", marker)) == 0
    assert final_answer_missing(case("so nine eggs", marker)) == 1
    choice = "Which is a mammal?\nA) shark\nB) whale\nC) trout\nD) eel"
    assert final_answer_missing(case("The answer is B.", choice)) == 0
    assert final_answer_missing(case("Whales breathe air.", choice)) == 1
    assert final_answer_missing(case("Bonjour!", "Translate 'hello' into French")) == 0
    assert final_answer_missing(case("She sells", numeric, partial=True)) == 0


def test_final_answer_inconsistent():
    # Computes 2.5, then declares 3: gave up on its own work.
    gave_up = case("2 + 1/2 = 5/2 = <<5/2=2.5>>2.5 bolts.\nRound up.\n#### 3")
    assert final_answer_inconsistent(gave_up) == 1
    assert (
        final_answer_inconsistent(case("<<16-3-4=9>>9 eggs, <<9*2=18>>18 dollars.\n#### 18")) == 0
    )
    assert final_answer_inconsistent(case("The answer is 7.")) == 0  # no work to contradict


# ---- logprobs ---------------------------------------------------------------------------------


def test_token_logprobs_shapes():
    profiled = [
        {"token": "B", "logprob": -0.1, "top": {"B": -0.1, "A": -2.5}},
        {"token": ".", "logprob": -0.5},
    ]
    assert token_logprobs(profiled) == ([-0.1, -0.5], pytest.approx(2.4))
    openai = {
        "content": [
            {
                "token": "4",
                "logprob": -0.2,
                "top_logprobs": [{"token": "4", "logprob": -0.2}, {"token": "5", "logprob": -1.7}],
            }
        ]
    }
    assert token_logprobs(openai) == ([-0.2], pytest.approx(1.5))
    assert token_logprobs([-0.3, -0.4]) == ([-0.3, -0.4], None)
    assert token_logprobs(None) == ([], None)
    assert token_logprobs({"content": None}) == ([], None)


def test_logprob_features():
    absent = logprob_features(case("4"))
    assert absent == [0.0] * 5
    f = logprob_features(case("4", logprobs=[-0.1, -3.0, -0.2]))
    assert f[0] == 1.0
    assert f[1] == pytest.approx(-1.1)
    assert f[2] == pytest.approx(-3.0)
    assert f[4] == pytest.approx(1 / 3)


# ---- the estimator ----------------------------------------------------------------------------


def _synthetic(n: int = 80) -> tuple[list[AnswerCase], np.ndarray]:
    """Right answers compute correctly with confident tokens; wrong ones slip in arithmetic."""
    rng = np.random.default_rng(0)
    cases, y = [], []
    for i in range(n):
        a, b = int(rng.integers(2, 50)), int(rng.integers(2, 50))
        right = i % 2 == 0
        c = a + b if right else a + b + int(rng.integers(1, 5))
        lp = [-0.05, -0.1] if right else [-1.5, -2.5]
        cases.append(
            AnswerCase(
                f"Tom has {a} apples and buys {b}. How many now?", f"{a} + {b} = {c}. So {c}.", lp
            )
        )
        y.append(1.0 if right else 0.0)
    return cases, np.array(y)


def test_fit_predict_separates_right_from_wrong():
    cases, y = _synthetic()
    v = AnswerVerifier().fit(cases[:60], y[:60])
    p = v.predict_proba(cases[60:])
    assert p.shape == (20, 2)
    assert np.allclose(p.sum(axis=1), 1)
    right, wrong = p[y[60:] == 1, 1], p[y[60:] == 0, 1]
    assert right.min() > wrong.max()
    assert set(v.explain(cases[0])["checks"]) == set(FEATURE_NAMES)


def test_not_fitted_and_bad_input():
    with pytest.raises(VerifierError, match="not fitted"):
        AnswerVerifier().predict_proba([case("4")])
    with pytest.raises(VerifierError, match="at least 10"):
        AnswerVerifier().fit([case("4")] * 3, [1, 0, 1])
    with pytest.raises(VerifierError, match="same score"):
        AnswerVerifier().fit([case("4")] * 12, [1.0] * 12)


def test_save_load_round_trip_without_pickle(tmp_path):
    cases, y = _synthetic()
    v = AnswerVerifier().fit(cases, y)
    v.save(tmp_path / "v")
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["verifier.json", "weights.npz"]
    w = AnswerVerifier.load(tmp_path / "v")
    assert np.allclose(v.predict_proba(cases), w.predict_proba(cases))
    meta = json.loads((tmp_path / "v" / "verifier.json").read_text())
    meta["features"] = meta["features"][:-1]
    (tmp_path / "v" / "verifier.json").write_text(json.dumps(meta))
    with pytest.raises(VerifierError, match="retrain"):
        AnswerVerifier.load(tmp_path / "v")
    with pytest.raises(VerifierError, match="not a verifier directory"):
        AnswerVerifier.load(tmp_path)


def test_shipped_verifier_loads_and_judges():
    from router.core.verifier import load_verifier

    v = load_verifier("default")
    good = AnswerCase(
        "Janet has 16 eggs, eats 3 and bakes with 4. She sells the rest at $2. How much does she make?",
        "She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 18",
    )
    bad = AnswerCase(good.prompt, good.answer.replace("=9>>9", "=8>>8").replace("9 * 2", "8 * 3"))
    assert 0 < v.probability(bad) < v.probability(good) < 1


def test_verifier_cases_from_rows():
    row = Example(
        prompt="What is 2 + 2?",
        scores={"small": 0.0, "big": 1.0},
        cheap_models=["small"],
        extra={
            "answers": {"small": "2 + 2 = 5", "big": "4"},
            "logprobs": {"small": [-0.3]},
            "usage": {"small": {"finish_reason": "stop"}},
        },
    )
    no_answers = Example(prompt="Hi", scores={"small": 1.0, "big": 1.0}, cheap_models=["small"])
    cases, y, groups, who, sources = verifier_cases([row, no_answers])
    assert [c.answer for c in cases] == ["2 + 2 = 5"] and list(y) == [0.0] and who == ["small"]
    assert cases[0].logprobs == [-0.3] and cases[0].finish_reason == "stop"
    cases, y, _, who, _ = verifier_cases([row], "all")
    assert sorted(who) == ["big", "small"]


def test_routellm_gsm8k_rows_carry_answers_and_reference():
    from pathlib import Path

    from router.core.data import read_jsonl

    path = Path(__file__).resolve().parent.parent / "data" / "routing" / "routellm.jsonl"
    rows = [ex for ex in read_jsonl(path) if ex.source == "gsm8k"]
    assert len(rows) > 1000
    for ex in rows[:50]:
        assert set(ex.extra["answers"]) == set(ex.scores)
        assert ex.extra["metric"] == "GSM8K" and "####" in ex.extra["ground_truth"]
