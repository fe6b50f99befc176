"""The code sandbox against hostile programs: each fails its own run and nothing else.

The hostile cases run in both isolation modes: "namespaces" (root: network, PID and mount
namespaces, user nobody, plus the in-process guard) and "audit-hook" (no namespaces: the guard
is the only file and network wall). CI runs as root, so there the audit-hook cases run the
program as the unprivileged user `nobody` in a real subprocess with namespaces off, just as on a
machine without root. Some cases also run without the guard so the outer walls are checked on
their own. Only loopback is ever a real connection target.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from router.evaluation.graders import grade
from router.evaluation.sandbox import isolation, run_python
from tests.conftest import ROOT
from tests.servers import servers_required

NAMESPACES = isolation()["mode"] == "namespaces"
needs_namespaces = pytest.mark.skipif(
    not NAMESPACES, reason="unshare -n -m -p needs root; the audit-hook fallback is in use"
)


def _python_for_nobody() -> str | None:
    """A Python 3.11+ that `nobody` can execute (the running one may live under /root)."""
    seen = []
    for cand in (
        os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
        shutil.which("python3.11", path="/usr/local/bin:/usr/bin:/bin"),
        shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin"),
    ):
        if not cand or cand in seen:
            continue
        seen.append(cand)
        try:
            r = run_python(
                "import sys\nassert sys.version_info >= (3, 11)\n",
                mode="audit-hook",
                user="nobody",
                python=cand,
            )
        except OSError:  # nobody cannot execute it
            continue
        if r.passed:
            return cand
    return None


@pytest.fixture(scope="session")
def weak_mode() -> dict:
    """run_python arguments for the audit-hook mode: as `nobody` when we are root."""
    if os.geteuid() != 0:
        return {"mode": "audit-hook"}
    python = _python_for_nobody()
    if python is None:
        msg = "no Python 3.11 that user nobody can run (apt-get install python3)"
        if servers_required():
            pytest.fail(msg)
        pytest.skip(msg)
    return {"mode": "audit-hook", "user": "nobody", "python": python}


MODES = ["namespaces", "audit-hook"]


@pytest.fixture(params=MODES)
def mode(request) -> dict:
    if request.param == "namespaces":
        if not NAMESPACES:
            if os.geteuid() == 0 and servers_required():
                pytest.fail("running as root under CI, but unshare does not work")
            pytest.skip("namespaces need root and unshare")
        return {"mode": "namespaces"}
    return request.getfixturevalue("weak_mode")


def test_a_plain_program_passes_and_its_output_comes_back():
    r = run_python("print(sum(range(10)))")
    assert r.passed and r.returncode == 0 and r.stdout.strip() == "45", r


def test_a_failing_assert_fails():
    r = run_python("assert 1 == 2, 'nope'")
    assert not r.passed and r.returncode == 1 and "AssertionError: nope" in r.stderr


def test_the_environment_is_empty_and_python_isolated(monkeypatch):
    monkeypatch.setenv("ROUTER_SECRET_FOR_TEST", "s3cret")
    r = run_python(
        "import os, sys\nprint(sorted(os.environ))\nprint(sys.flags.isolated)\n"
        "print(os.environ.get('ROUTER_SECRET_FOR_TEST'))"
    )
    assert r.passed, r
    lines = r.stdout.splitlines()
    assert "ROUTER_SECRET_FOR_TEST" not in lines[0] and lines[1] == "1" and lines[2] == "None"


@pytest.mark.parametrize("hook", [True, False])
def test_infinite_loop_hits_the_time_limit(hook):
    r = run_python("while True:\n    pass\n", timeout=3, audit_hook=hook)
    assert not r.passed and r.timed_out and r.reason == "time limit"


def test_cpu_limit_applies_even_with_a_long_wall_clock():
    r = run_python("while True:\n    pass\n", timeout=60, cpu_s=1)
    # Killed by RLIMIT_CPU (SIGXCPU, then SIGKILL) long before the 60 s wall clock.
    assert not r.passed and not r.timed_out, r


@pytest.mark.parametrize("hook", [True, False])
def test_fork_bomb_is_contained(hook):
    bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    r = run_python(bomb, timeout=4, max_procs=32, audit_hook=hook)
    assert not r.passed
    # Nothing it started survives it.
    r2 = run_python("print('alive')")
    assert r2.passed and r2.stdout.strip() == "alive"


def test_fork_bomb_meets_the_process_limit():
    probe = (
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
        "            time.sleep(30)\n            os._exit(0)\n        n += 1\n"
        "except OSError as e:\n    print('limit', n, e.errno)\n"
    )
    r = run_python(probe, timeout=20, max_procs=16, audit_hook=False)
    line = [x for x in r.stdout.splitlines() if x.startswith("limit")]
    assert line, (r.stdout, r.stderr)
    assert int(line[0].split()[1]) < 16


@pytest.mark.skipif(os.geteuid() != 0, reason="starts tasks as the user nobody")
def test_a_user_running_many_tasks_still_gets_max_procs_more(mode):
    """RLIMIT_NPROC counts every task of the program's user: the limit is what that user runs
    already plus max_procs, so code_eval's harness (which forks the answer's process) works for
    a user with more tasks than max_procs, and a fork bomb still meets the limit."""
    holder = subprocess.Popen(
        [_python_for_nobody() or sys.executable, "-c",
         "import threading, time\n"
         "for _ in range(80):\n    threading.Thread(target=time.sleep, args=(60,)).start()\n"
         "print('ready', flush=True)\ntime.sleep(60)\n"],
        user=65534, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ready"
        row = {"metric": "code_eval", "ground_truth": "['assert add(1, 2) == 3']"}
        from router.evaluation.graders import Reference, code_program

        program = code_program("def add(a, b):\n    return a + b\n", Reference(row["ground_truth"]))
        r = run_python(program, max_procs=16, **mode)
        assert r.passed, r.stderr[-500:]
        probe = (
            "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
            "            time.sleep(30)\n            os._exit(0)\n        n += 1\n"
            "except OSError as e:\n    print('limit', n)\n"
        )
        r = run_python(probe, timeout=20, max_procs=16, audit_hook=False, **mode)
        assert 10 <= int(r.stdout.split()[1]) < 16, (r.stdout, r.stderr)
    finally:
        holder.kill()
        holder.wait()


class _Listener:
    """A loopback TCP listener that records whether anything connected."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                continue

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.mark.parametrize("hook", [True, False])
def test_network_to_loopback_fails_and_nothing_arrives(hook):
    if not hook and not NAMESPACES:
        pytest.skip("without namespaces the audit hook is the only network wall")
    listener = _Listener()
    try:
        # The listener is reachable from here: the check below can fail.
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5):
            pass
        deadline = time.monotonic() + 30
        while listener.connections < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        before = listener.connections
        assert before == 1
        code = (
            "import socket\n"
            f"s = socket.create_connection(('127.0.0.1', {listener.port}), timeout=3)\n"
            "s.sendall(b'hello')\nprint('connected')\n"
        )
        r = run_python(code, timeout=10, audit_hook=hook)
        assert not r.passed and "connected" not in r.stdout, r
        time.sleep(0.5)  # a connection that did get through would be accepted by now
        assert listener.connections == before
    finally:
        listener.close()


