"""The program `code_eval` runs in the sandbox: the answer, then the dataset's tests, kept apart.

One job: build that program so the answer cannot make the tests say yes by anything but
computing the right values. The answer runs in a process of its own, forked before its code is
compiled; the tests run in the original process, which never runs a line of the answer's
(harness_remote.py). So what the answer changes in its interpreter (the builtins, `sys.modules`,
a stdlib class's methods such as `Counter.update` or `Fraction.__new__`, a module's tables,
`random`'s state, the decimal context) is changed in its process only: the tests use their own
builtins, modules and types, untouched. The names of the answer's that the tests use (the
function under test) come back through a pipe as copies of plain data or as `AnswerObject`s,
which forward calls to the answer's process and bring back copies of what it returns
(harness_wire.py says what crosses and how). The rules for the names the tests get: a name
that would shadow a builtin the tests call is not taken (unless that builtin's name is the
function under test, as MBPP's `sum`); a name the tests use only as `name.attribute` that names
a module (MBPP's `math` or `sys`, imported by the answer) is the tests' process's own module;
HumanEval's prompt helpers (`poly`) are the ones the prompt defines, run in the tests' process.

The tests are rewritten (`rewrite_tests`, on their syntax tree) so that every comparison in an
assert except `is` / `is not`, every operand of arithmetic in one, and every value an assert
tests for truth goes through the harness's `__router_plain__` (harness_values.py): the value
must be plain data, exact types checked by identity (int, float, bool, complex, str, bytes,
None, the builtin classes, Decimal, date, timedelta, timezone, a datetime or time that is naive
or at a fixed timezone, and list / tuple / dict / set / frozenset / deque / OrderedDict of plain
data, to a depth of 100). Subclasses of those containers (`Counter`, `defaultdict`, a
namedtuple) are read through the base type's own C methods and compared as the base type would
compare them; a `Fraction` is the plain number Python finds equal to it, a dict's `keys()` /
`items()` a frozenset. Anything else, an AnswerObject included, fails the assert. So an object
of the answer's whose `__eq__` always says yes, or whose `__bool__` or `__sub__` lies, fails.

The harness's functions take what they use as default arguments bound before the answer ran
and read no global name: in the answer's process they run after the answer, which may have
rebound builtins. The guard keeps the answer from the frames and from the program's text
(sandbox_guard.py), so it cannot read what the tests expect.
"""

from __future__ import annotations

import ast
import builtins

from router.evaluation.harness_remote import REMOTE
from router.evaluation.harness_values import CHAIN, CMP, OPERAND, TRUTH, VALUES
from router.evaluation.harness_wire import WIRE

_OPS = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
}  # fmt: skip
_BUILTIN_NAMES = frozenset(dir(builtins))

# The harness program: these imports, then VALUES (harness_values.py), WIRE (harness_wire.py),
# REMOTE (harness_remote.py) and RUN, the function that starts the answer's process and runs
# the tests.
HARNESS_HEADER = r"""# code_eval harness (router/evaluation/code_harness.py): the answer runs in a
# process of its own, forked before its code is compiled; the tests run in this one, call it
# through a pipe and compare plain copies of what it returns through __router_cmp__.
import _json as __router_json__
import builtins as __router_builtins__
import collections as __router_collections__
import datetime as __router_datetime__
import decimal as __router_decimal__
import fractions as __router_fractions__
import functools as __router_functools__
import json as __router_json_module__
import linecache as __router_linecache__
import math as __router_math__
import os as __router_os__
import sys as __router_sys__
import time as __router_time__

# JSON's C scanner, made before the answer ran (harness_wire.py reads every message with it).
__router_scanner__ = __router_json_module__.JSONDecoder().scan_once
"""

RUN = r"""
def __router_run__(
    answer, tests, shadows, prompt=None, entry=None, modules=(), wanted=(),
    _compile=compile, _exec=exec, _list=list, _items=dict.items, _type=type, _str=str,
    _len=len, _range=range, _append=list.append, _frozenset=frozenset, _Exception=Exception,
    _ImportError=ImportError, _names=frozenset(vars(__router_builtins__)),
    _builtins=__router_builtins__, _import=__router_builtins__.__import__,
    _start=__router_start__, _link=__router_link__, _dead=__router_dead__,
    _helpers=(("__router_plain__", __router_plain__), ("__router_cmp__", __router_cmp__),
              ("__router_chain__", __router_chain__), ("__router_truth__", __router_truth__),
              ("__router_operand__", __router_operand__)),
):
    allowed = _frozenset(shadows)
    tests_code = _compile(tests, "<tests>", "exec")
    # The answer, in its own process; what comes back: the names the tests use, as copies
    # or AnswerObjects. Nothing below runs code of the answer's.
    found = _start(answer, wanted, _link)
    if _type(found) is not _list or _len(found) % 2:
        _dead(_link, "the answer's process sent a malformed message")
    helpers = {}
    if prompt is not None:  # HumanEval's prompt: its helpers (`poly`) as the dataset wrote them
        try:
            helpers = {"__name__": "__main__", "__builtins__": _builtins}
            _exec(_compile(prompt, "<prompt>", "exec"), helpers)
        except _Exception:
            helpers = {}
    scope = {"__name__": "__main__", "__builtins__": _builtins}
    named = []
    for i in _range(0, _len(found), 2):
        _append(named, (found[i], found[i + 1], False))
    for name, value in _list(_items(helpers)):
        _append(named, (name, value, True))
    for name, value, helper in named:
        if _type(name) is not _str or (name[:2] == "__" and name[-2:] == "__"):
            continue
        if name in _names and name not in allowed:
            continue
        if helper and name == entry:
            continue
        if not helper and name in modules:
            try:
                value = _import(name)  # `math` the answer imported: this process's own
            except _ImportError:
                pass
        scope[name] = value
    for name, value in _helpers:
        scope[name] = value
    _exec(tests_code, scope)
"""

