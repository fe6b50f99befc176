"""The trusted program that runs inside the code sandbox, around the untrusted code.

Never imported by the router: `sandbox.py` copies this file's text into the sandbox as
`main.py`, followed by a call of `main()`, and the untrusted code as `program.py`. It uses the
bare standard library of the sandboxed interpreter.

Two jobs, in this order, before a line of the untrusted program is compiled:

1. **The completion verdict.** The parent sends a random token through a pipe; it is read here
   and the pipe closed, so it never appears in any file or argument the program can read. It is
   kept by an object that only an audit hook references (no Python name reaches it: the garbage
   collector's introspection is refused below), and that object writes it to the verdict pipe
   when it is destroyed *while the interpreter finalises* (`sys.is_finalizing()`, a C flag no
   Python code can set) in the original process. The harness turns any exception into
   `os._exit(1)`, which skips finalisation; so the token arrives only if the program ran to its
   end. An early `os._exit(0)` exits 0 without it; a forked child never sends it.
2. **The guard** (`audit=1`): an audit hook (PEP 578) that ends the process with status 1 on
   anything outside the rules, rather than raising (a raised exception would let the program
   catch it and walk the traceback into the guard's frame). It refuses file-system changes
   outside the scratch directory, more than `max_files` files created inside it (each under
   RLIMIT_FSIZE: the disk they take is bounded), sockets, processes, signals to other
   processes, native code, reading files outside the scratch directory and the standard
   library (/proc: memory), and the interpreter introspection that reaches other frames'
   objects (gc, tracing, code objects, frames, another audit hook). Functions that raise no
   audit event are replaced by refusing stand-ins, and the import machinery can no longer load
   native code or rebuild those modules.
   The hook only touches exact `str`/`bytes`/`int` arguments and captured C functions, so no
   program code ever runs inside it.

**No frame but its own.** Code that the harness's tests call must not reach the tests' frames
(their locals, their code's constants: the expected values). Every way CPython 3.11 hands out
a frame object raises an audit event: `sys._getframe` (refused with the ValueError it raises
past the top of the stack, which `collections.namedtuple`, `typing`, `enum` and `logging`
handle; the one refusal that raises, as a frame of its traceback is behind `tb_frame`) and
reading `tb_frame`, `gi_frame`, `cr_frame` or `ag_frame` (the process ends). Other threads'
frames, tracing and gc's object lists are refused, and `gc.set_debug` is replaced (its
DEBUG_SAVEALL would list unreachable frames in `gc.garbage`). A frame's `f_back` raises no
event, but no frame reaches the program. `_run` reads the program's file and removes it before
compiling it, so its text (the tests, in the harness) is not on disk while it runs, and shows a
failure with the interpreter's own C display, which reads tracebacks without those events. The
same display renders the traceback module's `format_exc`, `format_exception`, `print_exc`,
`print_exception` (and so `logging.exception`) and `format_exception_only`, replaced before
the program runs: a program that logs an exception it caught keeps running, and still gets no
frame. The traceback module's walk (`walk_tb`, and behind `extract_tb`, `format_tb`, `print_tb`
and `TracebackException`) is replaced too: it reads each link's line from `tb_lineno` and its
file and function from that display, and yields a stand-in holding only those for the frame.
"""

import sys