@pytest.mark.parametrize("hook", [True, False])
def test_network_to_a_public_address_fails_without_sending(hook):
    if not hook and not NAMESPACES:
        pytest.skip("without namespaces the audit hook is the only network wall")
    # A documentation address (TEST-NET-3): with no interface up, connect() fails at once
    # with "network unreachable"; with the hook, the socket is never even created.
    code = "import socket\nsocket.create_connection(('203.0.113.7', 80), timeout=3)\n"
    r = run_python(code, timeout=10, audit_hook=hook)
    assert not r.passed
    assert "Network is unreachable" in r.stderr or "network access is not allowed" in r.stderr


@pytest.mark.parametrize("hook", [True, False])
def test_writing_outside_the_scratch_dir_fails(hook):
    if not hook and not NAMESPACES:
        pytest.skip("without namespaces the audit hook is the only file wall")
    target = Path.cwd() / f"sandbox-escape-{uuid.uuid4().hex}.txt"
    code = f"open({str(target)!r}, 'w').write('escaped')\n"
    r = run_python(code, audit_hook=hook)
    assert not r.passed and not target.exists(), r


@needs_namespaces
def test_tmp_writes_land_in_a_private_tmpfs(tmp_path):
    name = f"/tmp/sandbox-probe-{uuid.uuid4().hex}"
    r = run_python(
        f"open({name!r}, 'w').write('x')\nprint(open({name!r}).read())", audit_hook=False
    )
    assert r.passed and r.stdout.strip() == "x", r
    assert not Path(name).exists()  # the host's /tmp never saw it


