"""The code sandbox against hostile programs: each fails its own run and nothing else.

Every hostile case runs twice where it matters: with the in-process audit hook (the normal
setting) and without it, so the outer walls (namespaces, unprivileged user, rlimits) are
checked on their own. Only loopback is ever a real connection target.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from router.evaluation.graders import grade
from router.evaluation.sandbox import isolation, run_python

NAMESPACES = isolation()["mode"] == "namespaces"
needs_namespaces = pytest.mark.skipif(
    not NAMESPACES, reason="unshare -n -m -p needs root; the audit-hook fallback is in use"
)


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