# Extension modules preloaded before the guard closes native-code loading: the standard
# library's plain-data modules. Anything else (ctypes, cffi, sqlite3, readline, syslog,
# subprocess's _posixsubprocess, shared memory, test modules; _asyncio, which would bring
# subprocess in) can then never be loaded. The interpreter runs with -S: no site-packages and
# no .pth files, so nothing else is imported before the guard.
SAFE_EXTENSIONS = (
    "_bisect", "_blake2", "_bz2", "_codecs_cn", "_codecs_hk", "_codecs_iso2022",
    "_codecs_jp", "_codecs_kr", "_codecs_tw", "_contextvars", "_csv", "_datetime", "_decimal",
    "_elementtree", "_hashlib", "_heapq", "_json", "_lzma", "_md5", "_multibytecodec",
    "_opcode", "_pickle", "_queue", "_random", "_sha1", "_sha256", "_sha3", "_sha512",
    "_socket", "_statistics", "_struct", "_typing", "_uuid", "_zoneinfo", "array", "binascii",
    "cmath", "fcntl", "grp", "math", "mmap", "pyexpat", "resource", "select", "termios",
    "unicodedata", "zlib",
    # Pure-Python modules programs commonly use, loaded while .pyc files may still be read.
    "collections", "functools", "itertools", "re", "string", "heapq", "bisect", "json",
    "decimal", "fractions", "statistics", "random", "datetime", "typing", "dataclasses",
    "copy", "operator", "hashlib", "textwrap", "traceback", "linecache",
)  # fmt: skip
# Never loaded, even where the interpreter has them built in: unaudited process creation,
# native calls, file writes from C (sqlite, dbm, readline history, syslog, shared memory).
DENIED_MODULES = frozenset((
    "_posixsubprocess", "_ctypes", "_ctypes_test", "_sqlite3", "_dbm", "_gdbm", "readline",
    "syslog", "_posixshmem", "_multiprocessing", "_xxsubinterpreters", "_xxinterpchannels",
    "_testcapi", "_testinternalcapi", "_testbuffer", "_testclinic", "_testmultiphase",
    "_testimportmultiple", "_xxtestfuzz", "_tkinter", "_curses", "_curses_panel", "nis",
    "spwd", "ossaudiodev", "_cffi_backend", "_asyncio",
))  # fmt: skip
READABLE_DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/full")
# Besides the scratch dir and the interpreter's prefix, the only files a program may read:
# time-zone data (zoneinfo's default search path).
READABLE_DIRS = ("/usr/share/zoneinfo/", "/usr/lib/zoneinfo/", "/usr/share/lib/zoneinfo/",
                 "/etc/zoneinfo/")  # fmt: skip
REFUSED_EVENTS = {
    "os.system": "starting processes",
    "os.exec": "starting processes",
    "os.posix_spawn": "starting processes",
    "os.spawn": "starting processes",
    "os.forkpty": "leaving the process group",  # the child calls setsid(): killpg misses it
    "subprocess.Popen": "starting processes",
    "os.killpg": "signalling other processes",
    "os.link": "hard links",
    "os.symlink": "symbolic links",
    "gc.get_objects": "gc introspection",
    "gc.get_referrers": "gc introspection",
    "gc.get_referents": "gc introspection",
    "sys._current_frames": "other threads' frames",
    "sys._current_exceptions": "other threads' frames",
    "sys.addaudithook": "adding an audit hook",  # it would see every event's objects
    "sys.settrace": "tracing",
    "sys.setprofile": "tracing",
    "code.__new__": "building code objects",
    "marshal.loads": "loading marshalled code",
    "marshal.load": "loading marshalled code",
    "sqlite3.connect": "sqlite3",
    "sqlite3.enable_load_extension": "sqlite3",
}


# Attributes that hand out a frame object (each raises `object.__getattr__` on 3.11).
FRAME_ATTRIBUTES = frozenset(("tb_frame", "gi_frame", "cr_frame", "ag_frame"))


def _refuser(what, _write, _exit, _encode=str.encode):
    """A stand-in for a function that raises no audit event (its own closure: no shared cell)."""

    def refused(*args, **kwargs):
        _write(2, _encode(f"sandbox: {what} is not allowed\n"))
        _exit(1)

    return refused


def _traceback_formatting(
    _display,
    _sys,
    _StringIO,
    _type=type,
    _str=str,
    _isinstance=isinstance,
    _BaseException=BaseException,
    _TypeError=TypeError,
    _ValueError=ValueError,
    _splitlines=str.splitlines,
):
    """The traceback module's formatting functions, rendered by the interpreter's own display
    (C) into a buffer: it reads the frames behind a traceback itself and hands none to Python
    code, so a program that logs an exception it caught keeps running while `tb_frame` stays
    refused. `limit` and `chain=False` are not honoured (the display shows the whole chain);
    the program's source lines are not shown (the display reads only files on disk)."""
    sentinel = object()

    def parse(exc, value, tb):  # the signatures of 3.10+: (exc) or (type, value, tb)
        if (value is sentinel) != (tb is sentinel):
            raise _ValueError("Both or neither of value and tb must be given")
        if value is sentinel:
            if exc is None:
                return None, None, None
            if not _isinstance(exc, _BaseException):
                raise _TypeError("format_exception() expects an exception")
            return _type(exc), exc, exc.__traceback__
        return exc, value, tb

    def render(exc, value, tb):
        if value is None:
            return "NoneType: None\n"
        buffer, saved = _StringIO(), _sys.stderr
        _sys.stderr = buffer  # the display writes to sys.stderr
        try:
            _display(_type(value), value, tb)
        finally:
            _sys.stderr = saved
        return buffer.getvalue()

    def format_exception(exc, /, value=sentinel, tb=sentinel, limit=None, chain=True):
        return _splitlines(render(*parse(exc, value, tb)), True)

    def format_exc(limit=None, chain=True):
        return render(*_sys.exc_info())

    def print_exception(exc, /, value=sentinel, tb=sentinel, limit=None, file=None, chain=True):
        (_sys.stderr if file is None else file).write(render(*parse(exc, value, tb)))

    def print_exc(limit=None, file=None, chain=True):
        (_sys.stderr if file is None else file).write(render(*_sys.exc_info()))

    def format_exception_only(exc, /, value=sentinel):
        value = exc if value is sentinel else value
        if value is None:
            return ["NoneType: None\n"]
        kind = _type(value)
        name, module = kind.__qualname__, kind.__module__
        if module not in ("__main__", "builtins"):
            name = _str(module) + "." + _str(name)
        try:
            text = _str(value)
        except _BaseException:
            text = "<exception str() failed>"
        return [(name + ": " + text if text else name) + "\n"]

    return {
        "format_exception": format_exception,
        "format_exc": format_exc,
        "print_exception": print_exception,
        "print_exc": print_exc,
        "format_exception_only": format_exception_only,
    }


