"""The code_eval harness's plain-data boundary: the program text (`VALUES`) of the functions
through which the rewritten asserts see the answer's values (code_harness.py runs it in the
sandbox, after its imports and before the answer).

One job: turn a value the tests check into a copy made of trusted types, or fail the assert, so
that what is compared is data and nothing else. It runs in the tests' process, where no code of
the answer's runs (harness_remote.py): the values it sees are the tests' own, copies the wire
made of the answer's (harness_wire.py) and `AnswerObject`s, which are not plain data. Its rules
stay as strict as when the answer shared the process. Exact types are checked by
identity against references captured before the answer ran (a stdlib type only if immutable:
no program replaced its methods); containers and their subclasses are read through the base
type's own C methods. What else crosses, and how:

- a subclass of int, float, complex, str, bytes or Decimal (an `IntEnum`, a `class Money(Decimal)`)
  is its value, read by the base type's own C conversion (`int.__int__`, `Decimal.copy_sign`),
  never the subclass's methods; `bool` stays `bool` (it is a scalar of its own), and `True == 1`
  holds as in Python;
- a `fractions.Fraction` (a Python class the answer could change) is read from its two slots by
  the slot descriptors captured before the answer ran, checked (exact ints, a positive
  denominator) and reduced; it becomes the one plain value that Python finds equal to it: an
  int when whole, else the float or the Decimal of exactly that value, else a tuple holding a
  private marker (equal only to the same fraction: the marker is not plain data, so no answer
  can forge it). Ordering with such a fraction is computed exactly from integer ratios; in
  arithmetic a fraction is its float (as Python computes a Fraction with a float);
- dict views: `keys()` and `items()` are set-like in Python and become frozensets (equal to
  sets and to other views, not to lists, as in Python); `values()` compare by identity in
  Python, so they are plain only where their content counts: as the container of `in` and
  where an assert tests truth.

The functions take what they use as default arguments (the guard refuses replacing
`__defaults__`), and none is a class: every class is reachable from `object.__subclasses__()`,
so a class of the harness would be the answer's to change.
"""

PLAIN = "__router_plain__"
OPERAND = "__router_operand__"
CMP = "__router_cmp__"
CHAIN = "__router_chain__"
TRUTH = "__router_truth__"

