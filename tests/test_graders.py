"""Graders on hand-made answers, including the adversarial ones a lenient parser would reward."""

from __future__ import annotations

import dis
import types

import pytest

from router.evaluation.code_harness import HARNESS, builtin_shadows, rewrite_tests
from router.evaluation.graders import (
    GRADERS,
    GradingError,
    Reference,
    code_program,
    commongen_coverage,
    em_mc,
    exact_match,
    extract_choice,
    f1_score,
    final_number,
    grade,
    gsm8k,
    judge_pairwise,
    judge_reference,
    last_boxed,
    math_equiv,
    normalize_math,
    parse_rating,
)

CAPITALS = {"label": ["A", "B", "C", "D"], "text": ["Paris", "London", "Rome", "Berlin"]}


def mc(answer: str, truth: str = "B", choices=CAPITALS) -> float:
    return em_mc(answer, Reference(truth, choices))


# ---- em_mc ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "B",
        "b",
        " (B) ",
        "B.",
        "[B]",
        "The answer is (B)",
        "The answer is B.",
        "Answer: b",
        "the correct option is B",
        "B. London",
        "(B) because it is the capital",
        "London",
        "It is London.",
        "It is not A, it is B",
    ],
)
def test_em_mc_accepts_a_clear_right_answer(answer):
    assert mc(answer) == 1.0


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "   ",
        "A",
        "A, B, C, D",  # listing every letter commits to none
        "A B C D",
        "ABCD",
        "not B",  # naming an option to reject it
        "The answer is not B",
        "It's either B or C",
        "B or C",
        "The answer is B. Actually the answer is C.",
        "Paris or London",  # two options' texts
        "A bus",  # the article A, not the option A
        "I don't know",
        "E",  # not an option here
    ],
)
def test_em_mc_rejects_non_answers_and_wrong_ones(answer):
    assert mc(answer) == 0.0


def test_em_mc_uses_the_rows_own_labels():
    houses = {"label": ["A", "B", "C"], "text": ["1", "2", "3"]}
    assert mc("C", "C", houses) == 1.0
    assert mc("D", "D", houses) == 0.0  # D is no option of this row
    assert extract_choice("The answer is (E)", list("ABCDE")) == "E"


def test_em_mc_picks_the_longest_matching_option_text():
    ch = {"label": ["A", "B"], "text": ["New York", "New York City"]}
    assert mc("It is New York City", "B", ch) == 1.0


# ---- exact match and token F1 ---------------------------------------------------------------


def test_exact_match_normalises_case_punctuation_and_articles():
    ref = Reference("Bayreuth")
    assert exact_match("The Bayreuth.", ref) == 1.0
    assert exact_match("bayreuth\nbecause of the festival", ref) == 1.0  # first line only
    assert exact_match("Munich", ref) == 0.0
    assert exact_match("", ref) == 0.0
    assert exact_match("", Reference("")) == 0.0  # an empty reference matches nothing


def test_f1_is_squad_token_overlap_against_the_best_reference():
    assert f1_score("Bayreuth", Reference("bayreuth germany")) == pytest.approx(2 / 3)
    assert f1_score("Sammy Davis Jr.", Reference("Sammy Davis, Jr")) == 1.0
    assert f1_score("the", Reference("the")) == 0.0  # only articles: nothing left to match
    assert f1_score("", Reference("x")) == 0.0
    assert f1_score("paris", Reference(["London", "Paris, France"])) == pytest.approx(2 / 3)
    assert f1_score("paris paris paris paris", Reference("paris")) == pytest.approx(0.4)


# ---- GSM8K ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer,truth",
    [
        ("She makes 9 * 2 = $18 every day.\n#### 18", "#### 18"),
        ("so the answer is $1,000.", "... #### 1000"),
        ("#### 20,000", "#### 20,000"),
        ("It costs 18 dollars.", "#### 18"),
        ("The answer is 3.50", "#### 3.5"),
        ("-7 degrees", "#### -7"),
        ("\\boxed{42}", "#### 42"),
    ],
)
def test_gsm8k_final_number_matches(answer, truth):
    assert gsm8k(answer, Reference(truth)) == 1.0


@pytest.mark.parametrize(
    "answer,truth",
    [
        ("", "#### 18"),
        ("no idea", "#### 18"),
        ("18 ... so the total is 19", "#### 18"),  # the last number counts
        ("#### 17\nbut maybe 18", "#### 18"),  # the '####' line counts
        ("9" * 5000, "#### 18"),  # a huge number is no answer (and no slow parse)
        ("1" + "0" * 80, "#### 1" + "0" * 80),  # beyond the plausible length
        ("#### ", "#### 18"),
        ("18", "no reference number"),
    ],
)
def test_gsm8k_rejects(answer, truth):
    assert gsm8k(answer, Reference(truth)) == 0.0