def _traceback_walking(
    _display,
    _sys,
    _StringIO,
    _stand_in,
    _BaseException=BaseException,
    _int=int,
    _len=len,
    _startswith=str.startswith,
    _rpartition=str.rpartition,
    _partition=str.partition,
    _splitlines=str.splitlines,
    _isdigit=str.isdigit,
    _enumerate=enumerate,
    _min=min,
):
    """The traceback module's walk over a traceback, without a frame: `walk_tb`, and the walk
    behind `extract_tb`, `format_tb`, `print_tb` and `TracebackException`. Each link's line is
    its `tb_lineno` and its file and function are read from the interpreter's C display of the
    traceback (neither raises an audit event); the frame yielded is a stand-in holding only
    those (`f_code.co_filename`, `f_code.co_name`, `f_lineno`) and empty `f_globals` and
    `f_locals`. A link the display leaves out (`sys.tracebacklimit`) is `<unknown>`."""

    def entries(tb):
        lines = []
        link = tb
        while link is not None:
            lines.append(link.tb_lineno)
            link = link.tb_next
        shown = []
        if lines:
            buffer, saved = _StringIO(), _sys.stderr
            _sys.stderr = buffer  # the display writes to sys.stderr
            try:
                _display(_BaseException, _BaseException(), tb)
            finally:
                _sys.stderr = saved
            for line in _splitlines(buffer.getvalue()):
                if _startswith(line, '  File "'):
                    head, found, name = _rpartition(line, ", in ")
                    path, found_line, _ = _rpartition(head, '", line ')
                    if found and found_line:
                        shown.append((path[8:], name))
                elif _startswith(line, "  [Previous line repeated ") and shown:
                    count = _partition(line[26:], " ")[0]
                    if _isdigit(count):  # at most one per link (a file's name may lie)
                        shown.extend([shown[-1]] * _min(_int(count), _len(lines)))
        skipped = _len(lines) - _len(shown)  # the display shows the last links
        walked = []
        for i, lineno in _enumerate(lines):
            j = i - skipped
            filename, name = shown[j] if 0 <= j < _len(shown) else ("<unknown>", "<unknown>")
            code = _stand_in(co_filename=filename, co_name=name)
            frame = _stand_in(f_code=code, f_lineno=lineno, f_globals={}, f_locals={})
            walked.append((frame, lineno))
        return walked

    def walk_tb(tb):
        yield from entries(tb)

    def walk_tb_with_full_positions(tb):
        for frame, lineno in entries(tb):
            yield frame, (lineno, None, None, None)

    return {"walk_tb": walk_tb, "_walk_tb_with_full_positions": walk_tb_with_full_positions}


def _install_verdict(token_fd, verdict_fd):
    import os

    token = os.read(token_fd, 64)
    os.close(token_fd)

    class Verdict:
        __slots__ = ("token", "pid", "fd")

        def __del__(self, _write=os.write, _finalizing=sys.is_finalizing, _getpid=os.getpid):
            if _finalizing() and _getpid() == self.pid:
                try:
                    _write(self.fd, self.token)
                except OSError:
                    pass

    verdict = Verdict()
    verdict.token, verdict.pid, verdict.fd = token, os.getpid(), verdict_fd
    # Only this hook references the verdict; hooks are dropped when the interpreter finalises.
    sys.addaudithook(lambda event, args, _v=verdict: None)


