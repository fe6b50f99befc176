"""The modules the code_eval tests use hold no state the answer could have touched, in both
sandbox modes: the answer runs in a process of its own (router/evaluation/harness_remote.py),
and the tests' `random` is reseeded after the fork.

HumanEval 32, 38, 50 and 53 draw their inputs from `random`, and 32 hands the answer a
`copy.deepcopy` of them. Each cheat below steers those inputs (or the copy) to cases it
hard-codes, and passed while the answer ran first in the tests' process, sharing their modules.
The right answers check that the tests' `random` draws CPython's own sequences.
"""

from __future__ import annotations

import random

import pytest

from router.evaluation.graders import Reference, code_program
from router.evaluation.sandbox import run_python

# The fixtures of both modes, used as test arguments (which ruff reads as redefinitions).
from tests.test_sandbox import mode, weak_mode  # noqa: F401

# ruff: noqa: F811

# HumanEval 53's shape: the module's generator.
ADD_PROMPT = "def add(x, y):\n    '''x + y'''\n"
ADD_CHECK = (
    "\n\ndef check(candidate):\n    import random\n    for _ in range(40):\n"
    "        x, y = random.randint(0, 1000), random.randint(0, 1000)\n"
    "        assert candidate(x, y) == x + y\n"
)
# HumanEval 32's: a generator of the check's own, seeded.
ADD_SEEDED_CHECK = (
    "\n\ndef check(candidate):\n    import random\n    rng = random.Random(42)\n"
    "    for _ in range(40):\n        x, y = rng.randint(0, 1000), rng.randint(0, 1000)\n"
    "        assert candidate(x, y) == x + y\n"
)
# HumanEval 38's and 50's: letters drawn with `choice`.
SHOUT_PROMPT = "def shout(s):\n    '''s in capitals.'''\n"
SHOUT_CHECK = (
    "\n\ndef check(candidate):\n    from random import randint, choice\n    import string\n"
    "    letters = string.ascii_lowercase\n    for _ in range(40):\n"
    "        s = ''.join(choice(letters) for i in range(randint(10, 20)))\n"
    "        assert candidate(s) == s.upper()\n"
)
# HumanEval 32's: the answer gets a deep copy of the inputs the check keeps.
TOTAL_PROMPT = "def total(xs):\n    '''The sum of xs.'''\n"
TOTAL_CHECK = (
    "\n\ndef check(candidate):\n    import copy\n    for xs in ([1, 2, 3], [4, 5], [7]):\n"
    "        assert candidate(copy.deepcopy(xs)) == sum(xs)\n"
)
# The answer's cheat for `copy`: it gets the check's own list, empties it and returns 0.
EMPTIES = "def total(xs):\n    xs[:] = []\n    return 0\n"
ONLY_ZERO = "def add(x, y):\n    return 0\n"  # right only when every input is 0

# (answer, check, prompt): each answer is wrong and passed while the answer could reach the
# tests' module state.
CHEATS = {
    "random.seed at import, the inputs predicted": (
        "import random\nrandom.seed(7)\nSEEN = {random.randint(0, 1000) for _ in range(80)}\n"
        "random.seed(7)\ndef add(x, y):\n    return x + y if x in SEEN and y in SEEN else -1\n",
        ADD_CHECK,
        ADD_PROMPT,
    ),
    "the generator reseeded at each call": (
        "import random\nrandom.seed(1)\nNEXT = (random.randint(0, 1000), random.randint(0, 1000))\n"
        "random.seed(1)\ndef add(x, y):\n    random.seed(1)\n"
        "    return x + y if (x, y) == NEXT else -1\n",
        ADD_CHECK,
        ADD_PROMPT,
    ),
    "random._inst reseeded": (
        "import random\nrandom._inst.seed(1)\n"
        "NEXT = (random._inst.randint(0, 1000), random._inst.randint(0, 1000))\n"
        "def add(x, y):\n    random._inst.seed(1)\n    return x + y if (x, y) == NEXT else -1\n",
        ADD_CHECK.replace("for _ in range(40)", "random._inst.seed(1)\n    for _ in range(40)"),
        ADD_PROMPT,
    ),
    "random.Random.randint replaced": (
        "import random\nrandom.Random.randint = lambda self, a, b: a\n" + ONLY_ZERO,
        ADD_SEEDED_CHECK,
        ADD_PROMPT,
    ),
    "random.Random.random replaced": (
        "import random\nrandom.Random.random = lambda self: 0.0\n"
        "random.Random.getrandbits = lambda self, k: 0\n" + ONLY_ZERO,
        ADD_SEEDED_CHECK,
        ADD_PROMPT,
    ),
    "the C generator's method replaced (_random.Random.getrandbits)": (
        "import _random\n_random.Random.getrandbits = lambda self, k: 0\n" + ONLY_ZERO,
        ADD_CHECK,
        ADD_PROMPT,
    ),
    "every Random class, found through object.__subclasses__(), changed": (
        "def walk(cls, seen):\n    for sub in type.__subclasses__(cls):\n"
        "        if sub not in seen:\n            seen.add(sub)\n            walk(sub, seen)\n"
        "CLASSES = set()\nwalk(object, CLASSES)\nfor cls in CLASSES:\n"
        "    if cls.__name__ == 'Random':\n        try:\n"
        "            cls.randint = lambda self, a, b: a\n"
        "            cls.getrandbits = lambda self, k: 0\n"
        "        except TypeError:\n            pass\n" + ONLY_ZERO,
        ADD_SEEDED_CHECK,
        ADD_PROMPT,
    ),
    "builtins.len steering random.choice": (
        "import builtins\nLEN = len\n"
        "builtins.len = lambda s: 1 if s == 'abcdefghijklmnopqrstuvwxyz' else LEN(s)\n"
        "def shout(s):\n    return 'A' * LEN(s)\n",
        SHOUT_CHECK,
        SHOUT_PROMPT,
    ),
    "sys.modules['random'] replaced": (
        "import sys, types\nfake = types.ModuleType('random')\nfake.randint = lambda a, b: a\n"
        "sys.modules['random'] = fake\n" + ONLY_ZERO,
        ADD_CHECK,
        ADD_PROMPT,
    ),
    "copy.deepcopy's dispatch table changed": (
        "import copy\ncopy._deepcopy_dispatch[list] = lambda x, memo, deepcopy=None: x\n" + EMPTIES,
        TOTAL_CHECK,
        TOTAL_PROMPT,
    ),
    "copy.deepcopy's dispatch table rebound": (
        "import copy\ncopy._deepcopy_dispatch = {list: lambda x, memo, deepcopy=None: x}\n"
        + EMPTIES,
        TOTAL_CHECK,
        TOTAL_PROMPT,
    ),
}


