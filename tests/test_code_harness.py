"""The code_eval harness in the sandbox, in both modes: the tests see the answer's values, not
its objects, and the builtins as they were before it ran (router/evaluation/code_harness.py).

Each cheat below is a wrong answer that passed before the harness existed; each right answer
is in a shape the datasets test (MBPP asserts, HumanEval's `check(candidate)`).
"""

from __future__ import annotations

import pytest

from router.evaluation.graders import Reference, code_program
from router.evaluation.sandbox import run_python

# The fixtures of both modes, used as test arguments (which ruff reads as redefinitions).
from tests.test_sandbox import mode, weak_mode  # noqa: F401

# ruff: noqa: F811

YES = (
    "class Yes:\n    def __eq__(self, other):\n        return True\n"
    "    def __ne__(self, other):\n        return False\n"
    "    def __lt__(self, other):\n        return True\n"
    "    def __bool__(self):\n        return True\n"
    "    def __sub__(self, other):\n        return 0.0\n"
    "    __hash__ = object.__hash__\n"
)
HE_PROMPT = "def total(xs):\n    '''The sum of xs.'''\n"
HE_CHECK = (
    "\n\ndef check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n"
)

# (answer, the row's ground truth, HumanEval prompt): each answer is wrong and passed before.
CHEATS = {
    "__eq__ always true": (YES + "def f(x):\n    return Yes()\n", "['assert f(1) == [1, 2]']", ""),
    "__ne__ always false": (YES + "def f(x):\n    return Yes()\n", "['assert not f(1) != 2']", ""),
    "a list subclass equal to all": (
        "class L(list):\n    def __eq__(self, other):\n        return True\n"
        "def f(x):\n    return L()\n",
        "['assert f(1) == [1, 2]']",
        "",
    ),
    "__bool__ for a truth test": (
        YES + "def f(x):\n    return Yes()\n",
        "['assert f(\"()\")']",
        "",
    ),
    "__sub__ under a tolerance": (
        YES + "def f(x):\n    return Yes()\n",
        "['assert abs(f(1.33) - 0.33) < 1e-06']",
        "",
    ),
    "HumanEval check": (YES + "def total(xs):\n    return Yes()\n", HE_CHECK, HE_PROMPT),
    "builtins.sorted": (
        "import builtins\nbuiltins.sorted = lambda *a, **k: [1, 2, 3]\ndef f(x):\n    return x\n",
        "['assert sorted(f([3, 1])) == [1, 2, 3]']",
        "",
    ),
    "builtins.abs": (
        "import builtins\nbuiltins.abs = lambda x: 0\ndef f(x):\n    return 5.0\n",
        "['assert abs(f(2) - 2.0) < 1e-06']",
        "",
    ),
    "builtins.len": (
        "import builtins\nbuiltins.len = lambda x: 3\ndef f(x):\n    return []\n",
        "['assert len(f(3)) == 3']",
        "",
    ),
    "builtins.isinstance": (
        "import builtins\nbuiltins.isinstance = lambda *a: True\ndef f(x):\n    return 'x'\n",
        "['assert isinstance(f(1), int)']",
        "",
    ),
    "builtins.type": (
        "import builtins\nbuiltins.type = lambda *a: int\ndef f(x):\n    return 'x'\n",
        "['assert type(f(1)) is int']",
        "",
    ),
    "a global shadowing a builtin": (
        "def sorted(*a, **k):\n    return [1, 2, 3]\ndef f(x):\n    return x\n",
        "['assert sorted(f([3, 1])) == [1, 2, 3]']",
        "",
    ),
}


def _graded(mode: dict, answer: str, truth: str, prompt: str = ""):
    return run_python(code_program(answer, Reference(truth, prompt=prompt)), **mode)