def _preload():
    import importlib

    for name in (*sys.builtin_module_names, *SAFE_EXTENSIONS):
        if name in DENIED_MODULES:
            continue
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _install_guard(scratch, max_files=32):  # noqa: C901 - one closure: its cells stay private
    import _imp
    import _signal
    import gc
    import itertools
    import os
    import posix
    import signal

    _type, _str, _bytes, _int, _len = type, str, bytes, int, len
    _write, _exit, _getpid, _getcwd = posix.write, posix._exit, posix.getpid, posix.getcwd
    _lstat, _readlink = posix.lstat, posix.readlink
    _startswith, _endswith, _split, _join = str.startswith, str.endswith, str.split, str.join
    _rfind, _decode, _encode, _append = str.rfind, bytes.decode, str.encode, list.append
    _get, _bool, _OSError, _BaseException = dict.get, bool, OSError, BaseException
    _ValueError = ValueError
    readable_devices = READABLE_DEVICES  # the checks below read no global name at all
    frame_attributes = FRAME_ATTRIBUTES
    readable_dirs = READABLE_DIRS
    o_write = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    o_tmpfile = getattr(os, "O_TMPFILE", 0)
    o_create = os.O_CREAT | o_tmpfile
    # Files and directories created so far (RLIMIT_FSIZE caps each one's size); next() on it is
    # one C call, so threads creating files at once cannot lose a count.
    created, _next = itertools.count(1), next

    def refuse(why):
        try:
            _write(2, _encode("sandbox: " + why + " is not allowed\n", "utf-8", "replace"))
        finally:
            _exit(1)

    def fd_path(fd):
        target = _readlink("/proc/self/fd/" + _str(fd))
        return target if _startswith(target, "/") else None

    def absolute(path, dir_fd, allow_up):
        """`path` (exact str) made absolute and normalised; None if it climbs ('..') and may
        not: with a directory renamed in between, '..' could land outside (a race)."""
        if not _startswith(path, "/"):
            if dir_fd is None or (_type(dir_fd) is _int and dir_fd == -1):  # -1: no dir_fd
                base = _getcwd()
            elif _type(dir_fd) is _int:
                base = fd_path(dir_fd)
                if base is None:
                    return None
            else:
                return None
            path = base + "/" + path
        parts = []
        for part in _split(path, "/"):
            if part == "" or part == ".":
                continue
            if part == "..":
                if not allow_up:
                    return None
                if parts:
                    parts.pop()
                continue
            _append(parts, part)
        return "/" + _join("/", parts)

    def resolve(path):
        """realpath() from captured C calls (os.path's functions could be replaced)."""
        todo, out, hops = _split(path, "/"), "", 0
        while todo:
            part = todo.pop(0)
            if part == "" or part == ".":
                continue
            if part == "..":
                out = out[: _rfind(out, "/")] if out else ""
                continue
            candidate = out + "/" + part
            try:
                mode = _lstat(candidate).st_mode
            except _OSError:
                out = candidate
                continue
            if mode & 0o170000 == 0o120000:
                hops += 1
                if hops > 40:
                    return None
                target = _readlink(candidate)
                if _startswith(target, "/"):
                    out = ""
                todo = _split(target, "/") + todo
                continue
            out = candidate
        return out or "/"

    def inside(path):
        return path is not None and (path == scratch or _startswith(path, scratch + "/"))

    def as_text(path):
        t = _type(path)
        if t is _str:
            return path
        if t is _bytes:
            return _decode(path, "utf-8", "surrogateescape")
        return None

    def check_change(path, dir_fd=None, what="changing files"):
        """A file-system change: the target, literally and resolved, is in the scratch dir."""
        if _type(path) is _int:
            if not inside(fd_path(path)):
                refuse(what + " outside the scratch directory")
            return
        text = as_text(path)
        if text is None:
            refuse(what + " with a path that is not str or bytes")
        literal = absolute(text, dir_fd, False)
        if literal == "/dev/null":
            return
        if not (inside(literal) and inside(resolve(literal))):
            refuse(what + " outside the scratch directory (" + text + ")")

    def count_created(path):
        """Each open that may create a file (re-opening one for writing too) and each mkdir
        counts: the scratch dir then holds at most `max_files` files of RLIMIT_FSIZE bytes."""
        if _type(path) is _int or (_type(path) is _str and path == "/dev/null"):
            return
        if _next(created) > max_files:
            refuse("creating more than " + _str(max_files) + " files")

    def check_read(path):
        if _type(path) is _int:
            return
        text = as_text(path)
        if text is None:
            refuse("opening a path that is not str or bytes")
        # A relative path may be taken from a directory fd the event does not show: no '..'.
        literal = absolute(text, None, _startswith(text, "/"))
        real = resolve(literal) if literal is not None else None
        for p in (literal, real):
            if p is None or _startswith(p, "/proc") or _startswith(p, "/sys"):
                refuse("reading " + text)
            if _startswith(p, "/dev/") and p not in readable_devices:
                refuse("reading " + text)
        if real is None:
            return
        if _endswith(real, ".pyc") and not (
            _startswith(real, prefix) or _startswith(real, no_cache)
        ):
            refuse("loading compiled code " + text)
        if not inside(real):
            try:
                directory = _lstat(real).st_mode & 0o170000 == 0o040000
            except _OSError:
                directory = False
            if directory:  # a directory fd outside would anchor os.open(..., dir_fd=)
                refuse("opening the directory " + text)
            # Without root the program runs as the user: ~/.ssh or a project's .env would be
            # readable, and printed into the graded output.
            if _startswith(real, prefix) or _startswith(real, no_cache):  # imports' .pyc probe
                return
            if real in readable_devices:
                return
            for d in readable_dirs:
                if _startswith(real, d):
                    return
            refuse("reading " + text + " outside the scratch directory and the standard library")

    def on_open(args):
        path, mode, flags = args[0], args[1], args[2]
        writes = False
        if _type(mode) is _str:
            for c in mode:
                if c in "wax+":
                    writes = True
        elif mode is not None:
            refuse("an unusual open mode")
        if _type(flags) is _int:
            writes = (
                writes or _bool(flags & o_write) or (o_tmpfile and flags & o_tmpfile == o_tmpfile)
            )
        elif flags is not None:
            refuse("unusual open flags")
        if writes:
            check_change(path, None, "writing")
            if (flags is None and mode is not None) or (_type(flags) is _int and flags & o_create):
                count_created(path)
        else:
            check_read(path)

    def on_kill(args):
        if not (_type(args[0]) is _int and args[0] == _getpid()):
            refuse("signalling other processes")

    def on_prlimit(args):
        if not (_type(args[0]) is _int and args[0] in (0, _getpid())):
            refuse("changing other processes' limits")

    def on_setattr(args):
        if _type(args[1]) is _str and args[1] in ("__code__", "__defaults__", "__kwdefaults__"):
            refuse("replacing a function's code")

    def on_getattr(args):
        if _type(args[1]) is _str and args[1] in frame_attributes:
            refuse("reaching a frame (" + args[1] + ")")

    handlers = {
        "open": on_open,
        "os.remove": lambda a: check_change(a[0], a[1], "removing files"),
        "os.rmdir": lambda a: check_change(a[0], a[1], "removing directories"),
        "os.mkdir": lambda a: (
            check_change(a[0], a[2], "creating directories"),
            count_created(a[0]),
        ),
        "os.rename": lambda a: (
            check_change(a[0], a[2], "renaming"),
            check_change(a[1], a[3], "renaming"),
        ),
        "os.truncate": lambda a: check_change(a[0], None, "truncating"),
        "os.chmod": lambda a: check_change(a[0], a[2], "chmod"),
        "os.chown": lambda a: check_change(a[0], a[3], "chown"),
        "os.utime": lambda a: check_change(a[0], a[3], "changing file times"),
        "os.setxattr": lambda a: check_change(a[0], None, "setting attributes"),
        "os.removexattr": lambda a: check_change(a[0], None, "removing attributes"),
        "os.chdir": lambda a: check_change(a[0], None, "changing directory"),
        "os.kill": on_kill,
        "resource.prlimit": on_prlimit,
        "object.__setattr__": on_setattr,
        "object.__delattr__": on_setattr,
        "object.__getattr__": on_getattr,
    }
    refused = dict(REFUSED_EVENTS)

    def guard(event, args):
        if event == "sys._getframe":
            # What sys._getframe raises past the top of the stack: callers handle it. Raised,
            # not an exit: its traceback's frames (the guard's) are behind tb_frame, refused.
            raise _ValueError("call stack is not deep enough")
        try:
            handler = _get(handlers, event)
            if handler is not None:
                handler(args)
                return
            why = _get(refused, event)
            if why is not None:
                refuse(why)
            if _startswith(event, "socket.") and event != "socket.gethostname":
                refuse("network access")
            if _startswith(event, "ctypes."):
                refuse("loading native code (ctypes)")
        except _BaseException:  # fail closed: a check that broke is a refusal
            refuse("an operation the sandbox could not check (" + event + ")")

    scratch = resolve(absolute(scratch, None, True))
    prefix = resolve(sys.base_prefix) + "/"
    no_cache = "/nonexistent/router-sandbox/"
    # Functions that raise no audit event, replaced before the program runs; the import
    # machinery then cannot rebuild their modules (create/exec_builtin) nor load native code.
    for module in (posix, os):
        for name, what in (
            ("mkfifo", "creating FIFOs"),
            ("mknod", "creating device nodes"),
            ("setsid", "leaving the process group"),
            ("setpgid", "leaving the process group"),
            ("setpgrp", "leaving the process group"),
            ("login_tty", "leaving the process group"),  # calls setsid(), no audit event
            ("chroot", "chroot"),
        ):
            if hasattr(module, name):
                setattr(module, name, _refuser(what, _write, _exit))
    for module in (_signal, signal):
        module.signal = _refuser("installing signal handlers", _write, _exit)
        if hasattr(module, "pidfd_send_signal"):
            module.pidfd_send_signal = _refuser("signalling other processes", _write, _exit)
    for name in DENIED_MODULES:  # imported at start-up all the same: emptied
        module = sys.modules.get(name)
        if module is not None:
            for attr in list(vars(module)):
                if not attr.startswith("__"):
                    setattr(module, attr, _refuser(name, _write, _exit))
    for name in ("create_dynamic", "exec_dynamic"):
        setattr(_imp, name, _refuser("loading native code", _write, _exit))
    for name in ("create_builtin", "exec_builtin"):
        setattr(_imp, name, _refuser("importing a module outside the allowlist", _write, _exit))
    # Formatting a caught exception (`traceback.format_exc()`, `logging.exception`) would read
    # tb_frame: the traceback module's formatting is the C display's instead.
    import io
    import traceback
    import types

    for name, function in _traceback_formatting(sys.__excepthook__, sys, io.StringIO).items():
        setattr(traceback, name, function)
    # `extract_tb`, `format_tb` and `TracebackException` walk tracebacks with frames: their
    # walk is replaced by one that reads each link's file, function and line without one.
    walking = _traceback_walking(sys.__excepthook__, sys, io.StringIO, types.SimpleNamespace)
    for name, function in walking.items():
        setattr(traceback, name, function)
    # DEBUG_SAVEALL keeps whatever a collection finds unreachable in gc.garbage: frames too.
    gc.set_debug = _refuser("gc debugging", _write, _exit)
    # No automatic collection: a finaliser run mid-check would execute program code inside
    # the guard. `gc.collect()` still works, in the program's own frames.
    gc.disable()
    gc.enable = lambda: None
    sys.pycache_prefix = no_cache  # later imports compile from source: no marshalled code
    sys.addaudithook(guard)


