"""Run untrusted generated code (a model's function plus a dataset's asserts) in a subprocess.

One job: execute a Python program so that whatever it does fails only itself. Layers, each
applied where this machine allows it (`isolation()` says which):

- a fresh process: `python -I` (isolated mode: no user site, no PYTHON* variables), an empty
  environment, stdin closed, a wall-clock time limit after which its whole process group is
  killed;
- rlimits: CPU seconds, address space (memory), file size, number of processes (fork bombs),
  open files;
- `unshare -n -m -p` (as root): a network namespace with no usable interface (loopback is down,
  so even 127.0.0.1 is unreachable), a PID namespace (everything the program starts dies with
  it) and a mount namespace where /tmp, /var/tmp and /dev/shm
  are fresh size-limited tmpfs mounts; the program runs in a scratch directory on that tmpfs,
  as the unprivileged user `nobody`, so it can write nowhere else;
- always, inside the program: an audit hook (PEP 578) that refuses sockets and any file
  opened for writing outside the scratch directory — the only network and file guard when
  `unshare` is not available (then say so: `isolation()["network"] == "audit-hook"`).

Output is read with a cap, so a program printing gigabytes cannot fill memory.
"""

from __future__ import annotations

import functools
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Guards installed at the top of every sandboxed program. An audit hook cannot be removed
# from Python code; it is a second wall, the namespaces and the unprivileged user are the first.
PREAMBLE = r"""
import sys as _sb_sys, os as _sb_os
def _sb_guard(event, args, _root=_sb_os.path.realpath(_sb_os.getcwd()), _os=_sb_os):
    if event.startswith("socket.") and event not in ("socket.gethostname",):
        raise PermissionError("sandbox: network access is not allowed")
    if event == "open" and args[0] is not None and not isinstance(args[0], int):
        mode, flags = args[1], args[2]
        writes = (mode is not None and any(c in mode for c in "wax+")) or (
            flags is not None and flags & (_os.O_WRONLY | _os.O_RDWR | _os.O_CREAT | _os.O_APPEND))
        if writes:
            path = _os.path.realpath(_os.fsdecode(args[0]))
            if path != _root and not path.startswith(_root + _os.sep) and path != "/dev/null":
                raise PermissionError(f"sandbox: writing outside the scratch directory: {path}")
    if event in ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen",
                 "ctypes.dlopen", "os.kill", "os.killpg"):
        raise PermissionError(f"sandbox: {event} is not allowed")
_sb_sys.addaudithook(_sb_guard)
del _sb_guard
"""

# The in-namespace launcher (runs as root inside fresh namespaces, then drops to `nobody`).
LAUNCHER = r"""
import os, resource, subprocess, sys
code_path, tmpfs_mb, uid, gid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
limits = [int(x) for x in sys.argv[5:10]]
prefix, exe = sys.argv[10], sys.argv[11]  # the interpreter's install prefix and exe within it
code = open(code_path, "rb").read()
for d in ("/tmp", "/var/tmp", "/dev/shm"):
    if os.path.isdir(d):
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={tmpfs_mb}m,mode=1777", "tmpfs", d],
                       check=True)
# The interpreter may live where `nobody` cannot reach it (/root/.pyenv): bind its prefix,
# read-only, at a path that user can walk.
pyroot = "/tmp/.python"
os.mkdir(pyroot, 0o755)
subprocess.run(["mount", "--bind", prefix, pyroot], check=True)
subprocess.run(["mount", "-o", "remount,bind,ro", pyroot], check=True)
python = os.path.join(pyroot, exe)
work = "/tmp/work"
os.mkdir(work, 0o700)
with open(os.path.join(work, "main.py"), "wb") as f:
    f.write(code)
os.chown(work, uid, gid)
os.chown(os.path.join(work, "main.py"), uid, gid)
os.chdir(work)
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
cpu, mem, fsize, nproc, nofile = limits
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
env = {"PATH": "/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8"}
os.execve(python, [python, "-I", "-B", "main.py"], env)
"""


@dataclass
class SandboxResult:
    """How a sandboxed run ended."""

    passed: bool  # exited with status 0 within the limits
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str
    seconds: float
    isolation: str  # "namespaces" or "rlimits+audit-hook"

    @property
    def reason(self) -> str:
        if self.passed:
            return "passed"
        if self.timed_out:
            return "time limit"
        if self.returncode is not None and self.returncode < 0:
            try:
                return f"killed by {signal.Signals(-self.returncode).name}"
            except ValueError:
                return f"killed by signal {-self.returncode}"
        last = self.stderr.strip().splitlines()[-1:] or [f"exit code {self.returncode}"]
        return last[0][:300]