def test_final_number_is_exact_not_float():
    assert final_number("#### 0.1") + final_number("#### 0.2") == final_number("#### 0.3")
    assert final_number("#### 12345678901234567890") == 12345678901234567890


# ---- MATH -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer,truth",
    [
        ("so \\boxed{\\dfrac{1}{2}}", "$\\boxed{\\frac12}$"),
        ("\\boxed{0.5}", "\\boxed{\\frac{1}{2}}"),
        ("\\boxed{5.0}", "5"),  # agentverse-mgsm gives the bare answer
        ("\\boxed{ 494550 }", "the sum is $\\boxed{494550}$."),
        ("\\boxed{y = -2x + 1}", "$\\boxed{y=-2x+1}.$"),
        ("\\boxed{10^\\circ}", "\\boxed{10}"),
        ("\\boxed{\\$18}", "\\boxed{18}"),
        ("\\boxed{\\left( 1, 2 \\right)}", "\\boxed{(1,2)}"),
        ("\\boxed{\\text{5 cm}}", "\\boxed{5}"),
        ("\\boxed{3/4}", "\\boxed{\\frac{3}{4}}"),
        ("\\boxed{1,000}", "\\boxed{1000}"),
        ("first \\boxed{2}, finally \\boxed{\\sqrt{3}}", "\\boxed{\\sqrt3}"),
        ("The answer is 7.", "7"),
    ],
)
def test_math_equivalent_answers(answer, truth):
    assert math_equiv(answer, Reference(truth)) == 1.0


@pytest.mark.parametrize(
    "answer,truth",
    [
        ("", "\\boxed{1}"),
        ("\\boxed{\\frac{1}{2}", "\\boxed{\\frac{1}{2}}"),  # unbalanced: no answer
        ("\\boxed{}", "\\boxed{1}"),
        ("\\boxed{2}", "\\boxed{\\frac{1}{2}}"),
        ("\\boxed{\\frac{1}{3}}", "\\boxed{\\frac{1}{2}}"),
        ("\\boxed{\\boxed{1}2}", "\\boxed{1}"),  # nested boxes: the outer content is '\boxed{1}2'
        ("7 apples", "\\boxed{7}"),  # no box, no 'answer is'
        ("\\boxed{1}\\boxed{2}", "\\boxed{1}"),  # the last box counts
    ],
)
def test_math_rejects(answer, truth):
    assert math_equiv(answer, Reference(truth)) == 0.0