def _run(path):
    import os

    _exit, _exec, _compile, stderr = os._exit, exec, compile, sys.stderr
    # The interpreter's own display (C): it reads tracebacks without the audited `tb_frame`
    # (the traceback module would be refused), and a program that rebound builtins or the
    # traceback module leaves it working.
    display, exc_info, stdout = sys.__excepthook__, sys.exc_info, sys.stdout
    with open(path, encoding="utf-8") as f:
        source = f.read()
    # Not on disk while it runs: its text holds the tests the program must not read.
    os.remove(path)
    sys.argv[:] = [path]
    try:
        _exec(
            _compile(source, path, "exec"), {"__name__": "__main__", "__builtins__": __builtins__}
        )
    except:  # noqa: E722
        # Bare on purpose: `except BaseException` looks the name up in globals and builtins,
        # which the program can rebind, and a class test is fooled by an exception class
        # whose metaclass drops BaseException from its MRO; either let SystemExit(0) reach
        # finalisation, and so the verdict. Any failure exits at once, before finalisation.
        try:
            display(*exc_info())
            stderr.flush()
            stdout.flush()
        finally:
            _exit(1)


def main(argv):
    token_fd, verdict_fd, audit = int(argv[1]), int(argv[2]), argv[3] == "1"
    _install_verdict(token_fd, verdict_fd)
    if audit:
        _preload()
        _install_guard(argv[4], int(argv[5]) if len(argv) > 5 else 32)
    _run("program.py")