@functools.cache
def isolation() -> dict[str, str]:
    """What this machine allows: network and file isolation, checked once by running them."""
    ok = False
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("mount"):
        try:
            r = subprocess.run(
                [
                    "unshare",
                    "-n",
                    "-m",
                    "--propagation",
                    "private",
                    "mount",
                    "-t",
                    "tmpfs",
                    "tmpfs",
                    "/tmp",
                ],
                capture_output=True,
                timeout=20,
            )
            ok = r.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
    if ok:
        return {
            "mode": "namespaces",
            "network": "unshare -n (no interface up)",
            "files": "mount namespace: tmpfs /tmp, scratch dir, user nobody",
        }
    return {
        "mode": "rlimits+audit-hook",
        "network": "audit-hook (socket calls refused in-process)",
        "files": "audit-hook (writes outside the scratch dir refused in-process)",
    }


def _nobody() -> tuple[int, int]:
    try:
        p = pwd.getpwnam("nobody")
        return p.pw_uid, p.pw_gid
    except KeyError:
        return 65534, 65534


def _interpreter() -> tuple[str, str]:
    """(install prefix, executable path inside it) of the Python running this (not the venv's
    wrapper): the sandboxed program runs the bare standard library."""
    prefix = os.path.realpath(sys.base_prefix)
    exe = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    if not exe.startswith(prefix + os.sep):
        raise RuntimeError(f"sandbox: interpreter {exe} is not under its prefix {prefix}")
    return prefix, os.path.relpath(exe, prefix)


def _read_capped(path: Path, cap: int) -> str:
    with path.open("rb") as f:
        data = f.read(cap + 1)
    text = data[:cap].decode("utf-8", "replace")
    return text + ("\n[output truncated]" if len(data) > cap else "")


def run_python(
    code: str,
    timeout: float = 10.0,
    memory_mb: int = 512,
    cpu_s: int | None = None,
    file_mb: int = 16,
    max_procs: int = 64,
    output_bytes: int = 64_000,
    audit_hook: bool = True,
) -> SandboxResult:
    """Run `code` as a program in the sandbox; `passed` when it exits 0 within the limits.

    Never raises for anything the program does (time-outs, crashes, bombs): the result says.
    `audit_hook=False` leaves out the in-process guard (tests check each wall on its own).
    """
    cpu = cpu_s or max(1, int(timeout) + 1)
    mem = memory_mb * 1024 * 1024
    fsize = file_mb * 1024 * 1024
    mode = isolation()["mode"]
    host = Path(tempfile.mkdtemp(prefix="router-sandbox-"))
    try:
        scratch = host / "work"
        scratch.mkdir()
        program = (PREAMBLE if audit_hook else "") + "\n" + code
        (scratch / "main.py").write_text(program, encoding="utf-8")
        out_path, err_path = host / "stdout", host / "stderr"
        if mode == "namespaces":
            uid, gid = _nobody()
            cmd = [
                "unshare", "-n", "-m", "-p", "--fork", "--kill-child", "--propagation", "private",
                sys.executable, "-I", "-B", "-c", LAUNCHER, str(scratch / "main.py"),
                str(max(16, file_mb * 2)), str(uid), str(gid),
                str(cpu), str(mem), str(fsize), str(max_procs), "256", *_interpreter(),
            ]  # fmt: skip
            preexec = None
            cwd = str(host)
        else:
            cmd = [sys.executable, "-I", "-B", "main.py"]
            cwd = str(scratch)

            def preexec() -> None:  # rlimits in the child, before exec
                resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
                resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
                resource.setrlimit(resource.RLIMIT_NPROC, (max_procs, max_procs))
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        env = {"PATH": "/usr/bin:/bin", "HOME": cwd, "TMPDIR": cwd, "LANG": "C.UTF-8"}
        t0 = time.monotonic()
        timed_out = False
        with out_path.open("wb") as out, err_path.open("wb") as err:
            # Output goes to files (capped by RLIMIT_FSIZE in the fallback, read back with a
            # cap): a pipe nobody drains would block the program, and memory stays bounded.
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group, killed as a whole
                preexec_fn=preexec,  # noqa: PLW1509 - resource limits only, no locks taken
            )
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc)
        seconds = time.monotonic() - t0
        rc = proc.returncode
        return SandboxResult(
            passed=not timed_out and rc == 0,
            returncode=None if timed_out else rc,
            timed_out=timed_out,
            stdout=_read_capped(out_path, output_bytes),
            stderr=_read_capped(err_path, output_bytes),
            seconds=round(seconds, 3),
            isolation=mode,
        )
    finally:
        shutil.rmtree(host, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the program and everything it started (its session's process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