def _graded(mode: dict, answer: str, check: str, prompt: str):
    return run_python(code_program(answer, Reference(check, prompt=prompt)), **mode)


@pytest.mark.parametrize("case", list(CHEATS))
def test_the_answer_cannot_steer_what_the_tests_draw(mode, case):
    r = _graded(mode, *CHEATS[case])
    assert not r.passed, (case, r)
    assert "AssertionError" in r.stderr and "<tests>" in r.stderr, (case, r.stderr[-800:])


def _drawn(seed: int | str) -> list:
    """What a check seeding `random.Random(seed)` draws, by the running CPython."""
    rng = random.Random(seed)
    xs = list(range(10))
    rng.shuffle(xs)
    out = [rng.randint(1, 100), rng.randrange(0, 50, 5), rng.random(), rng.choice("abcdef")]
    out += [rng.sample(range(100), 4), rng.choices("xyz", k=5), rng.uniform(1, 2), xs]
    out += [rng.gauss(0, 1), rng.getrandbits(40), rng.randbytes(3)]
    return out


DRAWS = (
    "[rng.randint(1, 100), rng.randrange(0, 50, 5), rng.random(), rng.choice('abcdef'), "
    "rng.sample(range(100), 4), rng.choices('xyz', k=5), rng.uniform(1, 2), xs, "
    "rng.gauss(0, 1), rng.getrandbits(40), rng.randbytes(3)]"
)
NOTHING = "def noop(x):\n    return x\n"

# (answer, check, prompt): right answers, and checks that depend on the tests' `random`
# drawing what CPython's does.
RIGHT = {
    "HumanEval 53's shape": ("    return x + y\n", ADD_CHECK, ADD_PROMPT),
    "HumanEval 32's shape, seeded": ("    return x + y\n", ADD_SEEDED_CHECK, ADD_PROMPT),
    "HumanEval 38's shape": ("    return s.upper()\n", SHOUT_CHECK, SHOUT_PROMPT),
    "HumanEval 32's deep copy": ("    return sum(xs)\n", TOTAL_CHECK, TOTAL_PROMPT),
    "a seeded Random draws CPython's sequence": (
        NOTHING,
        "\n\ndef check(candidate):\n    import random\n    rng = random.Random(42)\n"
        f"    xs = list(range(10))\n    rng.shuffle(xs)\n    assert {DRAWS} == {_drawn(42)!r}\n",
        "def noop(x):\n    '''x'''\n",
    ),
    "the module's functions after random.seed": (
        NOTHING,
        "\n\ndef check(candidate):\n    import random\n    random.seed('a string seed')\n"
        "    rng = random\n    xs = list(range(10))\n    rng.shuffle(xs)\n"
        f"    assert {DRAWS} == {_drawn('a string seed')!r}\n",
        "def noop(x):\n    '''x'''\n",
    ),
    "getstate and setstate, two generators apart": (
        NOTHING,
        "\n\ndef check(candidate):\n    import random\n    a, b = random.Random(1), random.Random(1)\n"
        "    first = [a.random() for _ in range(3)]\n    state = b.getstate()\n"
        "    assert [b.random() for _ in range(3)] == first\n    b.setstate(state)\n"
        "    assert [b.random() for _ in range(3)] == first\n"
        "    random.seed(5)\n    s = random.getstate()\n    x = random.random()\n"
        "    random.setstate(s)\n    assert random.random() == x\n"
        f"    assert random.Random(5).random() == x == {random.Random(5).random()!r}\n",
        "def noop(x):\n    '''x'''\n",
    ),
}


@pytest.mark.parametrize("case", list(RIGHT))
def test_right_answers_pass_with_the_tests_own_random(mode, case):
    r = _graded(mode, *RIGHT[case])
    assert r.passed, (case, r.stderr[-800:])