@pytest.mark.parametrize("case", list(CHEATS))
def test_the_answer_cannot_make_the_tests_say_yes(mode, case):
    r = _graded(mode, *CHEATS[case])
    assert not r.passed, (case, r)
    # The assert failed (the traceback's own text may be garbled by the rebound builtins).
    assert "AssertionError" in r.stderr or case.startswith("builtins."), (case, r.stderr[-500:])
    assert "<tests>" in r.stderr, (case, r.stderr[-500:])


# (answer, ground truth, prompt): right answers, in the shapes the datasets test them.
RIGHT = {
    "MBPP": ("def add(a, b):\n    return a + b\n", "['assert add(1, 2) == 3']", ""),
    "a Counter against a dict (MBPP 88)": (
        "import collections\ndef freq_count(xs):\n    return collections.Counter(xs)\n",
        "['assert freq_count([10,10,20,40,40])==({10: 2, 20: 1, 40: 2}) ']",
        "",
    ),
    "a namedtuple against a tuple": (
        "from collections import namedtuple\nP = namedtuple('P', 'a b')\n"
        "def f(x):\n    return P(x, [x + 1, {'k': (None, 2.5, 1j, b'x')}])\n",
        "[\"assert f(1) == (1, [2, {'k': (None, 2.5, 1j, b'x')}])\", 'assert f(1) != (1, 2)']",
        "",
    ),
    "a map, a set, a tolerance": (
        "import math\ndef f(xs):\n    return map(lambda x: x / 2, xs)\n",
        "['assert list(f([1, 2])) == [0.5, 1.0]', 'assert set(f([2, 2])) == {1.0}', "
        "'assert math.isclose(next(f([1])), 0.5)', 'assert abs(sum(f([1, 3])) - 2.0) < 1e-6', "
        "'assert 0 < next(f([1])) <= 1', 'assert type(next(f([2]))) == float']",
        "",
    ),
    "a function named after a builtin (MBPP 126)": (
        "def sum(a, b):\n    return 6 if (a, b) == (10, 15) else 0\n",
        "['assert sum(10,15) == 6']",
        "",
    ),
    "a module the tests use (MBPP 596)": (
        "import sys\ndef tuple_size(t):\n    return sys.getsizeof(t)\n",
        '[\'assert tuple_size(("A", 1)) == sys.getsizeof(("A", 1))\']',
        "",
    ),
    "HumanEval, the body only": ("    return sum(xs)\n", HE_CHECK, HE_PROMPT),
    "HumanEval, is / not / truth": (
        "def total(xs):\n    return sum(xs) > 2\n",
        "def check(candidate):\n    assert candidate([1, 2]) is True\n"
        "    assert not candidate([1])\n    assert candidate([5]) and candidate([3, 0])\n",
        HE_PROMPT,
    ),
    # Rebinding what the harness uses after the answer ran changes nothing for the tests.
    "an answer rebinding builtins and the harness's globals": (
        "import builtins, sys\n"
        "g = sys._getframe(1).f_globals\n"
        "for name in [n for n in g if n.startswith('__router')]:\n    g[name] = None\n"
        "for name in ('dict', 'type', 'list', 'exec', 'compile', 'frozenset', 'str', 'len',\n"
        "             'range', 'tuple', 'bool', 'AssertionError', 'TypeError'):\n"
        "    setattr(builtins, name, None)\n"
        "def f(x):\n    return [x, x]\n",
        "['assert f(1) == [1, 1]', 'assert len(f(2)) == 2', 'assert f(1) != [1]']",
        "",
    ),
}


@pytest.mark.parametrize("case", list(RIGHT))
def test_right_answers_still_pass(mode, case):
    r = _graded(mode, *RIGHT[case])
    assert r.passed, (case, r.stderr[-800:])


def test_a_wrong_answer_still_fails_when_it_rebinds_the_harness(mode):
    answer = RIGHT["an answer rebinding builtins and the harness's globals"][0]
    r = _graded(mode, answer.replace("return [x, x]", "return [x]"), "['assert f(1) == [1, 1]']")
    assert not r.passed and "AssertionError" in r.stderr, r
