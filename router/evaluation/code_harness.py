"""The program `code_eval` runs in the sandbox: the answer, then the dataset's tests, kept apart.

One job: build that program so the answer cannot make the tests say yes by anything but
computing the right values. The answer runs first, in a namespace of its own. The tests run
after it in another, set up before the answer ran: its `__builtins__` is a snapshot (a plain
dict) of the builtins, whose `__import__` hands out copies of the namespaces of the modules
loaded then (the modules the tests import are loaded first). Rebinding `builtins.sorted`,
`math.isclose` or `sys.modules["math"]` changes what the answer's own code uses, not what the
tests use; the pure-Python modules they reach run their functions in those copies, and their
`random` draws from a generator of its own (harness_modules.py). The answer's names are copied
into the tests' namespace, except the ones that would shadow a builtin the tests call (unless
that builtin's name is the function under test, as MBPP's `sum`); a name the tests use only as
`name.attribute` that names a loaded module (MBPP's `math` or `sys`, imported by the answer) is
the copy; HumanEval's prompt helpers (`poly`) are the ones the prompt defines, run on their own
before the answer.

The tests are rewritten (`rewrite_tests`, on their syntax tree) so that every comparison in an
assert except `is` / `is not`, every operand of arithmetic in one, and every value an assert
tests for truth goes through the harness's `__router_plain__` (harness_values.py): the value
must be plain data, exact types checked by identity against references captured before the
answer ran (int, float, bool, complex, str, bytes, None, the builtin classes, Decimal, date,
timedelta, timezone, a datetime or time that is naive or at a fixed timezone, and list / tuple /
dict / set / frozenset / deque / OrderedDict of plain data, to a depth of 100; a stdlib type
only if it is immutable, so no program replaced its methods). Subclasses of those containers
(`Counter`, `defaultdict`, a namedtuple, a deque subclass) are read through the base type's own
C methods and compared as the base type would compare them; subclasses of the scalars
(`IntEnum`, a Decimal subclass) are their values, a `Fraction` the plain number Python finds
equal to it, a dict's `keys()` / `items()` a frozenset. Anything else fails the assert. A copy
is what is compared, so no code of the answer runs while two values are compared, and a thread
it left running cannot change them in between. So an object whose `__eq__` always says yes, or
whose `__bool__` or `__sub__` lies, fails.

The harness's helpers take everything they use as default arguments, bound before the answer
ran (the guard refuses replacing `__defaults__`), and the harness function keeps what it uses
after the answer ran in its own local variables. The guard keeps the answer from the tests'
frames and from the program's text (sandbox_guard.py), so it can neither read what they expect
nor rebind what their asserts use while they run.
"""

from __future__ import annotations

import ast
import builtins

from router.evaluation.harness_modules import MODULES
from router.evaluation.harness_values import CHAIN, CMP, OPERAND, TRUTH, VALUES

_OPS = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
}  # fmt: skip
_BUILTIN_NAMES = frozenset(dir(builtins))

# The harness program: these imports, then VALUES (harness_values.py), MODULES
# (harness_modules.py) and RUN, the function that runs the answer and then the tests.
HARNESS_HEADER = r"""# code_eval harness (router/evaluation/code_harness.py): the answer runs
# first in a namespace of its own; the tests run after it in another, with a snapshot of the
# builtins and of the loaded modules taken before the answer ran, and their comparisons go
# through __router_cmp__ (plain data only).
import _random as __router_random_c__
import builtins as __router_builtins__
import collections as __router_collections__
import datetime as __router_datetime__
import decimal as __router_decimal__
import fractions as __router_fractions__
import functools as __router_functools__
import linecache as __router_linecache__
import math as __router_math__
import random as __router_random_py__
import sys as __router_sys__
import types as __router_types__
"""

