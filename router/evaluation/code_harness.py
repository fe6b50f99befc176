"""The program `code_eval` runs in the sandbox: the answer, then the dataset's tests, kept apart.

One job: build that program so the answer cannot make the tests say yes by anything but
computing the right values. The answer runs first, in a namespace of its own. The tests run
after it in another, set up before the answer ran: its `__builtins__` is a snapshot (a plain
dict) of the builtins, whose `__import__` hands out copies of the namespaces of the modules
loaded then (the modules the tests import are loaded first). Rebinding `builtins.sorted`,
`math.isclose` or `sys.modules["math"]` changes what the answer's own code uses, not what the
tests use. The answer's names are copied into the tests' namespace, except the ones that would
shadow a builtin the tests call (unless that builtin's name is the function under test, as
MBPP's `sum`); a name the tests use only as `name.attribute` that names a loaded module
(MBPP's `math` or `sys`, imported by the answer) is the copy; HumanEval's prompt helpers (`poly`)
are the ones the prompt defines, run on their own before the answer.

The tests are rewritten (`rewrite_tests`, on their syntax tree) so that every comparison in an
assert except `is` / `is not`, every operand of arithmetic in one, and every value an assert
tests for truth goes through the harness's `__router_plain__`: the value must be plain data,
exact types checked by identity against references captured before the answer ran (int, float,
bool, complex, str, bytes, None, the builtin classes, Decimal, date, timedelta, timezone, a
datetime or time that is naive or at a fixed timezone, and list / tuple / dict / set /
frozenset / deque / OrderedDict of plain data, to a depth of 100; a stdlib type only if it is
immutable, so no program replaced its methods). Subclasses of those containers (`Counter`,
`defaultdict`, a namedtuple, a deque subclass) are read through the base type's own C methods
and compared as the base type would compare them. Anything else fails the assert. A copy is
what is compared, so no code of the answer runs while two values are compared, and a thread it
left running cannot change them in between. So an object whose `__eq__` always says yes, or
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

PLAIN = "__router_plain__"
CMP = "__router_cmp__"
CHAIN = "__router_chain__"
TRUTH = "__router_truth__"

_OPS = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
}  # fmt: skip
_BUILTIN_NAMES = frozenset(dir(builtins))

HARNESS = r"""# code_eval harness (router/evaluation/code_harness.py): the answer runs first in
# a namespace of its own; the tests run after it in another, with a snapshot of the builtins
# and of the loaded modules taken before the answer ran, and their comparisons go through
# __router_cmp__ (plain data only).
import builtins as __router_builtins__
import collections as __router_collections__
import datetime as __router_datetime__
import decimal as __router_decimal__
import linecache as __router_linecache__
import sys as __router_sys__


def __router_trusted__(*types, _tuple=tuple):
    # Only immutable types (Py_TPFLAGS_IMMUTABLETYPE, C): no program can replace their methods.
    kept = []
    for t in types:
        if t.__flags__ & 256:
            kept.append(t)
    return _tuple(kept)


def __router_plain__(
    value, _type=type, _meta=type, _list=list, _tuple=tuple, _set=set, _frozenset=frozenset,
    _len=len, _range=range, _id=id,
    _scalars=(int, float, bool, complex, str, bytes, type(None)) + __router_trusted__(
        __router_decimal__.Decimal, __router_datetime__.date, __router_datetime__.timedelta,
        __router_datetime__.timezone),
    _zoned=tuple((t, vars(t)["tzinfo"].__get__) for t in __router_trusted__(
        __router_datetime__.datetime, __router_datetime__.time)),
    _timezone=__router_datetime__.timezone,
    _classes=frozenset(v for v in vars(__router_builtins__).values() if type(v) is type),
    _views=((0, list.__iter__), (1, tuple.__iter__))
    + tuple((6, t.__iter__) for t in __router_trusted__(__router_collections__.OrderedDict))
    + ((2, dict.items), (3, set.__iter__), (4, frozenset.__iter__))
    + tuple((5, t.__iter__) for t in __router_trusted__(__router_collections__.deque)),
    _items=dict.items, _deque=__router_collections__.deque,
    _maxlen=vars(__router_collections__.deque)["maxlen"].__get__,
    _odict=__router_collections__.OrderedDict,
    _TypeError=TypeError, _Fail=AssertionError, _depth=100,
):
    # A copy of `value` made of trusted types, or AssertionError: not plain data.
    stack = []  # [kind, children, next child, copies of the children, deque's maxlen]
    node = value
    while True:
        t = _type(node)
        ready = False
        for s in _scalars:
            if t is s:
                result, ready = node, True
                break
        for z, tzinfo in _zoned:  # a datetime or time: naive, or at a fixed offset
            if t is z:
                tz = tzinfo(node)
                if tz is None or _type(tz) is _timezone:
                    result, ready = node, True
        if not ready and t is _meta and node in _classes:
            result, ready = node, True
        if not ready:
            kind, extra = -1, None
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
            elif kind == 6:  # an OrderedDict: its keys in its order, each key's value by identity
                values = {}
                for pair in _list(_items(node)):
                    values[_id(pair[0])] = pair[1]
                flat = []
                for key in items:
                    if _id(key) not in values:
                        raise _Fail("code_eval: an OrderedDict changed while it was read")
                    flat.append(key)
                    flat.append(values[_id(key)])
                items = flat
            elif kind == 5:
                extra = _maxlen(node)
            stack.append([kind, items, 0, [], extra])
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
            elif kind == 2 or kind == 6:
                result = {} if kind == 2 else _odict()
                for i in _range(0, _len(out), 2):
                    result[out[i]] = out[i + 1]
            elif kind == 3:
                result = _set(out)
            elif kind == 4:
                result = _frozenset(out)
            else:
                result = _deque(out, top[4])
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
    # `a < b < c`: each operand evaluated once, in order, and only while the chain holds.
    for i in _range(_len(ops)):
        right = rest[i]()
        if not _cmp(ops[i], left, right):
            return False
        left = right
    return True


