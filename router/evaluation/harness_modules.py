"""The code_eval harness's modules for the tests: the program text (`MODULES`) that builds, before
the answer runs, the copies of the modules the tests import (code_harness.py runs it in the
sandbox, after its imports and before `__router_run__`).

One job: the tests use modules whose state the answer could not have touched. Every class is
reachable from `object.__subclasses__()` and every module from `sys.modules`, so hiding a
module's objects is not enough: the tests get objects the answer holds no reference to.

- Each loaded module is copied (its namespace, as now); a module one refers to is its copy.
- The pure-Python modules the tests reach from what they import (the modules, and the modules
  of the functions, that those refer to, transitively) have their functions rebuilt from their
  code objects to run in the copy: the copy's names, the builtins' snapshot and, for a module
  the tests import by name, its own copies of the dicts, lists and sets it holds (copy's
  `_deepcopy_dispatch`). Rebinding a module's name or changing such a table later changes
  what the answer's code uses, not what the tests call.
- `random`: its generator lives in a C object and its methods in a class, both the answer's to
  reseed or replace (`random.seed`, `random.Random.randint`, `_random.Random.getrandbits`).
  The tests' copy gets a generator of its own, created and seeded before the answer ran, whose
  C methods were captured then, and `random.Random`'s methods rebuilt from their code onto a
  `types.SimpleNamespace` (a C type: no class of the answer's between the tests and the
  code): the same sequences as CPython's for a seed, drawn from state no answer can reach.
  `random.Random(x)` in the tests makes such a namespace; those take turns on one private
  generator, each with its own state.

None of this is a class (the module doc of harness_values.py says why), and no function has a
closure (a cell can be rewritten): state is bound with `functools.partial` and `MethodType` (C
types), and the functions the tests call read only what was bound before the answer ran.
"""