def test_writing_inside_the_scratch_dir_works():
    r = run_python("open('out.txt', 'w').write('ok')\nprint(open('out.txt').read())")
    assert r.passed and r.stdout.strip() == "ok", r


@pytest.mark.parametrize("hook", [True, False])
def test_memory_bomb_fails(hook):
    r = run_python("x = bytearray(4 * 1024 ** 3)\n", memory_mb=256, audit_hook=hook)
    assert not r.passed and "MemoryError" in r.stderr, r


@pytest.mark.parametrize("hook", [True, False])
def test_huge_output_is_cut_and_fails(hook):
    code = "import sys\nwhile True:\n    sys.stdout.write('x' * 100000)\n"
    r = run_python(code, timeout=10, file_mb=2, output_bytes=10_000, audit_hook=hook)
    assert not r.passed
    assert len(r.stdout) < 11_000 and r.stdout.endswith("[output truncated]")


def test_huge_file_in_the_scratch_dir_is_limited():
    code = "with open('big', 'wb') as f:\n    f.write(b'x' * (64 * 1024 * 1024))\n"
    r = run_python(code, file_mb=4)
    assert not r.passed, r


def test_subprocesses_are_refused_by_the_hook():
    r = run_python("import subprocess\nsubprocess.run(['true'])\n")
    assert not r.passed and "not allowed" in r.stderr


def test_a_hostile_row_fails_only_itself():
    """Through the grader: the bad row scores 0, the next good one still scores 1."""
    tests = "['assert add(1, 2) == 3']"
    row = {"metric": "code_eval", "ground_truth": tests}
    hostile = [
        "def add(a, b):\n    while True:\n        pass\n",
        "import os\ndef add(a, b):\n    while True:\n        os.fork()\n",
        "import socket\ndef add(a, b):\n    socket.create_connection(('127.0.0.1', 22))\n",
        "def add(a, b):\n    open('/etc/passwd-router-test', 'w').write('x')\n    return 3\n",
        "def add(a, b):\n    return bytearray(8 * 1024 ** 3)\n",
    ]
    for code in hostile:
        assert grade(row, code, allow_code_exec=True) == 0.0, code
    assert not Path("/etc/passwd-router-test").exists()
    assert grade(row, "def add(a, b):\n    return a + b\n", allow_code_exec=True) == 1.0


# ---- hostile programs in both modes -------------------------------------------------------


@pytest.fixture
def victims(mode):
    """Files outside the scratch directory that the sandboxed user could change, were it not
    for the sandbox: owned by that user (nobody, when we are root) in a world-writable dir.
    Under /tmp for the audit-hook mode; elsewhere for namespaces, whose /tmp, /var/tmp and
    /dev/shm are private: in the checkout, or (a checkout under one of those, as a CI clone in
    a mktemp directory is) under /var/lib, which that mode's root can write."""
    private = ("/tmp", "/var/tmp", "/dev/shm")
    if mode["mode"] == "audit-hook":
        parent = Path("/tmp")
    elif any(ROOT.resolve().is_relative_to(p) for p in private):
        parent = Path("/var/lib") / "router-sandbox-victims"
    else:
        parent = ROOT / ".sandbox-victims"
    parent.mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="victim-", dir=parent))
    (base / "file").write_text("precious")
    (base / "empty").mkdir()
    if os.geteuid() == 0:
        for p in (base, base / "file", base / "empty"):
            os.chown(p, 65534, 65534)
    base.chmod(0o777)
    (base / "file").chmod(0o644)
    before = _snapshot(base)
    yield {"dir": str(base), "file": str(base / "file"), "empty": str(base / "empty")}, before
    shutil.rmtree(base, ignore_errors=True)
    if parent != Path("/tmp"):
        shutil.rmtree(parent, ignore_errors=True)


def _snapshot(base: Path) -> dict:
    out = {}
    for p in sorted(base.rglob("*")):
        st = p.lstat()
        out[str(p)] = (st.st_mode, st.st_uid, st.st_mtime_ns, p.read_text() if p.is_file() else "")
    return out


