"""The answer runs in a process of its own and the tests in another (harness_remote.py,
harness_wire.py), in both sandbox modes: whatever the answer changes in its interpreter (a
stdlib class's methods, a module's tables, the decimal context, a function the tests hand it)
cannot reach the types and values the tests compute and compare with; right answers in the
shapes the datasets and their neighbours use still pass.

Each cheat below is a wrong answer to a HumanEval-style task whose tests compare with `==`,
and passed while the answer ran in the tests' process (the stdlib state it changed was shared).
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import os

import pytest

from router.evaluation.code_harness import HARNESS
from router.evaluation.graders import Reference, code_program
from router.evaluation.sandbox import run_python

# The fixtures of both modes, used as test arguments (which ruff reads as redefinitions).
from tests.test_sandbox import mode, weak_mode  # noqa: F401

# ruff: noqa: F811


def _prompt(name: str, doc: str) -> str:
    return f"def {name}(*args):\n    '''{doc}'''\n"


def _check(*lines: str) -> str:
    return "def check(candidate):\n" + "".join(f"    {line}\n" for line in lines)


# (answer, check, prompt): each answer is wrong.
CHEATS = {
    "Counter.update: the expected Counter built empty": (
        "import collections\ncollections.Counter.update = lambda self, *a, **k: None\n"
        "def histogram(s):\n    return {}\n",
        _check("from collections import Counter", "assert candidate('a b b') == Counter('abb')"),
        _prompt("histogram", "letter counts"),
    ),
    "string.Template.substitute": (
        "import string\nstring.Template.substitute = lambda self, *a, **k: ''\n"
        "def greet(name):\n    return ''\n",
        _check(
            "from string import Template",
            "assert candidate('Ann') == Template('Hello, $who!').substitute(who='Ann')",
        ),
        _prompt("greet", "Hello, name!"),
    ),
    "Fraction.__add__: the expected value computed outside the assert": (
        "from fractions import Fraction\nFraction.__add__ = lambda a, b: Fraction(1, 7)\n"
        "def add(a, b):\n    return Fraction(1, 7)\n",
        _check(
            "from fractions import Fraction",
            "expected = Fraction(1, 3) + Fraction(1, 6)",
            "assert candidate(Fraction(1, 3), Fraction(1, 6)) == expected",
        ),
        _prompt("add", "a + b"),
    ),
    "Fraction.__new__: every Fraction the same": (
        "from fractions import Fraction\nNEW = Fraction.__new__\n"
        "Fraction.__new__ = lambda cls, n=0, d=None, **k: NEW(cls, 1, 7)\n"
        "def ratio(a, b):\n    return Fraction(a, b)\n",
        _check("from fractions import Fraction", "assert candidate(1, 3) == Fraction(1, 3)"),
        _prompt("ratio", "a / b"),
    ),
    "an lru_cache'd function's globals (fnmatch._compile_pattern)": (
        "import fnmatch\nfnmatch.translate = lambda pat: '(?s:.*)\\\\Z'\n"
        "def py_files(names):\n    return names\n",
        _check(
            "import fnmatch",
            "names = ['a.py', 'b.txt']",
            "assert candidate(names) == [n for n in names if fnmatch.fnmatch(n, '*.py')]",
        ),
        _prompt("py_files", "the *.py names"),
    ),
    "json's module-level encoder (JSONEncoder.encode)": (
        "import json\njson.JSONEncoder.encode = lambda self, o: '{}'\n"
        "def to_json(d):\n    return '{}'\n",
        _check("import json", "assert candidate({'a': 1}) == json.dumps({'a': 1})"),
        _prompt("to_json", "d as JSON"),
    ),
    "calendar.month_name, a module-level instance": (
        "import calendar\ntype(calendar.month_name).__getitem__ = lambda self, i: ''\n"
        "def month(i):\n    return ''\n",
        _check("import calendar", "assert candidate(3) == calendar.month_name[3]"),
        _prompt("month", "the month's name"),
    ),
    "an enum member's attribute (HTTPStatus.phrase)": (
        "import http\nhttp.HTTPStatus.NOT_FOUND.phrase = ''\ndef phrase(code):\n    return ''\n",
        _check("from http import HTTPStatus", "assert candidate(404) == HTTPStatus(404).phrase"),
        _prompt("phrase", "the reason phrase"),
    ),
    "the decimal context": (
        "import decimal\ndecimal.getcontext().prec = 3\n"
        "def seventh():\n    return decimal.Decimal(1) / decimal.Decimal(7)\n",
        _check(
            "from decimal import Decimal",
            "expected = Decimal(1) / Decimal(7)",
            "assert candidate() == expected",
        ),
        _prompt("seventh", "1/7 to 28 digits"),
    ),
    "a function the tests hand over: its __globals__": (
        "def apply(f, xs):\n    f.__globals__['__router_cmp__'] = lambda *a: True\n    return []\n",
        _check(
            "assert candidate(lambda x: x, []) == []",
            "assert candidate(lambda x: x * 2, [1, 2]) == [2, 4]",
        ),
        _prompt("apply", "[f(x) for x in xs]"),
    ),
    "StopIteration ends the tests' loop before an assert": (
        "def double(x):\n    raise StopIteration\n",
        _check(
            "for got, want in zip(map(candidate, [1, 2]), [2, 4]):",
            "    assert got == want",
        ),
        _prompt("double", "2 * x"),
    ),
    "an object whose __class__ says list": (
        "class Fake:\n    __class__ = property(lambda self: list)\n"
        "    def __len__(self):\n        return 2\ndef pair(x):\n    return Fake()\n",
        _check("r = candidate(1)", "assert isinstance(r, list) and len(r) == 2"),
        _prompt("pair", "[x, x]"),
    ),
}


def _graded(mode: dict, answer: str, check: str, prompt: str = ""):
    return run_python(code_program(answer, Reference(check, prompt=prompt)), **mode)


@pytest.mark.parametrize("case", list(CHEATS))
def test_what_the_answer_changes_in_its_process_stays_there(mode, case):
    r = _graded(mode, *CHEATS[case])
    assert not r.passed, (case, r)
    assert "<tests>" in r.stderr, (case, r.stderr[-800:])


# (answer, ground truth, prompt): right answers.
RIGHT = {
    "a date subclass": (
        "import datetime\nclass Day(datetime.date):\n    pass\n"
        "def next_day(d):\n    n = d + datetime.timedelta(days=1)\n"
        "    return Day(n.year, n.month, n.day)\n",
        _check(
            "import datetime",
            "assert candidate(datetime.date(2024, 2, 28)) == datetime.date(2024, 2, 29)",
        ),
        _prompt("next_day", "d + 1 day"),
    ),
    "a datetime subclass": (
        "import datetime\nclass Stamp(datetime.datetime):\n    pass\n"
        "def noon(y, m, d):\n    return Stamp(y, m, d, 12, tzinfo=datetime.timezone.utc)\n",
        _check(
            "import datetime",
            "utc = datetime.timezone.utc",
            "assert candidate(2024, 1, 2) == datetime.datetime(2024, 1, 2, 12, tzinfo=utc)",
            "assert candidate(2024, 1, 2).hour == 12",
        ),
        _prompt("noon", "noon on that day"),
    ),
    "traceback.extract_tb, format_tb, walk_tb and TracebackException": (
        "import traceback\ndef where(x):\n    try:\n        1 / x\n"
        "    except ZeroDivisionError as e:\n        tb = e.__traceback__\n"
        "        last = traceback.extract_tb(tb)[-1]\n"
        "        te = traceback.TracebackException.from_exception(e)\n"
        "        walked = [f.f_code.co_name for f, _ in traceback.walk_tb(tb)]\n"
        "        return (last.name, last.lineno, last.line, len(traceback.format_tb(tb)),\n"
        "                ''.join(te.format_exception_only()).strip(), walked)\n",
        _check(
            "assert candidate(0) == ('where', 5, '1 / x', 1, "
            "'ZeroDivisionError: division by zero', ['where'])",
        ),
        _prompt("where", "where it failed"),
    ),
    "a generator": (
        "def evens(n):\n    for i in range(n):\n        if i % 2 == 0:\n            yield i\n",
        str(
            [
                "assert next(evens(10)) == 0",
                "assert list(evens(10)) == [0, 2, 4, 6, 8]",
                "assert sum(evens(1000)) == 249500",
                "g = evens(5)\nassert next(g) == 0\nassert list(g) == [2, 4]",
            ]
        ),
        "",
    ),
    "a class of the answer's that the tests build (MBPP's Pair)": (
        "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n"
        "def max_chain_length(pairs, n):\n    count, end = 0, float('-inf')\n"
        "    for p in sorted(pairs, key=lambda p: p.b):\n        if p.a > end:\n"
        "            count, end = count + 1, p.b\n    return count\n",
        str(
            [
                "assert max_chain_length([Pair(5, 24), Pair(15, 25), Pair(27, 40), "
                "Pair(50, 60)], 4) == 3",
                "assert Pair(1, 2).b == 2",
            ]
        ),
        "",
    ),
    "functions the tests hand over": (
        "def apply(f, xs):\n    return [f(x) for x in xs]\n",
        str(
            [
                "assert apply(lambda x: x * 2, [1, 2]) == [2, 4]",
                "assert apply(len, ['ab', '']) == [2, 0]",
                "assert apply(str.upper, ['a']) == ['A']",
                "assert apply(int, ['3']) == [3]",
            ]
        ),
        "",
    ),
    "exceptions the tests catch": (
        "class BadInput(ValueError):\n    pass\n"
        "def root(x):\n    if x < 0:\n        raise BadInput('negative')\n"
        "    if x == 0:\n        raise KeyError('zero')\n    return x ** 0.5\n",
        str(
            [
                "try:\n    root(-1)\n    assert False\nexcept ValueError as e:\n"
                "    assert 'negative' in str(e)",
                "try:\n    root(0)\nexcept KeyError as e:\n    assert e.args == ('zero',)",
                "assert root(4) == 2.0",
            ]
        ),
        "",
    ),
    "stdlib containers keep their methods": (
        "import collections\nP = collections.namedtuple('P', 'x y')\n"
        "def stats(s):\n    return (collections.Counter(s), P(1, 2),\n"
        "            collections.defaultdict(lambda: 7, {'a': 1}))\n",
        str(
            [
                "c, p, d = stats('abca')",
                "assert c.most_common(1) == [('a', 2)]",
                "assert p.x == 1 and p == (1, 2)",
                "assert d['zz'] == 7 and d['a'] == 1",
            ]
        ),
        "",
    ),
    "state kept across calls, a big result, output": (
        "SEEN = []\nprint('loaded')\ndef remember(x):\n    SEEN.append(x)\n"
        "    return len(SEEN)\ndef squares(n):\n    return {i: [i * i] * 3 for i in range(n)}\n",
        str(
            [
                "assert remember('a') == 1",
                "assert remember('b') == 2",
                "assert squares(50000)[49999] == [49999 ** 2] * 3",
            ]
        ),
        "",
    ),
    "an object of the answer's: len, iteration, indexing, repr": (
        "class Bag:\n    def __init__(self):\n        self.items = [1, 2, 3]\n"
        "    def __len__(self):\n        return 3\n    def __iter__(self):\n"
        "        return iter(self.items)\n    def __getitem__(self, i):\n"
        "        return self.items[i]\n    def __repr__(self):\n        return 'Bag()'\n"
        "def bag():\n    return Bag()\n",
        str(
            [
                "assert len(bag()) == 3 and list(bag()) == [1, 2, 3] and bag()[1] == 2",
                "assert repr(bag()) == 'Bag()' and 2 in list(bag())",
            ]
        ),
        "",
    ),
}


@pytest.mark.parametrize("case", list(RIGHT))
def test_right_answers_pass_across_the_processes(mode, case):
    r = _graded(mode, *RIGHT[case])
    assert r.passed, (case, r.stderr[-800:])


def test_a_dict_values_view_equals_no_list_as_in_python(mode):
    """`{1: 2}.values() == [2]` is False in Python (values views compare by identity), so an
    answer returning the view where the tests want a list fails, as it would anywhere; where
    its content counts (`in`, `sorted`, truth) it passes."""
    assert {1: 2}.values() != [2]
    answer = "def vals(d):\n    return d.values()\n"
    r = _graded(mode, answer, "['assert vals({1: 2}) == [2]']")
    assert not r.passed and "not plain data" in r.stderr, r.stderr[-500:]
    ok = _graded(mode, answer, "['assert 2 in vals({1: 2})', 'assert sorted(vals({1: 2})) == [2]']")
    assert ok.passed, ok.stderr[-500:]


def test_the_answer_process_ending_fails_the_tests(mode):
    """An answer that leaves (os._exit) or is stopped by the guard mid-call fails the row, and
    the tests cannot swallow it in an `except`."""
    check = _check("try:\n        candidate(1)\n    except BaseException:\n        pass")
    for answer in (
        "import os\ndef f(x):\n    os._exit(0)\n",
        "def f(x):\n    try:\n        1 / 0\n    except ZeroDivisionError as e:\n"
        "        return e.__traceback__.tb_frame\n",
    ):
        r = _graded(mode, answer, check, _prompt("f", "x"))
        assert not r.passed and "the answer's process ended" in r.stderr, r.stderr[-500:]


# ---- the wire, in this process ---------------------------------------------------------------


def _harness() -> dict:
    namespace: dict = {}
    exec(compile(HARNESS, "harness", "exec"), namespace)
    return namespace


def _link(harness: dict, side: str) -> dict:
    link = {
        k: (type(v)() if isinstance(v, list | dict) else v)
        for k, v in harness["__router_link__"].items()
    }
    link["side"] = side
    link["proxy"] = (
        harness["__router_object__"] if side == "tests" else harness["__router_callable__"]
    )
    return link


def _across(harness: dict, value, sender: dict, receiver: dict):
    encode, decode = harness["__router_encode__"], harness["__router_decode__"]
    out: list = []
    encode(value, sender, out, encode)
    parsed, _ = harness["__router_scanner__"]("".join(out), 0)
    return decode(parsed, receiver, decode)


class Money(decimal.Decimal):
    pass


class Level(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


def test_values_cross_as_copies_of_the_same_value_and_type():
    harness = _harness()
    answer, tests = _link(harness, "answer"), _link(harness, "tests")
    point = collections.namedtuple("Point", "x y")
    odict = collections.OrderedDict([(2, "b"), (1, "a")])
    odict.move_to_end(2)
    values = [
        None, True, 0, -(2**200), 10**18, 1.5, -0.0, float("inf"), 1e-310, "é😀", "\ud800\ude00",
        b"\x00\xff", bytearray(b"ab"), 1 + 2j, [1, [2, (3, {4})]], frozenset({5}), {(1, "a"): {}},
        decimal.Decimal("-0.00"), fractions.Fraction(-1, 3), datetime.date(2024, 2, 29),
        datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC, fold=1),
        datetime.time(1, 2, tzinfo=datetime.timezone(datetime.timedelta(hours=2), "X")),
        datetime.timedelta(days=-1, seconds=5), collections.deque([1, 2], 3), odict,
        collections.Counter("abca"), point(1, 2), range(1, 10, 3), int, KeyError,
    ]  # fmt: skip
    for value in values:
        got = _across(harness, value, answer, tests)
        assert type(got) is type(value) or (
            type(value) is point and type(got).__name__ == "Point"
        ), value
        assert got == value or repr(got) == repr(value), (value, got)
        if isinstance(value, str):
            assert len(got) == len(value)  # lone surrogates are not paired up
    assert list(_across(harness, odict, answer, tests)) == [1, 2]  # its order
    assert _across(harness, collections.deque([1], 3), answer, tests).maxlen == 3
    # Subclasses are their base values, read by the base's methods.
    assert type(_across(harness, Money("9.99"), answer, tests)) is decimal.Decimal
    level = _across(harness, Level(1), answer, tests)
    assert type(level) is int and level == 1 and level != 2
    views = {1: 2, 3: 4}
    assert _across(harness, views.keys(), answer, tests) == {1, 3}
    assert list(_across(harness, views.values(), answer, tests)) == [2, 4]
    assert _across(harness, views.items(), answer, tests) == {(1, 2), (3, 4)}


def test_anything_else_crosses_as_a_reference():
    harness = _harness()
    answer, tests = _link(harness, "answer"), _link(harness, "tests")

    def f():
        pass

    got = _across(harness, [f, iter([1])], answer, tests)
    assert [type(x).__name__ for x in got] == ["AnswerObject", "AnswerObject"]
    assert answer["exported"] == [f, answer["exported"][1]]
    assert _across(harness, f, answer, tests) is got[0]  # one AnswerObject per object
    # Sent back, a reference is the receiver's own object again.
    assert _across(harness, got[0], tests, answer) is f
    # The tests send the answer builtin functions by name, their iterators as the items, their
    # functions as references it can only call, and nothing else.
    assert _across(harness, len, tests, answer) is len
    assert list(_across(harness, iter([1, 2]), tests, answer)) == [1, 2]
    assert callable(_across(harness, lambda: 1, tests, answer))
    with pytest.raises(TypeError, match="neither plain data nor callable"):
        _across(harness, object(), tests, answer)


@pytest.mark.parametrize(
    "message",
    [
        ["B", "eval"],  # a builtin function: only the tests' side sends one
        ["y", 0],  # a reference to an object the tests never sent
        ["it", 1],  # an iterator: only the tests' side sends one
        ["x", -1],
        ["?", 1],
        ["dd", "not callable"],
        ["d", 1],
        ["dt", 2024, 1, 1, 0, 0, 0, 0, 0, "not a time zone"],
        ["n", "Point", ["l", "x"], 1, 2],  # a namedtuple of the wrong length: a tuple
        {"a": 1},
        ["T", "not a class"],
    ],
)
def test_the_tests_side_decodes_only_what_the_wire_sends(message):
    harness = _harness()
    tests = _link(harness, "tests")
    decode = harness["__router_decode__"]
    if isinstance(message, list) and message[0] == "n":
        assert decode(message, tests, decode) == (1, 2)
        return
    with pytest.raises((ValueError, TypeError)):
        decode(message, tests, decode)


def test_only_the_names_the_tests_use_cross():
    from router.evaluation.code_harness import used_names

    assert used_names("def check(candidate):\n    assert candidate(1) == f(x)\n", "g") == (
        "candidate", "f", "g", "x",
    )  # fmt: skip
    assert used_names("assert (") == ()


def test_an_exception_crosses_as_the_nearest_builtin_class():
    harness = _harness()
    answer, tests = _link(harness, "answer"), _link(harness, "tests")
    failure, error = harness["__router_failure__"], harness["__router_error__"]
    decode = harness["__router_decode__"]

    class BadInput(ValueError):
        pass

    for raised, kind, text in [
        (KeyError("k"), KeyError, "'k'"),
        (BadInput("no"), ValueError, "BadInput: no"),
        (OSError(2, "gone"), FileNotFoundError, "[Errno 2] gone"),
        (SystemExit(0), SystemExit, "0"),
    ]:
        parsed, _ = harness["__router_scanner__"](failure(answer, raised), 0)
        got = error(decode(parsed, tests, decode))
        assert type(got) is kind and str(got) == text, (raised, got)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_user_tasks_counts_a_users_threads():
    from router.evaluation.sandbox import user_tasks

    assert user_tasks(os.getuid()) >= 1
    assert user_tasks(2**31 - 7) == 0