VALUES = r"""
def __router_trusted__(*types, _tuple=tuple):
    # Only immutable types (Py_TPFLAGS_IMMUTABLETYPE, C): no program can replace their methods.
    kept = []
    for t in types:
        if t.__flags__ & 256:
            kept.append(t)
    return _tuple(kept)


# A fraction that equals no int, float or Decimal is (marker, numerator, denominator): the
# marker is this object, which is not plain data, so an answer returning such a tuple fails.
__router_marker__ = object()


def __router_rational__(
    n, d, as_float=False, _type=type, _int=int, _str=str, _max=max, _gcd=__router_math__.gcd,
    _ratio=float.as_integer_ratio, _Decimal=__router_decimal__.Decimal,
    _marker=__router_marker__, _Overflow=OverflowError, _ValueError=ValueError,
    _Fail=AssertionError,
):
    # A Fraction's slots as the plain value Python finds equal to it (see harness_values.py).
    if _type(n) is not _int or _type(d) is not _int or d <= 0:
        raise _Fail("code_eval: a Fraction whose slots are not a reduced ratio of ints")
    g = _gcd(n, d)
    n, d = n // g, d // g
    if d == 1:
        return n
    if as_float:  # arithmetic: Python computes a Fraction with a float on its float
        try:
            return n / d
        except _Overflow:
            raise _Fail("code_eval: a Fraction too large for arithmetic") from None
    if d & (d - 1) == 0:  # a power of two: maybe exactly a float
        try:
            f = n / d
            if _ratio(f) == (n, d):
                return f
        except _Overflow:
            pass
    rest, twos, fives = d, 0, 0
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    if rest == 1:  # a finite decimal: the exact Decimal (from a string: no context rounding)
        k = _max(twos, fives)
        try:
            return _Decimal(_str(n * 10**k // d) + "E-" + _str(k))
        except _ValueError:  # more digits than int-to-str allows
            pass
    return (_marker, n, d)


def __router_plain__(
    value, loose=False, as_float=False, _type=type, _meta=type, _list=list, _tuple=tuple,
    _set=set, _frozenset=frozenset, _len=len, _range=range, _id=id,
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
    + tuple((5, t.__iter__) for t in __router_trusted__(__router_collections__.deque))
    # dict views (an OrderedDict's are subclasses): keys and items as frozensets, values as a
    # tuple where `loose` allows it (7: see the module doc of harness_values.py)
    + tuple((4, t.__iter__) for t in __router_trusted__(type({}.keys()), type({}.items())))
    + tuple((7, t.__iter__) for t in __router_trusted__(type({}.values()))),
    # A subclass of a scalar type: its value, by the base type's own C conversion (a Decimal's
    # `copy_sign(x, x)`: an exact Decimal, no context rounding).
    _conversions=tuple(
        (c, False) for c in (vars(int)["__int__"], vars(float)["__float__"],
                             vars(complex).get("__complex__"), vars(str)["__str__"],
                             vars(bytes).get("__bytes__"))
        if c is not None
    ) + tuple((vars(t)["copy_sign"], True) for t in __router_trusted__(
        __router_decimal__.Decimal)),
    _numerator=vars(__router_fractions__.Fraction)["_numerator"].__get__,
    _denominator=vars(__router_fractions__.Fraction)["_denominator"].__get__,
    _rational=__router_rational__,
    _items=dict.items, _deque=__router_collections__.deque,
    _maxlen=vars(__router_collections__.deque)["maxlen"].__get__,
    _odict=__router_collections__.OrderedDict,
    _TypeError=TypeError, _Fail=AssertionError, _depth=100,
):
    # A copy of `value` made of trusted types, or AssertionError: not plain data. `loose`: a
    # dict's values() at the top is its tuple; `as_float`: a Fraction is its float.
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
        if not ready:  # a Fraction (or a subclass): its slots, read by C descriptors
            try:
                n = _numerator(node)
            except _TypeError:
                pass
            else:
                result, ready = _rational(n, _denominator(node), as_float), True
        if not ready:
            kind, extra = -1, None
            for k, view in _views:
                try:
                    items = _list(view(node))
                except _TypeError:
                    continue
                kind = k
                break
            if kind < 0:
                for convert, twice in _conversions:
                    try:
                        result = convert(node, node) if twice else convert(node)
                    except _TypeError:
                        continue
                    for s in _scalars:
                        if _type(result) is s:
                            ready = True
                    break
                if not ready:
                    raise _Fail("code_eval: a value the tests check is not plain data")
            elif _len(stack) >= _depth or (kind == 7 and (stack or not loose)):
                raise _Fail("code_eval: a value the tests check is not plain data")
            elif kind == 2:
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
            if not ready:
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
            elif kind == 1 or kind == 7:
                result = _tuple(out)
            elif kind == 2 or kind == 6:
                result = {} if kind == 2 else _odict()
                for i in _range(0, _len(out), 2):
                    result[out[i]] = out[i + 1]
            elif kind == 3:
                result = _set(out)
            elif kind == 4:
                try:
                    result = _frozenset(out)
                except _TypeError:  # an items() view whose values are not hashable
                    raise _Fail("code_eval: a dict view of unhashable values") from None
            else:
                result = _deque(out, top[4])
            ready = True


def __router_operand__(value, _plain=__router_plain__):
    # An operand of arithmetic in an assert: plain data, a Fraction as its float.
    return _plain(value, False, True)


def __router_ratio__(
    x, _type=type, _int=int, _float=float, _Decimal=__router_decimal__.Decimal,
    _marker=__router_marker__, _tuple=tuple, _len=len, _float_ratio=float.as_integer_ratio,
    _decimal_ratio=__router_decimal__.Decimal.as_integer_ratio,
    _nan=__router_decimal__.Decimal.is_nan, _infinite=__router_decimal__.Decimal.is_infinite,
    _signed=__router_decimal__.Decimal.is_signed, _bool=bool, _inf=float("inf"),
    _Fail=AssertionError,
):
    # A plain number as (numerator, denominator >= 0): infinities as (+-1, 0); None for NaN.
    t = _type(x)
    if t is _tuple and _len(x) == 3 and x[0] is _marker:
        return x[1], x[2]
    if t is _int or t is _bool:
        return x * 1, 1
    if t is _float:
        if x != x:
            return None
        if x == _inf or x == -_inf:
            return (1 if x > 0 else -1), 0
        return _float_ratio(x)
    if t is _Decimal:
        if _nan(x):
            return None
        if _infinite(x):
            return (-1 if _signed(x) else 1), 0
        return _decimal_ratio(x)
    raise _Fail("code_eval: a Fraction ordered against what is not a number")


def __router_cmp__(
    op, left, right, _plain=__router_plain__, _ratio=__router_ratio__,
    _marker=__router_marker__, _type=type, _tuple=tuple, _len=len, _Fail=AssertionError,
):
    if op == "is":
        return left is right
    if op == "is not":
        return left is not right
    left = _plain(left)
    right = _plain(right, op == "in" or op == "not in")  # a values() view is a sequence there
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "in":
        return left in right
    if op == "not in":
        return left not in right
    for side in (left, right):  # a fraction equal to no float or Decimal: exact ratios
        if _type(side) is _tuple and _len(side) == 3 and side[0] is _marker:
            a, b = _ratio(left), _ratio(right)
            if a is None or b is None:  # NaN: unordered
                return False
            left, right = a[0] * b[1], b[0] * a[1]
            break
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
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
    return _bool(_plain(value, True))
"""