# Each program changes the victims, unless something refuses. {file}, {dir}, {empty} are
# outside the scratch directory; the program's own cwd is the scratch directory.
CHANGES = {
    "remove": "import os\nos.remove({file!r})",
    "unlink": "import os\nos.unlink({file!r})",
    "rename away": "import os\nos.rename({file!r}, 'mine')",
    "replace onto": "import os\nopen('x', 'w').write('evil')\nos.replace('x', {file!r})",
    "rmdir": "import os\nos.rmdir({empty!r})",
    "truncate": "import os\nos.truncate({file!r}, 0)",
    "chmod": "import os\nos.chmod({file!r}, 0o777)",
    "chown": "import os\nos.chown({file!r}, os.getuid(), os.getgid())",
    "mkdir": "import os\nos.mkdir({dir!r} + '/new')",
    "makedirs": "import os\nos.makedirs({dir!r} + '/a/b')",
    "utime": "import os\nos.utime({file!r}, (0, 0))",
    "symlink out": "import os\nos.symlink({dir!r}, 'out')\nopen('out/file', 'w').write('evil')",
    "hard link": "import os\nos.link({file!r}, 'h')\nopen('h', 'w').write('evil')",
    "os.open for writing": "import os\nos.close(os.open({file!r}, os.O_WRONLY | os.O_TRUNC))",
    "open to append": "open({file!r}, 'a').write('evil')",
    "bytes path": "import os\nos.remove({file!r}.encode())",
    "pathlib": "import pathlib\npathlib.Path({file!r}).unlink()",
    "shutil.rmtree": "import shutil\nshutil.rmtree({dir!r})",
    "shutil.move": "import shutil\nshutil.move({file!r}, 'stolen')",
    "relative ..": "import os\nos.remove('../../' * 20 + {file!r}.lstrip('/'))",
    "chdir out": "import os\nos.chdir({dir!r})\nos.remove('file')",
    "dir_fd": "import os\nd = os.open({dir!r}, os.O_RDONLY)\nos.unlink('file', dir_fd=d)",
    "os.open dir_fd": (
        "import os\nd = os.open({dir!r}, os.O_RDONLY)\n"
        "os.close(os.open('new', os.O_WRONLY | os.O_CREAT, dir_fd=d))"
    ),
    "mkfifo": "import os\nos.mkfifo({dir!r} + '/fifo')",
    "tempfile elsewhere": "import tempfile\ntempfile.mkstemp(dir={dir!r})",
    "ctypes": "import ctypes\nctypes.CDLL(None).unlink({file!r}.encode())",
    "cffi": "import _cffi_backend",
    "native module from scratch": (
        "import sys, shutil, importlib.machinery as m\n"
        "src = [p for p in sys.path if 'dynload' in p][0] + '/math' + m.EXTENSION_SUFFIXES[0]\n"
        "spec = m.ModuleSpec('math', m.ExtensionFileLoader('math', src), origin=src)\n"
        "import _imp\n_imp.create_dynamic(spec)"
    ),
    "subprocess": "import subprocess\nsubprocess.run(['rm', {file!r}])",
    "os.system": "import os\nos.system('rm ' + {file!r})",
    "thread racing a check": (
        "import threading, os\nthreading.Thread(target=os.remove, args=({file!r},)).start()"
    ),
}


@pytest.mark.parametrize("case", list(CHANGES))
def test_no_change_outside_the_scratch_dir(mode, victims, case):
    paths, before = victims
    r = run_python(CHANGES[case].format(**paths), **mode)
    assert not r.passed, (case, r)
    assert _snapshot(Path(paths["dir"])) == before, (case, r.stderr)
    # The guard itself refused (not merely file permissions or an invisible path), knowingly.
    assert "sandbox: " in r.stderr or "No module named" in r.stderr, (case, r.stderr[-500:])
    assert "could not check" not in r.stderr, (case, r.stderr[-500:])


