"""The code_eval harness's wire: the program text (`WIRE`) that turns a value into JSON text and
back, for the pipes between the tests' process and the answer's (harness_remote.py); code_harness.py
runs it in the sandbox, after its imports and before the answer.

One job: a value crosses as a copy made of plain data, or as a reference. The receiving side
builds the copy itself, from the JSON its own C scanner parsed, out of the types below and
nothing else, so what the answer's process sends can only ever be data:

- None, bool, int (hex beyond 18 digits), float (nan and infinities tagged), str (one with
  surrogate code points as UTF-32, which JSON would pair), bytes, bytearray, complex;
- list, tuple, set, frozenset, dict; collections' deque (with its maxlen), OrderedDict (in its
  order), Counter, defaultdict (its factory a builtin class, or a reference) and namedtuples
  (rebuilt as a namedtuple of the same name and fields, else a tuple); dict views (keys,
  values, items: views of a dict rebuilt from them); range;
- decimal.Decimal (its exact text), fractions.Fraction (its two slots), datetime's date,
  datetime, time (naive or at a fixed `timezone`), timedelta and timezone; builtin classes
  (`int`, `ValueError`) by name;
- a subclass of any of those is its base value, read by the base type's own C methods (an
  `IntEnum` is its int, a `date` subclass its date, a `Counter` subclass a Counter).

Anything else is a reference: the answer's process keeps the object and sends its number
(`["x", n]`), which the tests' side turns into an `AnswerObject` (harness_remote.py); a
reference sent back (`["y", n]`) is the receiver's own object again. The tests' side sends the
answer plain data, the answer's own objects, builtin functions by name, an iterator as the
items it yields, and a callable as a reference the answer can only call; anything else is an
error (a TypeError in the tests). Containers go 100 deep; deeper is a reference.

The functions take what they use as default arguments bound before the answer ran and read no
global name (the answer's process runs them after the answer, which may have rebound builtins).
"""