MODULES = r"""
def __router_rebuilt__(
    f, made, target, again, _type=type, _function=__router_types__.FunctionType,
    _cell=__router_types__.CellType, _partial=__router_functools__.partial, _get=dict.get,
    _items=dict.items, _id=id, _tuple=tuple, _list=list, _ValueError=ValueError,
):
    # `f` rebuilt from its code to run in its module's copy (`target`: id of an original
    # namespace -> the copy's), once (`made`); `again` is this function, for what f refers to.
    key = _id(f)
    if key in made:
        return made[key]
    namespace = _get(target, _id(f.__globals__))
    if namespace is None:
        return f
    made[key] = f  # a default or a cell that refers back to f keeps the original
    defaults = f.__defaults__
    if defaults:
        mapped = []
        for v in defaults:
            mapped.append(again(v, made, target, again) if _type(v) is _function else v)
        defaults = _tuple(mapped)
    closure = f.__closure__
    if closure:
        cells = []
        for c in closure:
            try:
                v = c.cell_contents
            except _ValueError:  # an empty cell
                cells.append(_cell())
                continue
            cells.append(_cell(again(v, made, target, again) if _type(v) is _function else v))
        closure = _tuple(cells)
    new = _function(f.__code__, namespace, f.__name__, defaults, closure)
    if f.__kwdefaults__:  # FunctionType takes none, and the guard refuses setting them
        keywords = {}
        for k, v in _list(_items(f.__kwdefaults__)):
            keywords[k] = again(v, made, target, again) if _type(v) is _function else v
        new = _partial(new, **keywords)
    made[key] = new
    return new


def __router_rebuild__(
    copies, originals, roots, test_builtins, _type=type, _module=type(__router_sys__),
    _function=__router_types__.FunctionType, _rebuilt=__router_rebuilt__, _id=id, _vars=vars,
    _list=list, _items=dict.items, _values=dict.values, _get=dict.get, _str=str, _dict=dict,
    _set=set,
):
    # The pure-Python modules reached from `roots`: their functions rebuilt to run in their
    # copies (see harness_modules.py); returns the names of the modules rebuilt.
    owner = {}  # id of a module's namespace -> its name
    for name, module in _list(_items(originals)):
        owner[_id(_vars(module))] = name
    todo, seen, rebuilt = _list(roots), _set(), []
    while todo:
        name = todo.pop()
        if name in seen or name not in copies:
            continue
        seen.add(name)
        parent = name.rpartition(".")[0]
        if parent:
            todo.append(parent)
        source = _get(_vars(originals[name]), "__file__")
        if _type(source) is _str and source.endswith(".py"):
            rebuilt.append(name)
        for value in _list(_values(_vars(copies[name]))):
            if _type(value) is _module:
                todo.append(_get(_vars(value), "__name__"))
            elif _type(value) is _function:
                found = _get(owner, _id(value.__globals__))
                if found is not None:
                    todo.append(found)
    target = {}  # id of an original namespace -> the copy's namespace
    for name in rebuilt:
        namespace = _vars(copies[name])
        namespace["__builtins__"] = test_builtins
        target[_id(_vars(originals[name]))] = namespace
    made = {}
    tables = {}  # id of a dict, list or set a module holds -> the tests' copy of it
    for name in rebuilt:
        namespace = _vars(copies[name])
        for key, value in _list(_items(namespace)):
            t = _type(value)
            if t is _function:
                namespace[key] = _rebuilt(value, made, target, _rebuilt)
            elif name in roots and (t is _dict or t is _list or t is _set):
                copy = _get(tables, _id(value))
                if copy is None:
                    copy = t()
                    if t is _set:
                        copy.update(value)
                    elif t is _dict:  # the functions in a table run in the copies too
                        for k, v in _list(_items(value)):
                            if _type(v) is _function:
                                v = _rebuilt(v, made, target, _rebuilt)
                            copy[k] = v
                    else:
                        for v in _list(value):
                            if _type(v) is _function:
                                v = _rebuilt(v, made, target, _rebuilt)
                            copy.append(v)
                    tables[_id(value)] = copy
                namespace[key] = copy
    return rebuilt


def __router_random_turn__(
    method, gen, box, *args, _setstate=vars(__router_random_c__.Random)["setstate"],
    _getstate=vars(__router_random_c__.Random)["getstate"],
):
    # `method` (random or getrandbits, C) of a Random of the tests that takes turns on the C
    # generator `gen`: its state (box[0]) set before the draw, kept after.
    _setstate(gen, box[0])
    x = method(gen, *args)
    box[0] = _getstate(gen)
    return x


def __router_random_seed__(
    self, gen, box, a=None, version=2, _c_seed=vars(__router_random_c__.Random)["seed"],
    _getstate=vars(__router_random_c__.Random)["getstate"],
    _sha512=vars(__router_random_py__)["_sha512"], _isinstance=isinstance, _ord=ord, _len=len,
    _int=int, _str=str, _bytes=bytes, _bytearray=bytearray, _float=float, _None=type(None),
    _TypeError=TypeError,
):
    # random.Random.seed (3.11), on the generator's own C seed.
    if version == 1 and _isinstance(a, (_str, _bytes)):
        a = a.decode("latin-1") if _isinstance(a, _bytes) else a
        x = _ord(a[0]) << 7 if a else 0
        for c in a:
            x = ((1000003 * x) ^ _ord(c)) & 0xFFFFFFFFFFFFFFFF
        x ^= _len(a)
        a = -2 if x == -1 else x
    elif version == 2 and _isinstance(a, (_str, _bytes, _bytearray)):
        if _isinstance(a, _str):
            a = a.encode()
        a = _int.from_bytes(a + _sha512(a).digest())
    elif not _isinstance(a, (_None, _int, _float, _str, _bytes, _bytearray)):
        raise _TypeError(
            "The only supported seed types are: None,\nint, float, str, bytes, and bytearray."
        )
    _c_seed(gen, a)
    if box is not None:
        box[0] = _getstate(gen)
    self.gauss_next = None


def __router_random_getstate__(
    self, gen, box, _getstate=vars(__router_random_c__.Random)["getstate"]
):
    return 3, (_getstate(gen) if box is None else box[0]), self.gauss_next


def __router_random_setstate__(
    self, gen, box, state, _setstate=vars(__router_random_c__.Random)["setstate"],
    _getstate=vars(__router_random_c__.Random)["getstate"], _tuple=tuple, _str=str,
    _ValueError=ValueError,
):
    version = state[0]
    if version != 3 and version != 2:
        raise _ValueError(
            "state with version " + _str(version) + " passed to Random.setstate() of version 3"
        )
    version, internal, gauss_next = state
    if version == 2:  # signed ints, as 32-bit unsigned
        unsigned = []
        for x in internal:
            unsigned.append(x % (2**32))
        internal = _tuple(unsigned)
    _setstate(gen, internal)
    if box is not None:
        box[0] = _getstate(gen)
    self.gauss_next = gauss_next


def __router_random_instance__(
    gen, box, methods, _space=__router_types__.SimpleNamespace,
    _method=__router_types__.MethodType, _partial=__router_functools__.partial,
    _setattr=setattr, _turn=__router_random_turn__, _seed=__router_random_seed__,
    _getstate=__router_random_getstate__, _setstate=__router_random_setstate__,
    _c_random=vars(__router_random_c__.Random)["random"],
    _c_bits=vars(__router_random_c__.Random)["getrandbits"],
):
    # A Random of the tests on the C generator `gen`: alone on it (`box` None), or taking turns
    # with others, its state in box[0] between draws; `methods`: random.Random's, rebuilt.
    self = _space()
    if box is None:
        self.random, self.getrandbits = _c_random.__get__(gen), _c_bits.__get__(gen)
    else:
        self.random = _partial(_turn, _c_random, gen, box)
        self.getrandbits = _partial(_turn, _c_bits, gen, box)
    self.seed = _partial(_seed, self, gen, box)
    self.getstate = _partial(_getstate, self, gen, box)
    self.setstate = _partial(_setstate, self, gen, box)
    self.VERSION, self.gauss_next = 3, None
    for name, g in methods:
        _setattr(self, name, _method(g, self))
    return self


def __router_random_new__(
    gen, methods, x=None, _instance=__router_random_instance__,
    _getstate=vars(__router_random_c__.Random)["getstate"],
):
    # The tests' `random.Random(x)`: a Random taking turns on the private generator `gen`.
    self = _instance(gen, [_getstate(gen)], methods)
    self.seed(x)
    return self


def __router_random__(
    namespace, _Random=__router_random_py__.Random, _inst=__router_random_py__._inst,
    _generator=__router_random_c__.Random, _function=__router_types__.FunctionType,
    _partial=__router_functools__.partial, _instance=__router_random_instance__,
    _new=__router_random_new__, _type=type, _dict=dict, _list=list, _items=dict.items,
    _vars=vars, _getattr=getattr, _tuple=tuple,
):
    # The tests' `random` (see harness_modules.py): `namespace` is its copy, functions rebuilt.
    skip = ("__init__", "seed", "getstate", "setstate", "__getstate__", "__setstate__",
            "__reduce__")  # fmt: skip
    methods = []
    for name, f in _list(_vars(_Random).items()):  # a mappingproxy, read before the answer
        if _type(f) is _function and name not in skip and not f.__code__.co_freevars:
            g = _function(f.__code__, namespace, f.__name__, f.__defaults__)
            if f.__kwdefaults__:
                g = _partial(g, **f.__kwdefaults__)
            methods.append((name, g))
    methods = _tuple(methods)
    own = _instance(_generator(), None, methods)
    own.seed()
    for name, value in _list(_items(namespace)):  # `random.randint` and the like: _inst's
        if _getattr(value, "__self__", None) is _inst:
            namespace[name] = _getattr(own, value.__name__)
    namespace["_inst"] = own
    namespace["Random"] = _partial(_new, _generator(), methods)


def __router_modules__(
    test_builtins, roots, _modules=__router_sys__.modules, _module=type(__router_sys__),
    _list=list, _items=dict.items, _type=type, _str=str, _id=id, _vars=vars,
    _update=dict.update, _values=dict.values, _rebuild=__router_rebuild__,
    _random=__router_random__,
):
    # Copies of the loaded modules' namespaces, taken before the answer runs; a module one
    # refers to (os.path) is its copy; the pure-Python ones the tests reach run in their copies.
    copies, by_id, originals = {}, {}, {}
    for name, module in _list(_items(_modules)):
        if _type(name) is _str and _type(module) is _module:
            copy = _module(name)
            _update(_vars(copy), _vars(module))
            copies[name] = copy
            by_id[_id(module)] = copy
            originals[name] = module
    for copy in _list(_values(copies)):
        namespace = _vars(copy)
        for key, value in _list(_items(namespace)):
            if _type(value) is _module and _id(value) in by_id:
                namespace[key] = by_id[_id(value)]
    rebuilt = _rebuild(copies, originals, roots, test_builtins)
    if "random" in rebuilt:
        _random(_vars(copies["random"]))
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
"""