def test_without_the_guard_the_weak_mode_would_lose_the_file(weak_mode, tmp_path):
    """The control for the cases above: the same deletion, guard off, really deletes."""
    base = Path(tempfile.mkdtemp(prefix="victim-", dir="/tmp"))
    try:
        (base / "file").write_text("precious")
        if os.geteuid() == 0:
            os.chown(base / "file", 65534, 65534)
        base.chmod(0o777)
        r = run_python(
            f"import os\nos.remove({str(base / 'file')!r})", audit_hook=False, **weak_mode
        )
        assert r.passed and not (base / "file").exists(), r
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_deleting_row_from_the_issue_scores_zero(mode, victims):
    """Issue 20: generated code deleted a file outside its scratch dir and the row passed."""
    from router.evaluation.graders import Reference, code_program

    paths, before = victims
    answer = f"import os\n\ndef add(a, b):\n    os.remove({paths['file']!r})\n    return a + b\n"
    program = code_program(answer, Reference("['assert add(1, 2) == 3']"))
    r = run_python(program, **mode)
    assert not r.passed and "removing files outside the scratch directory" in r.stderr, r
    assert _snapshot(Path(paths["dir"])) == before
    if mode["mode"] == isolation()["mode"]:  # the grader runs the best mode available
        row = {"metric": "code_eval", "ground_truth": "['assert add(1, 2) == 3']"}
        assert grade(row, answer, allow_code_exec=True) == 0.0
        assert _snapshot(Path(paths["dir"])) == before


def test_no_file_outside_the_scratch_dir_and_the_stdlib_is_read(mode, victims):
    """Without root the program runs as the user: its home and checkout must stay unread."""
    paths, _ = victims  # world-readable, like a config or a key with lax permissions
    r = run_python(f"print(open({paths['file']!r}).read())", **mode)
    assert not r.passed and "precious" not in r.stdout, r
    assert "sandbox: reading" in r.stderr, r.stderr[-300:]
    # The standard library's own files (sources, time-zone data where installed) still read.
    ok = run_python(
        "import inspect, json, zoneinfo\nassert 'def dumps' in inspect.getsource(json)\n"
        "try:\n    zoneinfo.ZoneInfo('Europe/Paris')\nexcept zoneinfo.ZoneInfoNotFoundError:\n"
        "    pass\n",
        **mode,
    )
    assert ok.passed, ok


@pytest.fixture
def bystander():
    """A process the program must not be able to signal."""
    p = subprocess.Popen(["sleep", "120"], start_new_session=True)
    yield p
    p.kill()
    p.wait()


SIGNALS = {
    "kill": "import os, signal\nos.kill({pid}, signal.SIGKILL)",
    "killpg": "import os, signal\nos.killpg({pid}, signal.SIGKILL)",
    "pidfd": (
        "import os, signal\ntry:\n    fd = os.pidfd_open({pid})\nexcept OSError:\n    fd = -1\n"
        "signal.pidfd_send_signal(fd, signal.SIGKILL)"
    ),
    "signal handler": "import signal\nsignal.signal(signal.SIGALRM, lambda *a: None)",
}


@pytest.mark.parametrize("case", list(SIGNALS))
def test_no_signal_reaches_another_process(mode, bystander, case):
    r = run_python(SIGNALS[case].format(pid=bystander.pid), **mode)
    assert not r.passed and "sandbox: " in r.stderr, (case, r.stderr[-300:])
    assert "could not check" not in r.stderr, (case, r.stderr[-300:])
    time.sleep(0.2)
    assert bystander.poll() is None  # still alive


def _running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# A child in a session of its own escapes the kill of the program's process group; SIGHUP
# (sent when the pty's master closes) is blocked. Each prints the child's pid.
SESSION_ESCAPES = {
    "forkpty": "pid, _ = os.forkpty()",
    "login_tty": "m, s = os.openpty()\npid = os.fork()\nif pid == 0:\n    os.login_tty(s)",
}


@pytest.mark.parametrize("case", list(SESSION_ESCAPES))
def test_no_process_leaves_the_killable_group(mode, case):
    code = (
        "import os, signal, time\nsignal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGHUP])\n"
        + SESSION_ESCAPES[case]
        + "\nif pid == 0:\n    time.sleep(30)\n    os._exit(0)\nprint(pid, flush=True)\n"
    )
    r = run_python(code, **mode)
    pids = [int(x) for x in r.stdout.split() if x.isdigit()]
    try:
        assert "sandbox: leaving the process group is not allowed" in r.stderr, (case, r)
        if mode["mode"] == "audit-hook":  # pids of the host's namespace: check none is left
            time.sleep(0.5)
            assert not [p for p in pids if _running(p)], (case, r)
    finally:
        if mode["mode"] == "audit-hook":
            for p in pids:
                if _running(p):
                    os.kill(p, 9)