RUN = r"""
def __router_run__(
    answer, tests, shadows, prompt=None, entry=None, imports=(), modules=(),
    _compile=compile, _exec=exec, _list=list, _items=dict.items, _type=type, _str=str,
    _frozenset=frozenset, _dict=dict, _len=len, _Exception=Exception,
    _snapshot=tuple(vars(__router_builtins__).items()),
    _names=frozenset(vars(__router_builtins__)), _builtins=__router_builtins__,
    _import=__router_builtins__.__import__, _copies=__router_modules__,
    _importer=__router_import__, _imports=__router_imports__,
    _helpers=(("__router_plain__", __router_plain__), ("__router_cmp__", __router_cmp__),
              ("__router_chain__", __router_chain__), ("__router_truth__", __router_truth__),
              ("__router_operand__", __router_operand__)),
    _lines=__router_linecache__.cache,
):
    allowed = _frozenset(shadows)
    # The answer's own text, for its tracebacks and `inspect`; the tests' text is nowhere the
    # answer can read it (the sandbox removed the program's file before it started).
    _lines["<answer>"] = (_len(answer), None, answer.splitlines(True), "<answer>")
    answer_code = _compile(answer, "<answer>", "exec")
    tests_code = _compile(tests, "<tests>", "exec")
    missing, loaded = [], []
    for name in imports:  # the modules the tests import, loaded before the answer runs
        try:
            _import(name)
            loaded.append(name)
        except _Exception:
            missing.append(name)
    test_builtins = _dict(_snapshot)
    test_builtins["__import__"] = _importer
    before = _copies(test_builtins, loaded)
    _imports["copies"], _imports["missing"] = before, _frozenset(missing)
    helpers = {}
    if prompt is not None:  # HumanEval's prompt: its helpers (`poly`) as the dataset wrote them
        try:
            helpers = {"__name__": "__main__", "__builtins__": test_builtins}
            _exec(_compile(prompt, "<prompt>", "exec"), helpers)
        except _Exception:
            helpers = {}
    namespace = {"__name__": "__main__", "__builtins__": _builtins}
    _exec(answer_code, namespace)
    # Only local variables and the defaults above from here on: the answer has run.
    scope = {"__name__": "__main__", "__builtins__": test_builtins}
    for source in (namespace, helpers):
        for name, value in _list(_items(source)):
            if _type(name) is not _str or (name[:2] == "__" and name[-2:] == "__"):
                continue
            if name in _names and name not in allowed:
                continue
            if source is helpers and name == entry:
                continue
            if source is namespace and name in modules and name in before:
                value = before[name]  # `math` the answer imported: the tests' copy
            scope[name] = value
    for name, value in _helpers:
        scope[name] = value
    _exec(tests_code, scope)
"""

HARNESS = HARNESS_HEADER + VALUES + MODULES + RUN


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


def imported_modules(*sources: str | None) -> tuple[str, ...]:
    """The modules the sources import by name (`import a.b`, `from a import b`: `a.b`, or an
    attribute `b` of `a`): the harness loads them before the answer runs, so that the tests'
    copies of them are from before it."""
    names: set[str] = set()
    for tree in map(_tree, sources):
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names if a.name != "*")
    return tuple(sorted(names))


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


def harness_program(
    answer: str, tests: str, entry: str | None = None, prompt: str | None = None
) -> str:
    """The sandboxed program: the harness, then a call running `answer` and then `tests`
    (rewritten here). HumanEval: `entry`, the function under test, and `prompt`, the prompt's
    code before it (imports, helpers), whose helpers the tests take as the prompt defines them."""
    modules = module_names(tests)
    args = (
        answer,
        rewrite_tests(tests),
        builtin_shadows(tests, entry),
        prompt,
        entry,
        tuple(sorted({*imported_modules(tests, prompt), *modules})),  # loaded before the answer
        modules,
    )
    return HARNESS + "\n\n__router_run__(\n" + "".join(f"    {a!r},\n" for a in args) + ")\n"