def __router_truth__(value, _plain=__router_plain__, _bool=bool):
    return _bool(_plain(value))


def __router_modules__(
    _modules=__router_sys__.modules, _module=type(__router_sys__), _list=list, _items=dict.items,
    _type=type, _str=str, _id=id, _vars=vars, _update=dict.update, _values=dict.values,
):
    # Copies of the loaded modules' namespaces, taken before the answer runs; a module one
    # refers to (os.path) is its copy.
    copies, by_id = {}, {}
    for name, module in _list(_items(_modules)):
        if _type(name) is _str and _type(module) is _module:
            copy = _module(name)
            _update(_vars(copy), _vars(module))
            copies[name] = copy
            by_id[_id(module)] = copy
    for copy in _list(_values(copies)):
        namespace = _vars(copy)
        for key, value in _list(_items(namespace)):
            if _type(value) is _module and _id(value) in by_id:
                namespace[key] = by_id[_id(value)]
    return copies


# What the tests' `__import__` hands out, set by __router_run__ before the answer runs.
__router_imports__ = {"copies": {}, "missing": frozenset()}


def __router_import__(
    name, globals=None, locals=None, fromlist=(), level=0, _state=__router_imports__,
    _import=__router_builtins__.__import__, _Missing=ModuleNotFoundError, _type=type, _str=str,
    _get=dict.get, _partition=str.partition, _vars=vars,
):
    # The tests' `__import__`: a module loaded before the answer ran is its copy from then; one
    # that could not be loaded then is not taken from a finder the answer added since.
    if level == 0 and _type(name) is _str:
        if name in _state["missing"]:
            raise _Missing("No module named " + name)
        copies = _state["copies"]
        module = _get(copies, name)
        if module is not None and fromlist:
            for attr in fromlist:  # a submodule never imported: the import system's
                if attr != "*" and _get(_vars(module), attr) is None:
                    return _import(name, globals, locals, fromlist, level)
            return module
        top = _get(copies, _partition(name, ".")[0])
        if module is not None and top is not None:
            return top
    return _import(name, globals, locals, fromlist, level)


def __router_run__(
    answer, tests, shadows, prompt=None, entry=None, imports=(), modules=(),
    _compile=compile, _exec=exec, _list=list, _items=dict.items, _type=type, _str=str,
    _frozenset=frozenset, _dict=dict, _len=len, _Exception=Exception,
    _snapshot=tuple(vars(__router_builtins__).items()),
    _names=frozenset(vars(__router_builtins__)), _builtins=__router_builtins__,
    _import=__router_builtins__.__import__, _copies=__router_modules__,
    _importer=__router_import__, _imports=__router_imports__,
    _helpers=(("__router_plain__", __router_plain__), ("__router_cmp__", __router_cmp__),
              ("__router_chain__", __router_chain__), ("__router_truth__", __router_truth__)),
    _lines=__router_linecache__.cache,
):
    allowed = _frozenset(shadows)
    # The answer's own text, for its tracebacks and `inspect`; the tests' text is nowhere the
    # answer can read it (the sandbox removed the program's file before it started).
    _lines["<answer>"] = (_len(answer), None, answer.splitlines(True), "<answer>")
    answer_code = _compile(answer, "<answer>", "exec")
    tests_code = _compile(tests, "<tests>", "exec")
    missing = []
    for name in imports:  # the modules the tests import, loaded before the answer runs
        try:
            _import(name)
        except _Exception:
            missing.append(name)
    before = _copies()
    _imports["copies"], _imports["missing"] = before, _frozenset(missing)
    test_builtins = _dict(_snapshot)
    test_builtins["__import__"] = _importer
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
