"""The program `code_eval` runs in the sandbox: the answer, then the dataset's tests, kept apart.

One job: build that program so the answer cannot make the tests say yes by anything but
computing the right values. The answer runs first, in a namespace of its own. The tests run
after it in another namespace, whose `__builtins__` is a snapshot (a plain dict) of the builtins
taken before the answer ran: rebinding `builtins.sorted` (or `abs`, `len`, `isinstance`, `type`)
changes what the answer's own code calls, not what the tests call. The answer's names are copied
into the tests' namespace, except the ones that would shadow a builtin the tests call (unless
that builtin's name is the function under test, as MBPP's `sum`).

The tests are rewritten (`rewrite_tests`, on their syntax tree) so that every comparison in an
assert except `is` / `is not`, every operand of arithmetic in one, and every value an assert
tests for truth goes through the harness's `__router_plain__`: the value must be plain data,
exact builtin types checked by identity against references captured before the answer ran
(int, float, bool, complex, str, bytes, None, the builtin classes, and list / tuple / dict /
set / frozenset of plain data, to a depth of 100). Subclasses of those containers (`Counter`,
`OrderedDict`, `defaultdict`, a namedtuple) are read through the base type's own C methods and
compared as the base type would compare them. Anything else fails the assert. A copy is what is
compared, so no code of the answer runs while two values are compared, and a thread it left
running cannot change them in between. So an object whose `__eq__` always says yes, or whose
`__bool__` or `__sub__` lies, fails.

The harness's helpers take everything they use as default arguments, bound before the answer
ran (the guard refuses replacing `__defaults__`), and the harness function keeps what it uses
after the answer ran in its own local variables, which no Python code can rebind.
"""

from __future__ import annotations

import ast
import builtins

PLAIN = "__router_plain__"
CMP = "__router_cmp__"
CHAIN = "__router_chain__"
TRUTH = "__router_truth__"

_OPS = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
}  # fmt: skip
_BUILTIN_NAMES = frozenset(dir(builtins))

HARNESS = r'''# code_eval harness (router/evaluation/code_harness.py): the answer runs first in a namespace
# of its own; the tests run after it in another, with a snapshot of the builtins taken before
# the answer ran, and their comparisons go through __router_cmp__ (plain data only).
import builtins as __router_builtins__
import linecache as __router_linecache__


def __router_plain__(
    value, _type=type, _meta=type, _list=list, _tuple=tuple, _set=set, _frozenset=frozenset,
    _len=len, _range=range,
    _scalars=(int, float, bool, complex, str, bytes, type(None)),
    _classes=frozenset(v for v in vars(__router_builtins__).values() if type(v) is type),
    _views=((0, list.__iter__), (1, tuple.__iter__), (2, dict.items), (3, set.__iter__),
            (4, frozenset.__iter__)),
    _TypeError=TypeError, _Fail=AssertionError, _depth=100,
):
    """A copy of `value` made of exact builtin types, or AssertionError: not plain data."""
    stack = []  # [kind, children, next child, copies of the children]
    node = value
    while True:
        t = _type(node)
        ready = False
        for s in _scalars:
            if t is s:
                result, ready = node, True
                break
        if not ready and t is _meta and node in _classes:
            result, ready = node, True
        if not ready:
            kind = -1
            for k, view in _views:
                try:
                    items = _list(view(node))
                except _TypeError:
                    continue
                kind = k
                break
            if kind < 0 or _len(stack) >= _depth:
                raise _Fail("code_eval: a value the tests check is not plain data")
            if kind == 2:
                flat = []
                for pair in items:
                    flat.append(pair[0])
                    flat.append(pair[1])
                items = flat
            stack.append([kind, items, 0, []])
        while True:
            if ready:
                if not stack:
                    return result
                stack[-1][3].append(result)
                ready = False
            top = stack[-1]
            if top[2] < _len(top[1]):
                node = top[1][top[2]]
                top[2] += 1
                break
            stack.pop()
            kind, out = top[0], top[3]
            if kind == 0:
                result = out
            elif kind == 1:
                result = _tuple(out)
            elif kind == 2:
                result = {}
                for i in _range(0, _len(out), 2):
                    result[out[i]] = out[i + 1]
            elif kind == 3:
                result = _set(out)
            else:
                result = _frozenset(out)
            ready = True


def __router_cmp__(op, left, right, _plain=__router_plain__, _Fail=AssertionError):
    if op == "is":
        return left is right
    if op == "is not":
        return left is not right
    left, right = _plain(left), _plain(right)
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "in":
        return left in right
    if op == "not in":
        return left not in right
    raise _Fail("code_eval: unknown comparison " + op)


def __router_chain__(ops, left, *rest, _cmp=__router_cmp__, _len=len, _range=range):
    """`a < b < c`: each operand evaluated once, in order, and only while the chain holds."""
    for i in _range(_len(ops)):
        right = rest[i]()
        if not _cmp(ops[i], left, right):
            return False
        left = right
    return True


def __router_truth__(value, _plain=__router_plain__, _bool=bool):
    return _bool(_plain(value))


def __router_run__(
    answer, tests, shadows, _compile=compile, _exec=exec, _list=list, _items=dict.items,
    _type=type, _str=str, _frozenset=frozenset, _dict=dict, _len=len,
    _snapshot=tuple(vars(__router_builtins__).items()),
    _names=frozenset(vars(__router_builtins__)), _builtins=__router_builtins__,
    _helpers=(("__router_plain__", __router_plain__), ("__router_cmp__", __router_cmp__),
              ("__router_chain__", __router_chain__), ("__router_truth__", __router_truth__)),
    _lines=__router_linecache__.cache,
):
    allowed = _frozenset(shadows)
    for name, text in (("<answer>", answer), ("<tests>", tests)):
        _lines[name] = (_len(text), None, text.splitlines(True), name)
    answer_code = _compile(answer, "<answer>", "exec")
    tests_code = _compile(tests, "<tests>", "exec")
    namespace = {"__name__": "__main__", "__builtins__": _builtins}
    _exec(answer_code, namespace)
    # Only local variables and the defaults above from here on: the answer has run.
    scope = {"__name__": "__main__", "__builtins__": _dict(_snapshot)}
    for name, value in _list(_items(namespace)):
        if _type(name) is not _str or (name[:2] == "__" and name[-2:] == "__"):
            continue
        if name in _names and name not in allowed:
            continue
        scope[name] = value
    for name, value in _helpers:
        scope[name] = value
    _exec(tests_code, scope)
'''


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[])


def _value(node: ast.expr) -> ast.expr:
    return node if isinstance(node, ast.Constant) else _call(PLAIN, node)


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
            node.operand = _call(PLAIN, node.operand)
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


def harness_program(answer: str, tests: str, entry: str | None = None) -> str:
    """The sandboxed program: the harness, then a call running `answer` and then `tests`
    (rewritten here). `entry`: HumanEval's function under test."""
    shadows = builtin_shadows(tests, entry)
    return (
        HARNESS
        + "\n\n__router_run__(\n    "
        + repr(answer)
        + ",\n    "
        + repr(rewrite_tests(tests))
        + ",\n    "
        + repr(shadows)
        + ",\n)\n"
    )