WIRE = r"""
__router_wire_bases__ = {
    int: "int", float: "float", complex: "complex", str: "str", bytes: "bytes",
    bytearray: "bytearray", list: "list", tuple: "tuple", set: "set", frozenset: "frozenset",
    dict: "dict", range: "range", __router_collections__.OrderedDict: "odict",
    __router_collections__.Counter: "counter", __router_collections__.defaultdict: "ddict",
    __router_collections__.deque: "deque", __router_decimal__.Decimal: "decimal",
    __router_fractions__.Fraction: "fraction", __router_datetime__.datetime: "datetime",
    __router_datetime__.date: "date", __router_datetime__.time: "time",
    __router_datetime__.timedelta: "timedelta", __router_datetime__.timezone: "timezone",
    type({}.keys()): "keys", type({}.values()): "values", type({}.items()): "items",
}  # fmt: skip
# The JSON tag that opens each container kind, and how its items are read (C methods).
__router_wire_tags__ = {
    "list": '["l"', "tuple": '["t"', "set": '["s"', "frozenset": '["S"', "dict": '["d"',
    "odict": '["o"', "counter": '["C"', "keys": '["K"', "values": '["V"', "items": '["IV"',
    "date": '["date"', "datetime": '["dt"', "time": '["tm"', "timedelta": '["td"',
}  # fmt: skip
__router_wire_reads__ = {
    "list": vars(list)["__iter__"], "tuple": vars(tuple)["__iter__"],
    "set": vars(set)["__iter__"], "frozenset": vars(frozenset)["__iter__"],
    "deque": vars(__router_collections__.deque)["__iter__"], "dict": vars(dict)["items"],
    "counter": vars(dict)["items"], "ddict": vars(dict)["items"],
    "odict": vars(__router_collections__.OrderedDict)["items"], "keys": iter, "values": iter,
    "items": iter,
    "date": tuple(vars(__router_datetime__.date)[k].__get__ for k in ("year", "month", "day")),
    "datetime": tuple(vars(__router_datetime__.date)[k].__get__ for k in (
        "year", "month", "day")) + tuple(vars(__router_datetime__.datetime)[k].__get__ for k in (
        "hour", "minute", "second", "microsecond", "fold")),
    "time": tuple(vars(__router_datetime__.time)[k].__get__ for k in (
        "hour", "minute", "second", "microsecond", "fold")),
    "timedelta": tuple(vars(__router_datetime__.timedelta)[k].__get__ for k in (
        "days", "seconds", "microseconds")),
    "range": tuple(vars(range)[k].__get__ for k in ("start", "stop", "step")),
}  # fmt: skip


def __router_text__(
    s, out, _quote=__router_json__.encode_basestring_ascii, _isascii=str.isascii,
    _encode=str.encode, _hex=bytes.hex, _append=list.append, _Unicode=UnicodeEncodeError,
):
    # A str as JSON text; one with surrogate code points (which JSON pairs up) as UTF-32.
    if not _isascii(s):
        try:
            _encode(s, "utf-8")
        except _Unicode:
            _append(out, '["su","' + _hex(_encode(s, "utf-32-le", "surrogatepass")) + '"]')
            return
    _append(out, _quote(s))


def __router_encode__(
    value, link, out, again, depth=0, strict=False, _type=type, _bool=bool, _int=int,
    _float=float, _str=str, _bytes=bytes, _tuple=tuple, _list=list, _len=len, _id=id,
    _get=dict.get, _append=list.append, _iter=iter, _getattr=getattr, _callable=callable,
    _int_repr=vars(int)["__repr__"], _int_format=vars(int)["__format__"],
    _float_repr=vars(float)["__repr__"], _text=__router_text__,
    _mro=vars(type)["__mro__"].__get__, _name=vars(type)["__name__"].__get__,
    _bases=__router_wire_bases__, _tags=__router_wire_tags__, _reads=__router_wire_reads__,
    _classes=frozenset(v for v in vars(__router_builtins__).values() if type(v) is type),
    _functions={id(v): (k, v) for k, v in vars(__router_builtins__).items()
                if type(v) is type(len)},
    _as_int=vars(int)["__int__"], _as_float=vars(float)["__float__"],
    _as_complex=vars(complex)["__complex__"], _as_str=vars(str)["__str__"],
    _as_bytes=vars(bytes)["__bytes__"], _real=vars(complex)["real"].__get__,
    _imag=vars(complex)["imag"].__get__, _hex=vars(bytes)["hex"],
    _bytearray_hex=vars(bytearray)["hex"],
    _factory=vars(__router_collections__.defaultdict)["default_factory"].__get__,
    _maxlen=vars(__router_collections__.deque)["maxlen"].__get__,
    _decimal_str=vars(__router_decimal__.Decimal)["__str__"],
    _numerator=vars(__router_fractions__.Fraction)["_numerator"].__get__,
    _denominator=vars(__router_fractions__.Fraction)["_denominator"].__get__,
    _zones={"datetime": vars(__router_datetime__.datetime)["tzinfo"].__get__,
            "time": vars(__router_datetime__.time)["tzinfo"].__get__},
    _zone_args=vars(__router_datetime__.timezone)["__getinitargs__"],
    _timezone=__router_datetime__.timezone, _big=10**18, _inf=float("inf"),
    _TypeError=TypeError, _depth=100,
):
    # Appends the JSON text of `value` to `out` (see harness_wire.py). `strict`: plain data
    # only, else a TypeError (an exception's arguments).
    t = _type(value)
    if value is None:
        _append(out, "null")
        return
    if t is _bool:
        _append(out, "true" if value else "false")
        return
    kind = _get(_bases, t)
    if kind is None:
        i = _get(link["imported_ids"], _id(value))
        if i is not None and link["imported"][i] is value:  # the receiver's own object
            _append(out, '["y",' + _int_repr(i) + "]")
            return
        if t is _type and value in _classes:
            _append(out, '["T",')
            _text(_name(value), out)
            _append(out, "]")
            return
        known = _get(_functions, _id(value))
        if link["side"] == "tests" and known is not None and known[1] is value:
            _append(out, '["B",')  # `len`, `abs`: the answer's process has its own
            _text(known[0], out)
            _append(out, "]")
            return
        for base in _mro(t)[1:]:  # a subclass: its base value, read by the base's C methods
            kind = _get(_bases, base)
            if kind is not None:
                break
    # Scalars, whatever the depth.
    if kind == "int":
        value = value if t is _int else _as_int(value)
        if -_big < value < _big:
            _append(out, _int_repr(value))
        else:
            _append(out, '["I","' + _int_format(value, "x") + '"]')
        return
    if kind == "float":
        value = value if t is _float else _as_float(value)
        if value != value:
            _append(out, '["f","nan"]')
        elif value == _inf or value == -_inf:
            _append(out, '["f","inf"]' if value > 0 else '["f","-inf"]')
        else:
            _append(out, _float_repr(value))
        return
    if kind == "str":
        _text(value if t is _str else _as_str(value), out)
        return
    if kind == "bytes":
        _append(out, '["b","' + _hex(value if t is _bytes else _as_bytes(value)) + '"]')
        return
    if kind == "bytearray":
        _append(out, '["ba","' + _bytearray_hex(value) + '"]')
        return
    if kind == "complex":
        value = _as_complex(value)
        _append(out, '["c",')
        again(_real(value), link, out, again, depth + 1, strict)
        _append(out, ",")
        again(_imag(value), link, out, again, depth + 1, strict)
        _append(out, "]")
        return
    if kind == "decimal":
        _append(out, '["D",')
        _text(_decimal_str(value), out)
        _append(out, "]")
        return
    if kind == "fraction":  # its slots, if they hold a ratio of ints
        n, d = _numerator(value), _denominator(value)
        if _type(n) is _int and _type(d) is _int and d > 0:
            _append(out, '["F",')
            again(n, link, out, again, depth + 1, strict)
            _append(out, ",")
            again(d, link, out, again, depth + 1, strict)
            _append(out, "]")
            return
        kind = None
    if kind == "timezone":
        args = _zone_args(value)
        _append(out, '["tz",')
        again(args[0], link, out, again, depth + 1, strict)
        _append(out, ",")
        again(args[1] if _len(args) > 1 else None, link, out, again, depth + 1, strict)
        _append(out, "]")
        return
    zone = None
    if kind == "datetime" or kind == "time":
        zone = _zones[kind](value)
        if zone is not None and _type(zone) is not _timezone:
            kind = None  # a time zone of another kind: a reference
    if kind in ("date", "datetime", "time", "timedelta", "range"):
        _append(out, _tags[kind] if kind != "range" else '["r"')
        for read in _reads[kind]:
            _append(out, ",")
            again(read(value), link, out, again, depth + 1, strict)
        if kind == "datetime" or kind == "time":
            _append(out, ",")
            again(zone, link, out, again, depth + 1, strict)
        _append(out, "]")
        return
    # Containers, 100 deep.
    if kind == "tuple" and t is not _tuple and depth < _depth:  # a namedtuple: name, fields
        fields = _getattr(t, "_fields", None)
        if _type(fields) is _tuple:
            for f in fields:
                if _type(f) is not _str:
                    fields = None
                    break
        if _type(fields) is _tuple:
            _append(out, '["n",')
            _text(_name(t), out)
            _append(out, ',["l"')
            for f in fields:
                _append(out, ",")
                _text(f, out)
            _append(out, "]")
            for item in _list(_reads["tuple"](value)):
                _append(out, ",")
                again(item, link, out, again, depth + 1, strict)
            _append(out, "]")
            return
    if kind is not None and depth < _depth:
        if kind == "deque":
            _append(out, '["q",')
            again(_maxlen(value), link, out, again, depth + 1, strict)
        elif kind == "ddict":
            _append(out, '["dd",')
            again(_factory(value), link, out, again, depth + 1, strict)
        else:
            _append(out, _tags[kind])
        pairs = kind in ("dict", "odict", "counter", "ddict", "items")
        for item in _list(_reads[kind](value)):
            if pairs:
                _append(out, ",")
                again(item[0], link, out, again, depth + 1, strict)
                item = item[1]
            _append(out, ",")
            again(item, link, out, again, depth + 1, strict)
        _append(out, "]")
        return
    # Not plain data: a reference, where this side sends one.
    if strict:
        raise _TypeError("code_eval: not plain data")
    if link["side"] == "tests" and not _callable(value):
        if _getattr(t, "__next__", None) is not None and _iter(value) is value:
            _append(out, '["it"')  # an iterator of the tests': the items it yields
            for item in _list(value):
                _append(out, ",")
                again(item, link, out, again, depth + 1, strict)
            _append(out, "]")
            return
        raise _TypeError(
            "code_eval: the tests pass the answer a " + _name(t) + ", which is neither plain "
            "data nor callable"
        )
    i = _get(link["exported_ids"], _id(value))
    if i is None or link["exported"][i] is not value:
        i = _len(link["exported"])
        _append(link["exported"], value)
        link["exported_ids"][_id(value)] = i
    _append(out, '["x",' + _int_repr(i) + "]")


def __router_decode__(
    node, link, again, depth=0, _type=type, _None=type(None), _bool=bool, _int=int,
    _float=float, _str=str, _list=list, _tuple=tuple, _set=set, _frozenset=frozenset,
    _dict=dict, _len=len, _iter=iter, _range=range, _get=dict.get, _append=list.append,
    _callable=callable, _fromhex=bytes.fromhex, _bytearray=bytearray.fromhex,
    _decode=bytes.decode, _complex=complex, _Decimal=__router_decimal__.Decimal,
    _Fraction=__router_fractions__.Fraction, _date=__router_datetime__.date,
    _datetime=__router_datetime__.datetime, _time=__router_datetime__.time,
    _timedelta=__router_datetime__.timedelta, _timezone=__router_datetime__.timezone,
    _deque=__router_collections__.deque, _odict=__router_collections__.OrderedDict,
    _Counter=__router_collections__.Counter, _ddict=__router_collections__.defaultdict,
    _namedtuple=__router_collections__.namedtuple, _fromkeys=dict.fromkeys,
    _keys=dict.keys, _values=dict.values, _items=dict.items,
    _classes={k: v for k, v in vars(__router_builtins__).items() if type(v) is type},
    _functions={k: v for k, v in vars(__router_builtins__).items() if type(v) is type(len)},
    _floats={"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")},
    _Bad=ValueError, _Exception=Exception, _depth=200,
):
    # The value that `node` (parsed JSON) stands for; ValueError (or what a constructor
    # raises) when it is not a value this wire sends.
    t = _type(node)
    if t is _None or t is _bool or t is _int or t is _float or t is _str:
        return node
    if t is not _list or not node or _type(node[0]) is not _str or depth > _depth:
        raise _Bad("code_eval: a malformed value")
    tag, n = node[0], _len(node)
    if tag == "I" or tag == "f" or tag == "su" or tag == "b" or tag == "ba" or tag == "D":
        if n != 2 or _type(node[1]) is not _str:
            raise _Bad("code_eval: a malformed value")
        text = node[1]
        if tag == "I":
            return _int(text, 16)
        if tag == "f":
            return _floats[text]
        if tag == "su":
            return _decode(_fromhex(text), "utf-32-le", "surrogatepass")
        if tag == "b":
            return _fromhex(text)
        if tag == "ba":
            return _bytearray(text)
        return _Decimal(text)
    if tag == "T" or tag == "B" or tag == "x" or tag == "y":
        if n != 2:
            raise _Bad("code_eval: a malformed value")
        key = node[1]
        if tag == "T" and _type(key) is _str and key in _classes:
            return _classes[key]
        if tag == "B" and link["side"] == "answer" and _type(key) is _str and key in _functions:
            return _functions[key]
        if tag == "x" and _type(key) is _int and key >= 0:
            return link["proxy"](link, key)
        if tag == "y" and _type(key) is _int and 0 <= key < _len(link["exported"]):
            return link["exported"][key]
        raise _Bad("code_eval: a malformed reference")
    items = []
    for x in node[1:]:
        _append(items, again(x, link, again, depth + 1))
    if tag == "l":
        return items
    if tag == "t":
        return _tuple(items)
    if tag == "s":
        return _set(items)
    if tag == "S":
        return _frozenset(items)
    if tag == "it" and link["side"] == "answer":
        return _iter(items)
    if tag == "q" and items and (items[0] is None or _type(items[0]) is _int):
        return _deque(items[1:], items[0])
    if tag == "n" and n >= 3 and _type(items[0]) is _str and _type(items[1]) is _list:
        key = (items[0], _tuple(items[1]))
        made = _get(link["tuples"], key)
        if made is None:  # a namedtuple of that name and fields, made once
            made = _tuple
            try:
                made = _namedtuple(items[0], items[1])
            except _Exception:
                pass
            link["tuples"][key] = made
        values = items[2:]
        if made is not _tuple and _len(values) == _len(items[1]):
            return made(*values)
        return _tuple(values)
    if tag in ("d", "o", "C", "dd", "IV"):
        first = 1 if tag == "dd" else 0
        if (_len(items) - first) % 2 or (tag == "dd" and not items):
            raise _Bad("code_eval: a malformed mapping")
        if tag == "dd":
            factory = items[0]
            if factory is not None and not _callable(factory):
                raise _Bad("code_eval: a malformed defaultdict")
            made = _ddict(factory)
        else:
            made = {"d": _dict, "o": _odict, "C": _Counter, "IV": _dict}[tag]()
        for i in _range(first, _len(items), 2):
            made[items[i]] = items[i + 1]
        return _items(made) if tag == "IV" else made
    if tag == "K":
        return _keys(_fromkeys(items))
    if tag == "V":
        made = {}
        for i in _range(_len(items)):
            made[i] = items[i]
        return _values(made)
    ints = True
    for x in items:
        if _type(x) is not _int:
            ints = False
    if tag == "c" and n == 3 and _type(items[0]) is _float and _type(items[1]) is _float:
        return _complex(items[0], items[1])
    if tag == "F" and n == 3 and ints and items[1] != 0:
        return _Fraction(items[0], items[1])
    if tag == "r" and n == 4 and ints:
        return _range(items[0], items[1], items[2])
    if tag == "td" and n == 4 and ints:
        return _timedelta(items[0], items[1], items[2])
    if tag == "tz" and n == 3 and _type(items[0]) is _timedelta:
        if items[1] is None:
            return _timezone(items[0])
        if _type(items[1]) is _str:
            return _timezone(items[0], items[1])
    if tag == "date" and n == 4 and ints:
        return _date(items[0], items[1], items[2])
    if (tag == "dt" and n == 10) or (tag == "tm" and n == 7):
        zone, fields, ints = items[-1], items[:-1], True
        for x in fields:
            if _type(x) is not _int:
                ints = False
        if ints and (zone is None or _type(zone) is _timezone):
            if tag == "tm":
                return _time(*fields[:4], tzinfo=zone, fold=fields[4])
            return _datetime(*fields[:7], tzinfo=zone, fold=fields[7])
    raise _Bad("code_eval: a malformed value")


def __router_dead__(
    link, why, _write=__router_os__.write, _exit=__router_os__._exit, _encode=str.encode,
    _out=__router_sys__.stdout, _err=__router_sys__.stderr,
):
    # The other process is gone or sent what this wire never sends: the tests' process fails
    # (status 1, before the completion verdict); the answer's process just ends.
    try:
        _out.flush()
        _err.flush()
        if link["side"] == "tests":
            _write(2, _encode("code_eval: " + why + "\n", "ascii", "replace"))
    finally:
        _exit(1 if link["side"] == "tests" else 0)


def __router_send__(
    link, text, _encode=str.encode, _to_bytes=int.to_bytes, _len=len,
    _write=__router_os__.write, _view=memoryview, _dead=__router_dead__,
):
    # One message: its length (8 bytes), then its JSON text.
    try:
        data = _encode(text, "ascii")
        view = _view(_to_bytes(_len(data), 8, "big") + data)
        while _len(view):
            view = view[_write(link["out"], view) :]
    except:  # noqa: E722 - bare: whatever the other side did, this side stops here
        _dead(link, "the answer's process stopped reading (it exited or crashed)")


def __router_receive__(
    link, _read=__router_os__.read, _from_bytes=int.from_bytes, _join=b"".join,
    _decode=bytes.decode, _scan=__router_scanner__, _type=type, _list=list, _len=len,
    _min=min, _append=list.append, _dead=__router_dead__, _limit=1 << 30,
):
    # The next message, parsed; the process ends (see __router_dead__) on an end of file or
    # on anything but a JSON list.
    value = None
    try:
        size = 8
        for part in ("head", "body"):
            chunks, got = [], 0
            while got < size:
                chunk = _read(link["in"], _min(size - got, 1 << 20))
                if not chunk:
                    break
                _append(chunks, chunk)
                got += _len(chunk)
            if got < size:
                break
            data = _join(chunks)
            if part == "head":
                size = _from_bytes(data, "big")
                if size > _limit:
                    break
            else:
                text = _decode(data, "ascii")
                value, end = _scan(text, 0)
                if end != _len(text) or _type(value) is not _list or not value:
                    value = None
    except:  # noqa: E722 - bare: a message this wire cannot read ends the run
        value = None
    if value is None:
        _dead(link, "the answer's process ended or sent a malformed message (see above)")
    return value
"""