INTROSPECTION = {
    "process memory": "open('/proc/self/mem', 'rb')",
    "proc via dev": "open('/dev/fd/0', 'rb')",
    "gc objects": "import gc\ngc.get_objects()",
    "gc referrers": "import gc, sys\ngc.get_referrers(sys)",
    "tracing": "import sys\nsys.settrace(lambda *a: None)",
    "code objects": "(lambda: 0).__code__.replace(co_consts=(1,))",
    "marshalled code": "import marshal\nmarshal.loads(marshal.dumps(compile('1', 'x', 'eval')))",
    "swapping code": "def f(): pass\nf.__code__ = (lambda: 1).__code__",
    "compiled file": "open('evil.pyc', 'wb').write(b'x')\nopen('evil.pyc', 'rb')",
    "network": "import socket\nsocket.socket()",
    # Frames: a caller's locals and code hold what a test expects (test_code_harness.py).
    "a traceback's frame": (
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    e.__traceback__.tb_frame"
    ),
    "a generator's frame": "def g():\n    yield\ng().gi_frame",
    "a coroutine's frame": "async def c():\n    pass\nc().cr_frame",
    "an audit hook of its own": "import sys\nsys.addaudithook(lambda event, args: None)",
    "gc keeping garbage": "import gc\ngc.set_debug(gc.DEBUG_SAVEALL)",
}


@pytest.mark.parametrize("case", list(INTROSPECTION))
def test_interpreter_introspection_and_network_are_refused(mode, case):
    r = run_python(INTROSPECTION[case], **mode)
    assert not r.passed and "sandbox: " in r.stderr, (case, r.stderr[-300:])
    assert "could not check" not in r.stderr, (case, r.stderr[-300:])


def test_the_program_sees_neither_its_file_nor_the_stack(mode):
    """Its text (the tests, under code_eval) is removed before it runs; sys._getframe raises
    the ValueError of a stack too shallow, which the standard library's callers handle."""
    r = run_python(
        "import os, sys\nassert not os.path.exists('program.py'), os.listdir('.')\n"
        "try:\n    sys._getframe()\nexcept ValueError:\n    pass\nelse:\n"
        "    raise AssertionError('a frame')\n",
        **mode,
    )
    assert r.passed, r


def test_the_traceback_module_walks_a_traceback_without_its_frames(mode):
    """extract_tb, format_tb, walk_tb and TracebackException read each link's file, function
    and line without a frame (the guard's stand-in walk), while tb_frame stays refused."""
    r = run_python(
        "import traceback\ndef inner():\n    1 / 0\ndef outer(n):\n    if n:\n"
        "        return outer(n - 1)\n    inner()\n"
        "try:\n    outer(5)\nexcept ZeroDivisionError as e:\n    err, tb = e, e.__traceback__\n"
        "stack = traceback.extract_tb(tb)\n"
        "assert [(f.name, f.lineno) for f in stack] == [('<module>', 9)] + [('outer', 6)] * 5 + "
        "[('outer', 7), ('inner', 3)], stack\n"
        # format_tb folds the repeated links as CPython does: 3 shown, then "repeated 2 more".
        "assert stack[-1].filename.endswith('program.py') and len(traceback.format_tb(tb)) == 7\n"
        "assert [f.f_code.co_name for f, _ in traceback.walk_tb(tb)][-1] == 'inner'\n"
        "text = ''.join(traceback.TracebackException.from_exception(err).format())\n"
        "assert 'in inner' in text and 'ZeroDivisionError: division by zero' in text, text\n"
        "traceback.print_tb(tb)\n",
        **mode,
    )
    assert r.passed, r.stderr[-800:]


# ---- the completion verdict ---------------------------------------------------------------