HARNESS = HARNESS_HEADER + VALUES + WIRE + REMOTE + RUN


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[])


def _value(node: ast.expr) -> ast.expr:
    return node if isinstance(node, ast.Constant) else _call(OPERAND, node)


class _Values(ast.NodeTransformer):
    """Inside an assert: comparisons, arithmetic operands and negations see plain data only."""

    def visit_Compare(self, node: ast.Compare) -> ast.expr:
        self.generic_visit(node)
        ops = [_OPS[type(op)] for op in node.ops]
        if all(op in ("is", "is not") for op in ops):
            return node  # identity cannot be faked
        if len(ops) == 1:
            return _call(CMP, ast.Constant(ops[0]), node.left, node.comparators[0])
        thunks = [
            ast.Lambda(
                args=ast.arguments(
                    posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]
                ),
                body=c,
            )
            for c in node.comparators
        ]
        return _call(
            CHAIN, ast.Tuple([ast.Constant(op) for op in ops], ast.Load()), node.left, *thunks
        )

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        self.generic_visit(node)
        node.left, node.right = _value(node.left), _value(node.right)
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.expr:
        self.generic_visit(node)
        if isinstance(node.operand, ast.Constant):
            return node
        if isinstance(node.op, ast.Not):
            node.operand = _truth(node.operand)
        else:
            node.operand = _call(OPERAND, node.operand)
        return node


def _truth(node: ast.expr) -> ast.expr:
    """`node` where an assert (or `not`, `and`, `or` there) tests it for truth."""
    if isinstance(node, ast.Constant | ast.Compare) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
    ):
        return node  # a constant, an identity test, or a `not` whose operand is checked
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id in (CMP, CHAIN, TRUTH):
            return node
    if isinstance(node, ast.BoolOp):
        node.values = [_truth(v) for v in node.values]
        return node
    return _call(TRUTH, node)


class _Asserts(ast.NodeTransformer):
    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        node.test = _truth(_Values().visit(node.test))
        return node


def rewrite_tests(source: str) -> str:
    """The tests with every assert checking plain data only (see the module doc); a source that
    does not parse is returned as it is (it fails to compile in the sandbox all the same)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    tree = ast.fix_missing_locations(_Asserts().visit(tree))
    return ast.unparse(tree) + "\n"


def builtin_shadows(tests: str, entry: str | None = None) -> tuple[str, ...]:
    """Builtin names the tests may take from the answer: the function under test when it is
    named after a builtin (MBPP's `sum`: every function the tests call is a builtin name), or
    HumanEval's entry point. Otherwise none: a builtin the tests call stays the builtin."""
    if entry is not None:
        return (entry,) if entry in _BUILTIN_NAMES else ()
    try:
        tree = ast.parse(tests)
    except SyntaxError:
        return ()
    called = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    return tuple(sorted(called)) if called and called <= _BUILTIN_NAMES else ()


def _tree(source: str | None) -> ast.Module | None:
    try:
        return ast.parse(source) if source is not None else None
    except SyntaxError:
        return None


def module_names(tests: str) -> tuple[str, ...]:
    """Names the tests use only as `name.attribute` and never bind: modules they take from the
    answer (MBPP's `math.isclose`, `sys.getsizeof` after the answer's `import`)."""
    tree = _tree(tests)
    if tree is None:
        return ()
    bases, bound, other = set(), set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            bases.add(id(node.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Load):
                bound.add(node.id)
            elif id(node) not in bases:
                other.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    used = {
        n.value.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
    }
    return tuple(sorted(used - bound - other))


def used_names(tests: str, entry: str | None = None) -> tuple[str, ...]:
    """The names the tests' code reads or binds, and the function under test: the only names
    of the answer's that its process sends the tests (a big table of the answer's that the
    tests never name does not cross)."""
    tree = _tree(tests)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} if tree else set()
    return tuple(sorted(names | ({entry} if entry else set())))


def harness_program(
    answer: str, tests: str, entry: str | None = None, prompt: str | None = None
) -> str:
    """The sandboxed program: the harness, then a call running `answer` in a process of its own
    and `tests` (rewritten here) in this one. HumanEval: `entry`, the function under test, and
    `prompt`, the prompt's code before it (imports, helpers), whose helpers the tests take as
    the prompt defines them."""
    args = (
        answer,
        rewrite_tests(tests),
        builtin_shadows(tests, entry),
        prompt,
        entry,
        module_names(tests),
        used_names(tests, entry),
    )
    return HARNESS + "\n\n__router_run__(\n" + "".join(f"    {a!r},\n" for a in args) + ")\n"
