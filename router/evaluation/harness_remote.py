"""The code_eval harness's two processes: the program text (`REMOTE`) that forks the answer's
process and lets the tests call into it (code_harness.py runs it in the sandbox, after WIRE and
before `__router_run__`).

One job: no code of the answer ever runs in the tests' process. Before the answer's code is
compiled, the harness forks; the child runs the answer, the original process the tests. A value
crosses the two pipes between them as a copy made of plain data, or as a reference
(harness_wire.py). So nothing the answer does to its own interpreter (a class's methods, a
module's tables or its functions' globals, the builtins, `random`'s state, the decimal context,
a thread left running) reaches the types, modules and values the tests compute and compare
with: those are the tests' process's own, untouched.

- The tests' side: each name of the answer's that the tests use (`candidate`, MBPP's function)
  is what the answer's process sent for it: a copy of plain data, or an `AnswerObject`, which
  forwards a call, `len`, iteration (a batch of items at a time), indexing, `in`, truth, `str`,
  `repr` and attribute reads to the answer's process and returns what comes back, a copy or
  another `AnswerObject`. An AnswerObject is not plain data, so it fails every comparison in an
  assert (harness_values.py) as the answer's own object did; outside an assert it compares by
  identity. An exception the answer raises is raised in the tests as the nearest builtin
  exception class in its class's MRO (its own class's name in the message when that is not a
  builtin), with its arguments when they are plain data.
- The answer's side: after the answer ran, a loop serves those requests on the objects it sent
  (and only those) until the tests' process closes the pipe; it never returns to the program.
  What the tests hand the answer arrives as a copy; a function of the tests' as a reference the
  answer can only call: the call runs in the tests' process, on copies, and its result comes
  back as one. So no object of the tests', nor its `__globals__`, is the answer's to read or
  change, and a mutation of an argument stays in the answer's process.
- The tests' side ends (status 1, before the completion verdict) when the answer's process
  ends or sends anything malformed; the tests' `random` is reseeded after the fork, so the
  answer's process cannot draw the numbers the tests will.

The fork is retried for a few seconds when the process limit is reached for the moment; after
that the run fails (it never falls back to one process). Like the rest of the harness, the
functions read no global name and take what they use as defaults bound before the answer ran.
"""