FORGERIES = {
    "early exit 0": "print('ok')\nimport os\nos._exit(0)\nassert False",
    "token from the source": (
        "import os, re\nfor name in os.listdir('.'):\n"
        "    for tok in re.findall(r'[0-9a-f]{32}', open(name).read()):\n        print(tok)\n"
        "os._exit(0)\nassert False"
    ),
    "writing every fd": (
        "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'0' * 32)\n"
        "    except OSError:\n        pass\nos._exit(0)\nassert False"
    ),
    "a forked child finishes": (
        "import os\npid = os.fork()\nif pid:\n    os.waitpid(pid, 0)\n    os._exit(0)\n"
    ),
    "system exit 0": "raise SystemExit(0)\nassert False",
    "exit in a finally": "try:\n    assert False\nfinally:\n    import sys\n    sys.exit(0)",
    # The harness's `except` must catch whatever escapes the program, whatever it rebinds.
    "BaseException rebound in builtins": (
        "import builtins, sys\nbuiltins.BaseException = type('X', (Exception,), {})\n"
        "sys.exit(0)\nassert False"
    ),
    "BaseException rebound in the harness's globals": (
        "import sys\nsys._getframe(1).f_globals['BaseException'] = ArithmeticError\n"
        "sys.exit(0)\nassert False"
    ),
    "an exit whose class hides BaseException": (
        "class M(type):\n    def mro(cls):\n        return (cls, SystemExit, object)\n"
        "class E(SystemExit, metaclass=M):\n    pass\nraise E(0)\nassert False"
    ),
}


@pytest.mark.parametrize("case", list(FORGERIES))
def test_a_program_that_stops_early_never_passes(mode, case):
    r = run_python(FORGERIES[case], **mode)
    assert not r.passed and not r.completed, (case, r)


def test_a_program_that_ends_passes_and_one_that_fails_does_not(mode):
    ok = run_python("import collections\nP = collections.namedtuple('P', 'a')\nprint(P(1))", **mode)
    assert ok.passed and ok.completed and ok.stdout.strip() == "P(a=1)", ok
    bad = run_python("print('x')\nassert 1 == 2, 'nope'", **mode)
    assert not bad.passed and not bad.completed and "AssertionError: nope" in bad.stderr
    inside = run_python(
        "import os\nos.mkdir('d')\nopen('d/f', 'w').write('1')\nos.rename('d/f', 'g')\n"
        "os.remove('g')\nos.rmdir('d')\nimport tempfile\ntempfile.mkstemp()",
        **mode,
    )
    assert inside.passed, inside  # changes inside the scratch directory are the program's own


# ---- the disk: many files, each under the file-size limit -----------------------------------


def _disk_use(base: Path) -> int:
    total = 0
    for root, dirs, files in os.walk(base):  # errors (a dir removed while we look) skipped
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def test_many_files_cannot_fill_the_disk(mode, monkeypatch):
    """RLIMIT_FSIZE caps each file, the guard the number created (32 by default): the scratch
    dir, on the host's /tmp in the audit-hook mode, holds at most 32 x the file-size limit."""
    size = 256 * 1024
    code = (
        "import os\nfor i in range(200):\n"
        f"    with open('f%d' % i, 'wb') as f:\n        f.write(b'x' * {size})\n"
        "    print(i, sum(os.path.getsize(n) for n in os.listdir('.')), flush=True)\n"
    )
    base = Path(tempfile.mkdtemp(prefix="sandbox-disk-", dir="/tmp"))
    base.chmod(0o755)  # the program's user (nobody) walks through it to its scratch dir
    monkeypatch.setattr(tempfile, "tempdir", str(base))  # where run_python makes its dirs
    peak, stop = [0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _disk_use(base))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        r = run_python(code, file_mb=1, timeout=30, **mode)
    finally:
        stop.set()
        watcher.join()
        monkeypatch.undo()
        shutil.rmtree(base, ignore_errors=True)
    assert not r.passed and "sandbox: creating more than 32 files is not allowed" in r.stderr, r
    reports = [line.split() for line in r.stdout.splitlines()]
    assert len(reports) == 32 and int(reports[-1][1]) <= 32 * size + 100_000, r.stdout[-300:]
    # On the host: 32 files of 256 KB, the two program files and the output, never more.
    assert peak[0] <= 32 * size + 1024 * 1024, peak[0]
    # Writing files as programs do still works: the same file again and again, a temp dir.
    ok = run_python(
        "import tempfile\nfor i in range(10):\n    open('log', 'a').write('x')\n"
        "with tempfile.TemporaryDirectory() as d:\n    open(d + '/a', 'w').write('1')\n"
        "assert open('log').read() == 'x' * 10\n",
        **mode,
    )
    assert ok.passed, ok