def test_last_boxed_balances_braces():
    assert last_boxed("\\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    assert last_boxed("\\boxed{x") is None
    assert last_boxed("\\fbox{3}") == "3"
    assert last_boxed("nothing") is None
    assert normalize_math("\\dfrac{1}{2}") == normalize_math("\\frac12") == "\\frac{1}{2}"


# ---- CommonGen ------------------------------------------------------------------------------


def test_commongen_counts_concepts_in_any_simple_inflection():
    ref = Reference("drive, lake, customer, dish")
    assert commongen_coverage("The customer was driving to the lake.", ref) == 0.75
    assert commongen_coverage("Dishes, lakes, customers and drives.", ref) == 1.0
    assert commongen_coverage("", ref) == 0.0
    assert commongen_coverage("dis lak", ref) == 0.0  # fragments are not the words
    with pytest.raises(GradingError):
        commongen_coverage("x", Reference(""))


# ---- code -----------------------------------------------------------------------------------

MBPP_TESTS = "['assert add(1, 2) == 3', 'assert add(0, 0) == 0']"
HE_PROMPT = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum."""\n'
HE_CHECK = (
    "\n\ndef check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n"
)


def test_code_program_for_mbpp_appends_every_assert():
    prog = code_program("```python\ndef add(a, b):\n    return a + b\n```", Reference(MBPP_TESTS))
    assert repr("def add(a, b):\n    return a + b\n") in prog and "```" not in prog
    assert "assert __router_cmp__('==', add(0, 0), 0)" in prog  # every assert, rewritten


def test_code_program_for_humaneval_keeps_the_prompt_when_only_the_body_is_given():
    body = "    return sum(xs)\n"
    prog = code_program(body, Reference(HE_CHECK, prompt=HE_PROMPT))
    assert repr(HE_PROMPT + body) in prog and "check(total)" in prog
    whole = "```python\ndef total(xs):\n    return sum(xs)\n```"
    prog = code_program(whole, Reference(HE_CHECK, prompt=HE_PROMPT))
    assert "from typing import List" in prog and prog.count("def total") == 1


def test_asserts_are_rewritten_to_compare_plain_data_only():
    tests = (
        "def check(candidate):\n"
        "    assert candidate(1) == [1, 2]\n"
        "    assert abs(candidate(1.33) - 0.33) < 1e-06, 'close'\n"
        "    assert not candidate('x')\n"
        "    assert candidate(3) is True\n"
        "    assert 0 < candidate(2) <= 5\n"
        "    assert candidate(1) and math.isclose(candidate(2), 0.5)\n"
        "    if candidate(0) == 1:\n"  # outside an assert: left alone
        "        pass\n"
    )
    out = rewrite_tests(tests)
    assert "assert __router_cmp__('==', candidate(1), [1, 2])" in out
    assert "abs(__router_operand__(candidate(1.33)) - 0.33), 1e-06), 'close'" in out
    assert "assert not __router_truth__(candidate('x'))" in out
    assert "assert candidate(3) is True" in out
    assert "__router_chain__(('<', '<='), 0, lambda: candidate(2), lambda: 5)" in out
    assert "__router_truth__(candidate(1)) and __router_truth__(math.isclose(" in out
    assert "if candidate(0) == 1:" in out
    assert rewrite_tests("assert (") == "assert ("  # does not parse: fails in the sandbox


def test_only_the_function_under_test_may_shadow_a_builtin():
    assert builtin_shadows("assert sum(10, 15) == 6") == ("sum",)  # MBPP 126
    assert builtin_shadows("assert sorted(f([3, 1])) == [1, 3]") == ()
    assert builtin_shadows("def check(candidate):\n    assert candidate(1) == 1\n", "max") == (
        "max",
    )
    assert builtin_shadows("def check(candidate):\n    pass\n", "total") == ()


def test_the_harness_helpers_read_no_global_name():
    """After the answer ran, the harness uses only its local variables and the defaults bound
    before: a global or builtin the answer rebinds cannot reach it."""
    code = compile(HARNESS, "harness", "exec")
    functions = [
        c for c in code.co_consts if isinstance(c, types.CodeType) and c.co_name[:9] == "__router_"
    ]
    nested = [c for f in functions for c in f.co_consts if isinstance(c, types.CodeType)]
    assert not nested  # no lambda, comprehension or inner function (each would need a cell)
    assert {f.co_name for f in functions} >= {
        "__router_plain__", "__router_cmp__", "__router_chain__", "__router_truth__",
        "__router_run__",
    }  # fmt: skip
    for f in functions:
        loads = [
            i.argval for i in dis.get_instructions(f) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")
        ]
        assert not loads, (f.co_name, loads)
        assert not f.co_freevars and not f.co_cellvars, f.co_name  # no closure cell to rewrite


def test_code_eval_needs_permission_and_runs_in_the_sandbox():
    row = {"metric": "code_eval", "ground_truth": MBPP_TESTS}
    good = "def add(a, b):\n    return a + b\n"
    with pytest.raises(GradingError, match="--allow-code-exec"):
        grade(row, good)
    assert grade(row, good, allow_code_exec=True) == 1.0
    assert grade(row, "def add(a, b):\n    return a - b\n", allow_code_exec=True) == 0.0
    assert grade(row, "", allow_code_exec=True) == 0.0
    # Exiting with status 0 before the asserts run is no pass.
    cheat = "import os, sys\nsys.stdout.flush()\nos._exit(0)\n"
    assert grade(row, cheat, allow_code_exec=True) == 0.0
    assert grade(row, "import sys\nsys.exit(0)\n", allow_code_exec=True) == 0.0
    he = {"metric": "code_eval", "ground_truth": HE_CHECK}
    assert grade(he, "    return sum(xs)\n", prompt=HE_PROMPT, allow_code_exec=True) == 1.0
    assert grade(he, "    return 0\n", prompt=HE_PROMPT, allow_code_exec=True) == 0.0


# ---- registry and dispatch ------------------------------------------------------------------


def test_registry_names_every_dcrouter_metric():
    assert {"em_mc", "f1_score", "GSM8K", "MATH", "code_eval", "commongen_coverage"} <= set(GRADERS)


def test_grade_dispatches_by_metric_and_checks_the_row():
    assert grade({"metric": "em_mc", "ground_truth": "B", "choices": CAPITALS}, "B") == 1.0
    assert grade({"metric": "GSM8K", "ground_truth": "#### 4"}, "2+2=4") == 1.0
    with pytest.raises(GradingError, match="unknown metric"):
        grade({"metric": "bleu", "ground_truth": "x"}, "x")
    with pytest.raises(GradingError, match="no 'metric'"):
        grade({"ground_truth": "x"}, "x")
    with pytest.raises(GradingError, match="no 'ground_truth'"):
        grade({"metric": "em_mc"}, "x")
    assert grade({"metric": "em_mc", "ground_truth": "B"}, None) == 0.0  # no answer at all


# ---- LLM judge ------------------------------------------------------------------------------


def test_parse_rating_wants_one_rating_in_range():
    assert parse_rating("fine. Rating: [[10]]") == 1.0
    assert parse_rating("Rating: [[1]]") == 0.0
    assert parse_rating("Rating: [[7]]") == pytest.approx(6 / 9)
    assert parse_rating("no rating") is None
    assert parse_rating("[[3]] or [[9]]") is None
    assert parse_rating("Rating: [[11]]") is None


def test_judge_reference_prompts_with_the_reference_and_counts_cost():
    seen = []

    def call(messages):
        seen.append(messages[0]["content"])
        return "Correct. Rating: [[10]]", 0.002

    j = judge_reference("What is 2+2?", "4", "The answer is 4.", call)
    assert j.score == 1.0 and j.cost == 0.002
    assert (
        "[Reference answer]\nThe answer is 4." in seen[0] and "[Assistant's answer]\n4" in seen[0]
    )


def test_judge_pairwise_asks_both_orders_against_position_bias():
    def always_a(messages):
        return "[[A]]", 0.001

    j = judge_pairwise("q", "small", "large", always_a)  # a judge that always picks A
    assert j.score == 0.5 and j.cost == pytest.approx(0.002) and len(j.replies) == 2

    def prefers_small(messages):
        text = messages[0]["content"]
        return ("[[A]]" if text.index("small") < text.index("large") else "[[B]]"), 0.0

    assert judge_pairwise("q", "small", "large", prefers_small).score == 1.0

    def useless(messages):
        return "I cannot decide", 0.001

    j = judge_pairwise("q", "small", "large", useless)
    assert j.score is None and j.cost == pytest.approx(0.002)


# ---- issue 20: stricter than they were ------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "The answer is 18 or 19",  # two candidates: no answer
        "The answer is 18 or 19.",
        "18 or 19",
        "#### 18 or 19",
        "It is either 18 or 19.",
        "The answer is 18 (or maybe 19)",
        "The answer is between 18 and 20",
        "So she makes 18, or maybe 19",
    ],
)
def test_gsm8k_an_answer_naming_two_candidates_is_wrong(answer):
    assert gsm8k(answer, Reference("#### 18")) == 0.0
    assert gsm8k(answer, Reference("#### 19")) == 0.0


@pytest.mark.parametrize(
    "answer",
    ["The answer is 9 * 2 = 18.", "The answer is 18. Because 9 * 2 = 18, not 19.", "#### 18\n"],
)
def test_gsm8k_one_stated_number_among_working_still_counts(answer):
    assert gsm8k(answer, Reference("#### 18")) == 1.0


def test_the_article_a_is_not_option_a():
    answer = "The answer is a city in England: London"
    assert mc(answer, "A") == 0.0
    assert mc(answer, "B") == 1.0  # it names London, option B
    labels_only = {"label": ["A", "B", "C"], "text": ["", "", ""]}
    assert extract_choice("The answer is a city in England", ["A", "B", "C"], None) is None
    assert mc("The answer is a city in England", "A", labels_only) == 0.0
    assert mc("The answer is a.", "A") == 1.0  # a bare lower-case label still is one
    assert mc("The answer is (a)", "A") == 1.0


@pytest.mark.parametrize(
    "cheat",
    [
        # The case: read the pass token from its own source, print it, exit 0.
        "import os, re, sys\ndef add(a, b):\n    return 0\n"
        "for name in os.listdir('.'):\n"
        "    for tok in re.findall(r'router-tests-passed-[0-9a-f]+', open(name).read()):\n"
        "        print(tok, flush=True)\nos._exit(0)\n",
        # Print anything that looks like a token and leave before the asserts.
        "import os\ndef add(a, b):\n    return 0\nprint('router-tests-passed-0', flush=True)\n"
        "os._exit(0)\n",
        # Write 32 hex characters to every descriptor (a verdict pipe among them).
        "import os\ndef add(a, b):\n    return 0\nfor fd in range(64):\n    try:\n"
        "        os.write(fd, b'0123456789abcdef0123456789abcdef')\n    except OSError:\n"
        "        pass\nos._exit(0)\n",
        # Leave through SystemExit(0), from the function the asserts call.
        "def add(a, b):\n    raise SystemExit(0)\n",
        # A forked child that finishes the program while the parent exits 0.
        "import os\ndef add(a, b):\n    if os.fork() == 0:\n        return 3\n    os.wait()\n"
        "    os._exit(0)\n",
    ],
)
def test_code_eval_pass_signal_cannot_be_forged(cheat):
    row = {"metric": "code_eval", "ground_truth": MBPP_TESTS}
    assert grade(row, cheat, allow_code_exec=True) == 0.0


# ---- realistic chat answers the graders misread ---------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "A. Paris\nB. London\nC. Rome\nD. Berlin",  # the options restated, none chosen
        "A) Paris\nB) London\nC) Rome",
        "(A) Paris (B) London (C) Rome (D) Berlin",
    ],
)
def test_em_mc_a_restated_option_list_does_not_choose_its_first_option(answer):
    assert mc(answer, "A") == 0.0


@pytest.mark.parametrize(
    "answer",
    [
        "The answer is B. Option A is wrong because Paris is in France.",
        "The correct answer is (B) London. Option A, Paris, is the capital of France.",
        "It is not Paris, it is London.",
        "London, not Paris.",
        "B. London\nIt is the capital of the United Kingdom.",
    ],
)
def test_em_mc_an_option_named_to_reject_it_does_not_cancel_the_answer(answer):
    assert mc(answer, "B") == 1.0
    assert mc(answer, "A") == 0.0


def test_em_mc_an_option_named_only_as_a_choice_is_not_stated():
    assert mc("I think it's C; option B is tempting but wrong", "B") == 0.0


@pytest.mark.parametrize("answer", ["−3", "The temperature is −3 degrees.", "#### −3"])
def test_gsm8k_unicode_minus_is_a_minus(answer):
    assert gsm8k(answer, Reference("#### -3")) == 1.0
    assert gsm8k(answer, Reference("#### 3")) == 0.0


@pytest.mark.parametrize(
    "answer,truth,score",
    [
        ("The answer is 3.5.", "\\boxed{3.5}", 1.0),
        ("The answer is 3.5.", "\\boxed{3}", 0.0),  # not cut at the decimal point
        ("The answer is 0.25.", "\\boxed{\\frac14}", 1.0),
        ("The answer is 12.5%.", "12.5", 1.0),
        ("The answer is \\$18.", "18", 1.0),
        ("The answer is **7**.", "7", 1.0),
        ("Final Answer: 7", "7", 1.0),
        ("**Answer:** 7", "\\boxed{7}", 1.0),
        ("Answer: 7", "\\boxed{8}", 0.0),
        ("\\boxed{−3}", "\\boxed{-3}", 1.0),
        ("The answer is −3.", "-3", 1.0),
        ("\\boxed{1{,}000}", "\\boxed{1000}", 1.0),
    ],
)
def test_math_unboxed_statements_decimals_and_unicode(answer, truth, score):
    assert math_equiv(answer, Reference(truth)) == score


def test_f1_strips_unicode_punctuation_too():
    assert f1_score("“Paris”", Reference("Paris")) == 1.0
    assert f1_score("‘Paris’.", Reference("Paris")) == 1.0
    assert f1_score("1939–1945", Reference("1939-1945")) == 1.0
    assert exact_match("«Paris»", Reference("Paris")) == 1.0


@pytest.mark.parametrize(
    "answer,concept",
    [
        ("She used a knife.", "use"),
        ("He applies glue.", "apply"),
        ("The strings snapped.", "string"),
        ("Tall buildings.", "building"),
        ("The cars were speeding.", "speed"),
        ("He tied a knot.", "tie"),
        ("She fried an egg.", "fry"),
        ("The knives are sharp.", "knife"),
        ("Leaves fall.", "leaf"),
        ("He stopped.", "stop"),
        ("She was dyeing her hair.", "dye"),
    ],
)
def test_commongen_counts_regular_inflections(answer, concept):
    assert commongen_coverage(answer, Reference(concept)) == 1.0


@pytest.mark.parametrize(
    "answer,concept",
    [
        ("We care.", "car"),
        ("He cared.", "car"),
        ("She hated it.", "hat"),
        ("A cute dog.", "cut"),
        ("Hoping for rain.", "hop"),
        ("The dying plant.", "dye"),
        ("A seed grows.", "see"),
        ("A note.", "not"),
    ],
)
def test_commongen_a_different_word_is_no_inflection(answer, concept):
    assert commongen_coverage(answer, Reference(concept)) == 0.0
