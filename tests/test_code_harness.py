"""The code_eval harness in the sandbox, in both modes: the tests see copies of the answer's
values, not its objects, and their own builtins and modules, which the answer (in a process of
its own) never touched; the answer cannot reach the frames or the program's text
(router/evaluation/code_harness.py, harness_remote.py, sandbox_guard.py).

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
# HumanEval 32's shape: the check imports a module of its own.
ROOT_PROMPT = "def root(x):\n    '''The square root of x.'''\n"
ROOT_CHECK = (
    "\n\ndef check(candidate):\n    import math\n"
    "    assert math.fabs(candidate(4.0) - 2.0) < 1e-9\n"
)
# HumanEval 38's and 50's: the check calls a helper the prompt defines.
ENCODE_PROMPT = (
    "def encode(s):\n    '''Shift each letter by one.'''\n"
    "    return ''.join(chr(ord(c) + 1) for c in s)\n\n\n"
    "def decode(s):\n    '''Undo encode.'''\n"
)
ENCODE_CHECK = (
    "\n\ndef check(candidate):\n    for w in ['abc', 'xyz']:\n"
    "        assert candidate(encode(w)) == w\n"
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
    # The modules the tests use are copies taken before the answer ran.
    "math.isclose rebound": (
        "import math\nmath.isclose = lambda *a, **k: True\ndef f(x):\n    return 0.0\n",
        "['assert math.isclose(f(1), 0.5)']",
        "",
    ),
    "sys.getsizeof rebound (MBPP 596)": (
        "import sys\nsys.getsizeof = lambda *a: 0\ndef tuple_size(t):\n    return 0\n",
        '[\'assert tuple_size(("A", 1)) == sys.getsizeof(("A", 1))\']',
        "",
    ),
    "a module loaded for the tests first, rebound": (
        "import calendar\ncalendar.isleap = lambda year: True\ndef leap(year):\n    return True\n",
        "['assert leap(1900) == calendar.isleap(1900)']",
        "",
    ),
    "an object posing as the module": (
        "class M:\n    isclose = staticmethod(lambda *a, **k: True)\nmath = M()\n"
        "def f(x):\n    return 0.0\n",
        "['assert math.isclose(f(1), 0.5)']",
        "",
    ),
    "sys.modules entry replaced": (
        "import sys, types\nfake = types.ModuleType('math')\nfake.fabs = lambda x: 0.0\n"
        "sys.modules['math'] = fake\ndef root(x):\n    return 0.0\n",
        ROOT_CHECK,
        ROOT_PROMPT,
    ),
    # HumanEval's prompt helpers (`poly`, `encode_cyclic`) are the prompt's, not the answer's.
    "a prompt helper redefined (HumanEval 38)": (
        "def encode(s):\n    return s\n\n\ndef decode(s):\n    return s\n",
        ENCODE_CHECK,
        ENCODE_PROMPT,
    ),
    # The stdlib types now compared as plain data are read through their own C methods.
    "a deque subclass equal to all": (
        "from collections import deque\nclass D(deque):\n    def __eq__(self, other):\n"
        "        return True\ndef f(x):\n    return D()\n",
        "['assert f(1) == deque([1, 2])']",
        "",
    ),
    # Subclasses of scalars and Fractions are read as their values: a lying method is ignored.
    "an int subclass equal to all": (
        "class I(int):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = int.__hash__\ndef f(x):\n    return I(0)\n",
        "['assert f(1) == 5']",
        "",
    ),
    "a Fraction whose class says equal": (
        "from fractions import Fraction\nFraction.__eq__ = lambda a, b: True\n"
        "Fraction.__lt__ = Fraction.__gt__ = lambda a, b: True\n"
        "def ratio(a, b):\n    return Fraction(1, 7)\n",
        "['assert ratio(1, 3) == Fraction(1, 3)', 'assert ratio(1, 3) > 0.3']",
        "",
    ),
    "a Fraction whose slots are forged": (
        YES + "from fractions import Fraction\ndef ratio(a, b):\n"
        "    f = object.__new__(Fraction)\n    f._numerator, f._denominator = Yes(), 1\n"
        "    return f\n",
        "['assert ratio(1, 2) == 0.5']",
        "",
    ),
    "a dict view of the wrong keys": (
        "def keys(d):\n    return {0: 0}.keys()\n",
        "['assert keys({1: 2, 3: 4}) == {1, 3}']",
        "",
    ),
    "a Decimal subclass equal to all": (
        "from decimal import Decimal\nclass D(Decimal):\n    def __eq__(self, other):\n"
        "        return True\n    __hash__ = Decimal.__hash__\ndef f(x):\n    return D(0)\n",
        "['assert f(1) == Decimal(\"1.5\")']",
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
    "an answer rebinding builtins": (
        "import builtins\n"
        "for name in ('dict', 'type', 'list', 'exec', 'compile', 'frozenset', 'str', 'len',\n"
        "             'range', 'tuple', 'bool', 'AssertionError', 'TypeError', '__import__'):\n"
        "    setattr(builtins, name, None)\n"
        "def f(x):\n    return [x, x]\n",
        "['assert f(1) == [1, 1]', 'assert len(f(2)) == 2', 'assert f(1) != [1]']",
        "",
    ),
    # namedtuple, TypeVar, a functional Enum and logging call sys._getframe, which the sandbox
    # refuses with the ValueError they handle.
    "stdlib code that looks for its caller's frame": (
        "import collections, enum, logging, typing\nT = typing.TypeVar('T')\n"
        "P = collections.namedtuple('P', 'x y')\nColor = enum.Enum('Color', 'RED GREEN')\n"
        "def f(x):\n    logging.getLogger('f').warning('called')\n"
        "    return P(x, Color.GREEN.value)\n",
        "['assert f(1) == (1, 2)']",
        "",
    ),
    "HumanEval, a check importing a module": (
        "import math\ndef root(x):\n    return math.sqrt(x)\n",
        ROOT_CHECK,
        ROOT_PROMPT,
    ),
    "HumanEval, a prompt helper": (
        "    return ''.join(chr(ord(c) - 1) for c in s)\n",
        ENCODE_CHECK,
        ENCODE_PROMPT,
    ),
    # Exact stdlib value types with C equality: Decimal, deque, OrderedDict (its order counts),
    # date/datetime/time/timedelta (naive, or at a fixed `timezone`).
    "a Decimal": (
        "from decimal import Decimal\ndef price(x):\n    return Decimal(x) * Decimal('1.10')\n",
        '[\'assert price("10") == Decimal("11.000")\', \'assert price("1") < 2\', '
        '\'assert abs(price("2") - Decimal("2.2")) < Decimal("1e-9")\', '
        '\'assert price("1") in {Decimal("1.1")}\']',
        "",
    ),
    "a deque": (
        "from collections import deque\ndef window(xs, n):\n    return deque(xs, n)\n",
        "['assert window([1, 2, 3], 2) == deque([2, 3])', 'assert window([], 2) == deque()', "
        "'assert window([1, [2]], 2) == deque([1, [2]])', 'assert list(window([1], 1)) == [1]']",
        "",
    ),
    "an OrderedDict, in its order": (
        "from collections import OrderedDict\ndef squares(xs):\n"
        "    d = OrderedDict((x, x * x) for x in xs)\n    d.move_to_end(xs[0])\n    return d\n",
        "['assert squares([1, 2, 3]) == OrderedDict([(2, 4), (3, 9), (1, 1)])', "
        "'assert squares([1, 2, 3]) != OrderedDict([(1, 1), (2, 4), (3, 9)])', "
        "'assert squares([1, 2]) == {1: 1, 2: 4}']",
        "",
    ),
    "a date and a datetime": (
        "import datetime\ndef next_day(d):\n    return d + datetime.timedelta(days=1)\n",
        "['assert next_day(datetime.date(2024, 2, 28)) == datetime.date(2024, 2, 29)', "
        "'assert next_day(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)) == "
        "datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc)']",
        "",
    ),
}


RIGHT.update(
    {
        # A Fraction compares as Python compares it: with ints, floats, Decimals and Fractions,
        # in containers too, ordered exactly; in arithmetic it is its float.
        "a Fraction against numbers and Fractions": (
            "from decimal import Decimal\nfrom fractions import Fraction\n"
            "def ratio(a, b):\n    return Fraction(a, b)\n",
            str(
                [
                    "assert ratio(1, 2) == 0.5",
                    "assert ratio(1, 3) == Fraction(1, 3)",
                    "assert ratio(2, 6) != Fraction(1, 2)",
                    "assert ratio(4, 2) == 2",
                    "assert ratio(1, 10) == Decimal('0.1')",
                    "assert ratio(1, 10) != 0.1",
                    "assert ratio(1, 3) < 1",
                    "assert 0 < ratio(1, 3) <= Fraction(1, 2)",
                    "assert ratio(1, 3) > 0.3333",
                    "assert [ratio(1, 2), ratio(1, 3)] == [0.5, Fraction(1, 3)]",
                    "assert ratio(1, 3) in {Fraction(1, 3): 'third'}",
                    "assert abs(ratio(1, 3) - 1 / 3) < 1e-9",
                    "assert ratio(0, 5) == 0 and not ratio(0, 5)",
                ]
            ),
            "",
        ),
        # keys() and items() are set-like (equal to sets and views, not lists: as in Python);
        # values() count for `in` and truth.
        "dict views": (
            "def keys(d):\n    return d.keys()\ndef items(d):\n    return d.items()\n"
            "def values(d):\n    return d.values()\n",
            str(
                [
                    "assert keys({1: 2, 3: 4}) == {1, 3}",
                    "assert keys({1: 2}) == {1: 0}.keys()",
                    "assert keys({1: 2}) != [1]",
                    "assert items({1: 2}) == {(1, 2)}",
                    "assert items({1: 2}) == {1: 2}.items()",
                    "assert 4 in values({1: 2, 3: 4})",
                    "assert values({1: 2}) and not keys({})",
                    "assert sorted(values({1: 2, 3: 4})) == [2, 4]",
                ]
            ),
            "",
        ),
        "subclasses of int, str and Decimal, and bools": (
            "import enum\nfrom decimal import Decimal\n"
            "class Level(enum.IntEnum):\n    LOW = 1\n    HIGH = 2\n"
            "class Money(Decimal):\n    pass\nclass Name(str):\n    pass\n"
            "def level(s):\n    return Level.HIGH if s == 'high' else Level.LOW\n"
            "def price():\n    return Money('9.99')\ndef name():\n    return Name('bob')\n"
            "def even(n):\n    return n % 2 == 0\n",
            str(
                [
                    "assert level('high') == 2",
                    "assert [level('x')] == [1]",
                    "assert price() == Decimal('9.99')",
                    "assert price() + 1 == Decimal('10.99')",
                    "assert name() == 'bob'",
                    "assert even(2) == True",
                    "assert even(3) is False",
                ]
            ),
            "",
        ),
        # Formatting a caught exception reads no frame: the C display renders it.
        "an answer that logs an exception it caught": (
            "import logging, traceback\ndef inverse(x):\n    try:\n        return 1 / x\n"
            "    except ZeroDivisionError as e:\n        text = traceback.format_exc()\n"
            "        logging.getLogger('inverse').exception('no inverse of %s', x)\n"
            "        traceback.print_exc()\n        lines = traceback.format_exception(e)\n"
            "        only = traceback.format_exception_only(type(e), e)\n"
            "        assert 'ZeroDivisionError' in text and 'in inverse' in ''.join(lines)\n"
            "        assert only == ['ZeroDivisionError: division by zero\\n'], only\n"
            "        return None\n",
            "['assert inverse(0) is None', 'assert inverse(4) == 0.25']",
            "",
        ),
    }
)


@pytest.mark.parametrize("case", list(RIGHT))
def test_right_answers_still_pass(mode, case):
    r = _graded(mode, *RIGHT[case])
    assert r.passed, (case, r.stderr[-800:])


def test_a_wrong_answer_still_fails_when_it_rebinds_the_builtins(mode):
    answer = RIGHT["an answer rebinding builtins"][0]
    r = _graded(mode, answer.replace("return [x, x]", "return [x]"), "['assert f(1) == [1, 1]']")
    assert not r.passed and "AssertionError" in r.stderr, r


REV = '[\'assert rev("abc") == "cba"\', \'assert rev("xyz") == "zyx"\']'
CALLER = "    return c[c.index(s) + 1]\n"  # the constant after the argument: what the assert wants
FOUND = "    return re.search(r\"rev\\('\" + s + r\"'\\), '(\\w+)'\", text).group(1)\n"

# (answer, ground truth, prompt, what the sandbox says): each wrong answer read what the tests
# expect (their frame, their code, their text) or had them use its own module, and passed.
READS = {
    "sys._getframe: the caller's constants": (
        "import sys\ndef rev(s):\n    c = sys._getframe(1).f_code.co_consts\n" + CALLER,
        REV,
        "",
        "ValueError: call stack is not deep enough",
    ),
    "inspect.currentframe": (
        "import inspect\ndef rev(s):\n    c = inspect.currentframe().f_back.f_code.co_consts\n"
        + CALLER,
        REV,
        "",
        "ValueError: call stack is not deep enough",
    ),
    "a traceback's frame": (
        "def rev(s):\n    try:\n        raise ValueError\n    except ValueError as e:\n"
        "        c = e.__traceback__.tb_frame.f_back.f_code.co_consts\n" + CALLER,
        REV,
        "",
        "sandbox: reaching a frame (tb_frame) is not allowed",
    ),
    "a generator's frame": (
        "def rev(s):\n    box = []\n    def walk():\n"
        "        yield box[0].gi_frame.f_back.f_back.f_code.co_consts\n"
        "    box.append(walk())\n    c = next(box[0])\n" + CALLER,
        REV,
        "",
        "sandbox: reaching a frame (gi_frame) is not allowed",
    ),
    "the tests' comparison rebound in their globals": (
        "import sys\ndef f(x):\n"
        "    sys._getframe(1).f_globals['__router_cmp__'] = lambda *a: True\n    return x\n",
        "['assert f(1) == 1', 'assert f(2) == 5']",
        "",
        "ValueError: call stack is not deep enough",
    ),
    "an audit hook sees the tests' code": (
        "import sys\nseen = []\n"
        "sys.addaudithook(lambda e, a: seen.append(a[0]) if e == 'exec' else None)\n"
        "def rev(s):\n    c = seen[-1].co_consts\n" + CALLER,
        REV,
        "",
        "sandbox: adding an audit hook is not allowed",
    ),
    "gc.garbage keeps a frame": (
        "import gc\ndef rev(s):\n    gc.set_debug(gc.DEBUG_SAVEALL)\n    def inner():\n"
        "        try:\n            raise ValueError\n        except ValueError as e:\n"
        "            err = e\n    inner()\n    gc.collect()\n"
        "    frames = [o for o in gc.garbage if type(o).__name__ == 'frame']\n"
        "    c = frames[-1].f_back.f_back.f_code.co_consts\n" + CALLER,
        REV,
        "",
        "sandbox: gc debugging is not allowed",
    ),
    "the program's file": (
        "import re\ndef rev(s):\n    text = open('program.py').read()\n" + FOUND,
        REV,
        "",
        "FileNotFoundError",
    ),
    "the tests' text in linecache": (
        "import linecache, re\ndef rev(s):\n    text = ''.join(linecache.getlines('<tests>'))\n"
        + FOUND,
        REV,
        "",
        "AttributeError",
    ),
    "a finder supplying a module the tests import": (
        "import sys, importlib.abc, importlib.machinery\n"
        "class F(importlib.abc.MetaPathFinder, importlib.abc.Loader):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'numpy':\n"
        "            return importlib.machinery.ModuleSpec(name, self)\n"
        "    def create_module(self, spec):\n        return None\n"
        "    def exec_module(self, module):\n        module.isclose = lambda *a, **k: True\n"
        "sys.meta_path.insert(0, F())\ndef root(x):\n    return 0.0\n",
        "\n\ndef check(candidate):\n    import numpy\n"
        "    assert numpy.isclose(candidate(4.0), 2.0)\n",
        ROOT_PROMPT,
        "No module named 'numpy'",
    ),
}


@pytest.mark.parametrize("case", list(READS))
def test_the_answer_cannot_reach_what_the_tests_expect(mode, case):
    answer, truth, prompt, said = READS[case]
    r = _graded(mode, answer, truth, prompt)
    assert not r.passed and said in r.stderr, (case, r.stderr[-800:])