REMOTE = r"""
# This process's end of the pipes, set by __router_start__ after the fork: which side it is,
# its descriptors, the requests it serves, and the objects each side sent the other.
__router_link__ = {
    "side": "", "in": -1, "out": -1, "verbs": (), "proxy": None, "exported": [],
    "exported_ids": {}, "imported": {}, "imported_ids": {}, "tuples": {},
}  # fmt: skip


def __router_failure__(
    link, error, _type=type, _str=str, _mro=vars(type)["__mro__"].__get__,
    _name=vars(type)["__name__"].__get__, _args=vars(BaseException)["args"].__get__,
    _encode=__router_encode__, _text=__router_text__, _append=list.append, _join="".join,
):
    # An exception as JSON text: [its class's names along the MRO, str(it), its args or None].
    out = ['["l",["l"']
    for c in _mro(_type(error)):
        _append(out, ",")
        _text(_name(c), out)
    _append(out, "],")
    try:
        message = _str(error)
        if _type(message) is not _str:
            message = ""
    except:  # noqa: E722 - the answer's __str__, whatever it raises
        message = ""
    _text(message, out)
    _append(out, ",")
    args = []
    try:
        _encode(_args(error), link, args, _encode, 0, True)
    except:  # noqa: E722 - not plain data: the message only
        args = ["null"]
    return _join(out) + _join(args) + "]"


def __router_error__(
    failure, _type=type, _list=list, _str=str, _tuple=tuple, _len=len, _get=dict.get,
    _name=vars(type)["__name__"].__get__,
    _exceptions={k: v for k, v in vars(__router_builtins__).items()
                 if type(v) is type and issubclass(v, BaseException)},
    _Exception=Exception, _Bad=ValueError,
):
    # The exception a decoded failure stands for: the nearest builtin class in its MRO.
    if _type(failure) is not _list or _len(failure) != 3:
        raise _Bad("code_eval: a malformed failure")
    names, message, args = failure
    if _type(names) is not _list or not names or _type(message) is not _str:
        raise _Bad("code_eval: a malformed failure")
    if args is not None and _type(args) is not _tuple:
        raise _Bad("code_eval: a malformed failure")
    chosen = _Exception
    for name in names:
        if _type(name) is _str and _get(_exceptions, name) is not None:
            chosen = _exceptions[name]
            break
    if names[0] != _name(chosen):  # a class of the answer's: its name, its text
        message = _str(names[0]) + ": " + message
        args = None
    for attempt in (args, (message,)):
        if attempt is not None:
            try:
                return chosen(*attempt)
            except _Exception:  # a class that wants other arguments
                pass
    return _Exception(message)


def __router_serve__(
    link, message, _type=type, _int=int, _str=str, _tuple=tuple, _dict=dict, _len=len,
    _iter=iter, _next=next, _bool=bool, _repr=repr, _getattr=getattr, _append=list.append,
    _join="".join, _decode=__router_decode__, _encode=__router_encode__,
    _failure=__router_failure__, _send=__router_send__, _exc_info=__router_sys__.exc_info,
    _Bad=ValueError,
):
    # Applies a request of the other process to an object this side sent it; replies.
    out = ['["ok",']
    try:
        verb = message[0]
        target = message[1] if _len(message) > 1 else None
        if verb not in link["verbs"] or _type(target) is not _int:
            raise _Bad("code_eval: a request this side does not serve")
        if not 0 <= target < _len(link["exported"]):
            raise _Bad("code_eval: a request for no object")
        obj = link["exported"][target]
        arg = _decode(message[2], link, _decode) if _len(message) > 2 else None
        if verb == "call":
            kwargs = _decode(message[3], link, _decode) if _len(message) > 3 else None
            if _type(arg) is not _tuple or _type(kwargs) is not _dict:
                raise _Bad("code_eval: a malformed call")
            result = obj(*arg, **kwargs)
        elif verb == "attr" and _type(arg) is _str:
            result = _getattr(obj, arg)
        elif verb == "item":
            result = obj[arg]
        elif verb == "contains":
            result = arg in obj
        elif verb == "next" and _type(arg) is _int:  # up to `arg` items, and what stopped it
            items, stop = [], None
            while arg > 0 and stop is None:
                arg -= 1
                try:
                    _append(items, _next(obj))
                except:  # noqa: E722 - StopIteration, or what the iterator raised
                    stop = _exc_info()[1]
            _append(out, '["t",')
            _encode(items, link, out, _encode)
            _append(out, "," + ("null" if stop is None else _failure(link, stop)) + "]")
            result = out  # already written
        elif verb in ("iter", "len", "bool", "str", "repr"):
            result = {"iter": _iter, "len": _len, "bool": _bool, "str": _str, "repr": _repr}[
                verb
            ](obj)
        else:
            raise _Bad("code_eval: a malformed request")
        if result is not out:
            _encode(result, link, out, _encode)
        _append(out, "]")
    except:  # noqa: E722 - bare: what the call raised, SystemExit too, goes back
        out = ['["err",', _failure(link, _exc_info()[1]), "]"]
    _send(link, _join(out))


def __router_wait__(
    link, _receive=__router_receive__, _decode=__router_decode__, _error=__router_error__,
    _serve=__router_serve__, _dead=__router_dead__, _len=len, _type=type,
    _stops=(StopIteration, StopAsyncIteration), _Runtime=RuntimeError, _Bad=ValueError,
):
    # The reply to this side's last request; a request of the other side that comes first
    # (the answer calling a function of the tests', which calls the answer, ...) is served.
    # A StopIteration out of a call is a RuntimeError, as out of a generator (PEP 479): it
    # would end the tests' loop over `map(candidate, cases)` before a single assert.
    while True:
        message = _receive(link)
        kind = message[0]
        if kind != "ok" and kind != "err":
            _serve(link, message)
            continue
        error = None
        try:
            if _len(message) != 2:
                raise _Bad("code_eval: a malformed reply")
            value = _decode(message[1], link, _decode)
            if kind == "err":
                error = _error(value)
                if _type(error) in _stops:
                    error = _Runtime("code_eval: the answer raised " + _type(error).__name__)
        except:  # noqa: E722 - bare: nothing the other process sends may escape as is
            _dead(link, "the answer's process sent a malformed message")
        if error is not None:
            raise error
        return value


def __router_request__(
    link, verb, target, *values, _encode=__router_encode__, _send=__router_send__,
    _wait=__router_wait__, _int_repr=vars(int)["__repr__"], _append=list.append,
    _join="".join,
):
    # Asks the other process to apply `verb` to its object `target`; returns its reply.
    out = ['["', verb, '",', _int_repr(target)]
    for value in values:
        _append(out, ",")
        _encode(value, link, out, _encode)
    _append(out, "]")
    _send(link, _join(out))
    return _wait(link)


# An object of the answer's, seen from the tests' process (see harness_remote.py).
def __router_object_call__(
    self, *args, _router_link=__router_link__, _router_request=__router_request__, **kwargs
):
    return _router_request(_router_link, "call", self._router_id, args, kwargs)


def __router_object_attr__(self, name, _link=__router_link__, _request=__router_request__):
    return _request(_link, "attr", self._router_id, name)


def __router_object_iter__(
    self, _link=__router_link__, _request=__router_request__, _type=type, _iter=iter
):
    made = _request(_link, "iter", self._router_id)
    return made if _type(made) is _type(self) else _iter(made)


def __router_object_next__(
    self, _link=__router_link__, _request=__router_request__, _error=__router_error__,
    _dead=__router_dead__, _type=type, _tuple=tuple, _list=list, _len=len, _min=min,
    _pop=list.pop,
):
    # The next item; they come in batches (1, 2, 4, ... 256), so `list()` of a long
    # generator is not a round trip per item, while one `next()` draws one.
    if not self._router_items:
        if self._router_stop is None:
            size = self._router_size
            self._router_size = _min(size * 2, 256)
            reply = _request(_link, "next", self._router_id, size)
            if (
                _type(reply) is not _tuple
                or _len(reply) != 2
                or _type(reply[0]) is not _list
                or (not reply[0] and reply[1] is None)
            ):
                _dead(_link, "the answer's process sent a malformed message")
            self._router_items, self._router_stop = reply
        if not self._router_items:
            stop, self._router_stop = self._router_stop, None
            raise _error(stop)
    return _pop(self._router_items, 0)


def __router_object_len__(self, _link=__router_link__, _request=__router_request__):
    return _request(_link, "len", self._router_id)


def __router_object_item__(self, key, _link=__router_link__, _request=__router_request__):
    return _request(_link, "item", self._router_id, key)


def __router_object_contains__(
    self, key, _link=__router_link__, _request=__router_request__
):
    return _request(_link, "contains", self._router_id, key)


def __router_object_bool__(self, _link=__router_link__, _request=__router_request__):
    return _request(_link, "bool", self._router_id)


def __router_object_str__(self, _link=__router_link__, _request=__router_request__):
    return _request(_link, "str", self._router_id)


def __router_object_repr__(self, _link=__router_link__, _request=__router_request__):
    return _request(_link, "repr", self._router_id)


__router_AnswerObject__ = type("AnswerObject", (), {
    "__slots__": ("_router_id", "_router_items", "_router_size", "_router_stop"),
    "__module__": "code_eval", "__call__": __router_object_call__,
    "__getattr__": __router_object_attr__, "__iter__": __router_object_iter__,
    "__next__": __router_object_next__, "__len__": __router_object_len__,
    "__getitem__": __router_object_item__, "__contains__": __router_object_contains__,
    "__bool__": __router_object_bool__, "__str__": __router_object_str__,
    "__repr__": __router_object_repr__,
})  # fmt: skip


def __router_object__(
    link, i, _get=dict.get, _id=id, _new=object.__new__, _class=__router_AnswerObject__
):
    # The tests' side: the AnswerObject for the answer's object number i (one per object).
    made = _get(link["imported"], i)
    if made is None:
        made = _new(_class)
        made._router_id, made._router_items, made._router_size = i, [], 1
        made._router_stop = None
        link["imported"][i] = made
        link["imported_ids"][_id(made)] = i
    return made


def __router_callback__(link, target, /, *args, _router_request=__router_request__, **kwargs):
    # The answer's side: a call of a function of the tests', run in the tests' process.
    return _router_request(link, "call", target, args, kwargs)


def __router_callable__(
    link, i, _get=dict.get, _id=id, _partial=__router_functools__.partial,
    _call=__router_callback__,
):
    # The answer's side: what it is handed for the tests' callable number i.
    made = _get(link["imported"], i)
    if made is None:
        made = _partial(_call, link, i)
        link["imported"][i] = made
        link["imported_ids"][_id(made)] = i
    return made


def __router_answer__(
    answer, wanted, link, _compile=compile, _exec=exec, _builtins=__router_builtins__,
    _lines=__router_linecache__.cache, _len=len, _get=dict.get, _splitlines=str.splitlines,
    _append=list.append, _join="".join, _text=__router_text__, _encode=__router_encode__,
    _failure=__router_failure__, _send=__router_send__, _receive=__router_receive__,
    _serve=__router_serve__, _dead=__router_dead__, _exc_info=__router_sys__.exc_info,
):
    # The answer's process: runs the answer, sends the tests the names they use (the
    # failure, if it raised), then serves their requests; it ends, never returns.
    try:
        # Its text, for its tracebacks and `inspect`; the tests' is not in this process's files.
        _lines["<answer>"] = (_len(answer), None, _splitlines(answer, True), "<answer>")
        out = ['["ok",["l"']
        try:
            namespace = {"__name__": "__main__", "__builtins__": _builtins}
            _exec(_compile(answer, "<answer>", "exec"), namespace)
            for name in wanted:
                if name in namespace:
                    _append(out, ",")
                    _text(name, out)
                    _append(out, ",")
                    _encode(_get(namespace, name), link, out, _encode)
            _append(out, "]]")
        except:  # noqa: E722 - bare: SystemExit too; the tests raise it
            out = ['["err",', _failure(link, _exc_info()[1]), "]"]
        _send(link, _join(out))
        while True:
            _serve(link, _receive(link))
    finally:
        _dead(link, "")


def __router_start__(
    answer, wanted, link, _pipe=__router_os__.pipe, _fork=__router_os__.fork,
    _close=__router_os__.close, _sleep=__router_time__.sleep, _range=range, _str=str,
    _out=__router_sys__.stdout, _err=__router_sys__.stderr, _modules=__router_sys__.modules,
    _get=dict.get, _answer=__router_answer__, _wait=__router_wait__,
    _object=__router_object__, _callable=__router_callable__, _OSError=OSError,
    _Failed=RuntimeError,
):
    # Forks the answer's process (see harness_remote.py); in the tests' process, returns what
    # it sent once the answer ran: [name, value, name, value, ...].
    tests_in, answer_out = _pipe()
    answer_in, tests_out = _pipe()
    _out.flush()
    _err.flush()
    pid, why = -1, ""
    for attempt in _range(60):  # a full process table frees up as other runs end
        try:
            pid = _fork()
            break
        except _OSError as e:
            why = _str(e)
            _sleep(0.05)
    if pid < 0:
        raise _Failed("code_eval: no process for the answer: " + why)
    if pid == 0:
        _close(tests_in)
        _close(tests_out)
        link["side"], link["in"], link["out"], link["proxy"] = (
            "answer", answer_in, answer_out, _callable
        )
        link["verbs"] = ("call", "attr", "iter", "next", "len", "item", "contains", "bool",
                         "str", "repr")  # fmt: skip
        _answer(answer, wanted, link)
    _close(answer_in)
    _close(answer_out)
    link["side"], link["in"], link["out"], link["proxy"] = "tests", tests_in, tests_out, _object
    link["verbs"] = ("call",)  # the answer may only call what the tests handed it
    generator = _get(_modules, "random")
    if generator is not None:  # the answer's process holds the state forked with it
        generator.seed()
    return _wait(link)
"""
