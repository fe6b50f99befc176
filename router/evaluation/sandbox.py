"""Run untrusted generated code (a model's function plus a dataset's asserts) in a subprocess.

One job: execute a Python program so that whatever it does fails only itself, and say whether
it ran to its end. Layers, each applied where this machine allows it (`isolation()` says which):

- a fresh process of the bare interpreter (not the venv): `python -I -S -B` (the standard
  library only: no site-packages, no .pth files), an empty environment,
  stdin closed, a wall-clock time limit after which its whole process group is killed;
- rlimits: CPU seconds, address space (memory), file size, number of processes (fork bombs:
  `max_procs` more than its user runs already, as RLIMIT_NPROC counts all of them),
  open files; and, by the guard, the number of files created (`max_files`), so the scratch dir
  holds at most `max_files` x the file size, on the host's /tmp too without namespaces;
- **namespaces** (root, `unshare` works): a network namespace with no usable interface (even
  127.0.0.1 is unreachable), a PID namespace (everything the program starts dies with it) and a
  mount namespace where /tmp, /var/tmp and /dev/shm are fresh size-limited tmpfs mounts; the
  program runs in a scratch directory on that tmpfs as the unprivileged user `nobody`;
- always, inside the program: the guard of `sandbox_guard.py` (an audit hook that ends the
  process on a file-system change outside the scratch directory, a socket, a process, a signal
  to another process, native code or interpreter introspection; functions without an audit
  event replaced). Without namespaces (mode "audit-hook") it is the only file and network wall,
  so callers that care refuse that mode unless told otherwise (`router profile
  --allow-weak-sandbox`).

**Did it run to its end?** Exit status 0 is not enough: `os._exit(0)` exits 0 from anywhere.
The parent sends a random token through a pipe that the guard program reads and closes before
the untrusted code is compiled; the token comes back on a second pipe only when the interpreter
finalises normally, which the harness allows only after the whole program ran (see
`sandbox_guard.py`). It is never in the program's text, argv, environment or output.

Output is read with a cap, so a program printing gigabytes cannot fill memory.
"""

from __future__ import annotations

import fcntl
import functools
import os
import pwd
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MODES = ("namespaces", "audit-hook")
GUARD_SOURCE = Path(__file__).with_name("sandbox_guard.py")

# The in-namespace launcher (runs as root inside fresh namespaces, then drops to `nobody`).
LAUNCHER = r"""
import os, resource, subprocess, sys
src, tmpfs_mb, uid, gid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
limits = [int(x) for x in sys.argv[5:10]]
prefix, exe = sys.argv[10], sys.argv[11]  # the interpreter's install prefix and exe within it
args = sys.argv[12:]  # main.py's: the pipes' fd numbers, the guard switch, the file count
files = {name: open(os.path.join(src, name), "rb").read() for name in os.listdir(src)}
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
for name, data in files.items():
    with open(os.path.join(work, name), "wb") as f:
        f.write(data)
    os.chown(os.path.join(work, name), uid, gid)
os.chown(work, uid, gid)
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
os.execve(python, [python, "-I", "-S", "-B", "main.py", *args[:3], work, *args[3:]], env)
"""


@dataclass
class SandboxResult:
    """How a sandboxed run ended."""

    passed: bool  # ran to its end and exited with status 0, within the limits
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str
    seconds: float
    isolation: str  # "namespaces" or "audit-hook"
    completed: bool = False  # the completion token came back: the program ran to its end

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
        if self.returncode == 0:
            return "exited with status 0 before the end of the program"
        last = self.stderr.strip().splitlines()[-1:] or [f"exit code {self.returncode}"]
        return last[0][:300]


@functools.cache
def isolation() -> dict[str, str]:
    """The strongest mode this machine allows, checked once by running it.

    `strong` is "yes" for namespaces; "no" for the audit-hook mode, where the in-process guard
    is the only file and network wall."""
    ok = False
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("mount"):
        try:
            r = subprocess.run(
                ["unshare", "-n", "-m", "--propagation", "private",
                 "mount", "-t", "tmpfs", "tmpfs", "/tmp"],
                capture_output=True,
                timeout=20,
            )  # fmt: skip
            ok = r.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
    if ok:
        return {
            "mode": "namespaces",
            "strong": "yes",
            "network": "unshare -n (no interface up), and the guard",
            "files": "mount namespace: tmpfs /tmp, scratch dir, user nobody; and the guard",
        }
    return weak_isolation("not root" if os.geteuid() != 0 else "unshare is missing or refused")


def weak_isolation(why: str) -> dict[str, str]:
    """What the audit-hook mode offers (`why`: why namespaces are not used)."""
    return {
        "mode": "audit-hook",
        "strong": "no",
        "network": f"the guard's audit hook only ({why})",
        "files": "the guard's audit hook only: changes outside the scratch dir refused in-process",
    }


def weak_refusal(allow_weak: bool, option: str = "--allow-weak-sandbox") -> str | None:
    """Why generated code must not run here, or None: the audit-hook mode needs consent."""
    if isolation()["strong"] == "yes" or allow_weak:
        return None
    return (
        "only the audit-hook sandbox is available here (no root or no unshare), an in-process "
        "wall that generated code shares its interpreter with; run as root where unshare "
        f"works, or accept it with {option}"
    )


def describe(info: dict[str, str] | None = None) -> str:
    """One line for a user: the mode and what walls it has."""
    info = info or isolation()
    return f"{info['mode']} (network: {info['network']}; files: {info['files']})"


def _user(name: str) -> tuple[int, int]:
    try:
        p = pwd.getpwnam(name)
        return p.pw_uid, p.pw_gid
    except KeyError:
        if name == "nobody":
            return 65534, 65534
        raise ValueError(f"sandbox: no user {name!r}") from None


def _interpreter() -> tuple[str, str]:
    """(install prefix, executable path inside it) of the Python running this (not the venv's
    wrapper): the sandboxed program runs the bare standard library."""
    prefix = os.path.realpath(sys.base_prefix)
    exe = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    if not exe.startswith(prefix + os.sep):
        raise RuntimeError(f"sandbox: interpreter {exe} is not under its prefix {prefix}")
    return prefix, os.path.relpath(exe, prefix)


def user_tasks(uid: int) -> int:
    """How many tasks (threads, which RLIMIT_NPROC counts) the user `uid` runs now, from /proc
    (0 where it cannot say). The program's limit is this plus `max_procs`: a limit of 64 alone
    would leave a user who runs 300 tasks no fork at all (code_eval's harness forks one), and
    concurrent runs as `nobody` would share one budget."""
    count = 0
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:  # the effective uid: a first filter
                continue
            with open(f"/proc/{pid}/status", "rb") as f:
                fields = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
            if int(fields[b"Uid"].split()[0]) == uid:  # the real uid, which the limit counts
                count += int(fields[b"Threads"])
        except (OSError, KeyError, ValueError, IndexError):
            continue  # it ended meanwhile, or /proc shows no such fields
    return count


def _read_capped(path: Path, cap: int) -> str:
    with path.open("rb") as f:
        data = f.read(cap + 1)
    text = data[:cap].decode("utf-8", "replace")
    return text + ("\n[output truncated]" if len(data) > cap else "")


def _read_pipe(fd: int, cap: int = 256) -> bytes:
    """What is in a pipe now, without waiting (a leftover child may still hold its other end)."""
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    try:
        return os.read(fd, cap)
    except BlockingIOError:
        return b""


def run_python(
    code: str,
    timeout: float = 10.0,
    memory_mb: int = 512,
    cpu_s: int | None = None,
    file_mb: int = 16,
    max_procs: int = 64,
    max_files: int = 32,
    output_bytes: int = 64_000,
    audit_hook: bool = True,
    mode: str | None = None,
    user: str | None = None,
    python: str | None = None,
) -> SandboxResult:
    """Run `code` as a program in the sandbox; `passed` when it ran to its end and exited 0
    within the limits.

    Never raises for anything the program does (time-outs, crashes, bombs): the result says.
    `audit_hook=False` leaves out the in-process guard (tests check each wall on its own).
    The guard lets the program create at most `max_files` files and directories (each open that
    may create one counts), so with `file_mb` per file its disk use is bounded in every mode.
    `mode` forces "audit-hook" (no namespaces) where namespaces would be used; there, as root,
    `user` runs the program as that user and `python` names an interpreter it can execute.
    """
    available = isolation()["mode"]
    mode = mode or available
    if mode not in MODES:
        raise ValueError(f"sandbox: mode {mode!r}: one of {MODES}")
    if mode == "namespaces" and available != "namespaces":
        raise ValueError("sandbox: namespaces are not available here (needs root and unshare)")
    cpu = cpu_s or max(1, int(timeout) + 1)
    mem = memory_mb * 1024 * 1024
    fsize = file_mb * 1024 * 1024
    host = Path(tempfile.mkdtemp(prefix="router-sandbox-"))
    token = secrets.token_hex(16).encode()
    token_r, token_w = os.pipe()
    verdict_r, verdict_w = os.pipe()
    try:
        scratch = host / "work"
        scratch.mkdir()
        (scratch / "main.py").write_text(
            GUARD_SOURCE.read_text(encoding="utf-8") + "\n\nmain(sys.argv)\n", encoding="utf-8"
        )
        (scratch / "program.py").write_text(code, encoding="utf-8")
        os.write(token_w, token)
        os.close(token_w)
        token_w = -1
        fds = [str(token_r), str(verdict_w), "1" if audit_hook else "0"]
        limits = [str(max_files)]  # after the scratch dir
        out_path, err_path = host / "stdout", host / "stderr"
        if mode == "namespaces":
            uid, gid = _user(user or "nobody")
            nproc = max_procs + user_tasks(uid)
            cmd = [
                "unshare", "-n", "-m", "-p", "--fork", "--kill-child", "--propagation", "private",
                sys.executable, "-I", "-B", "-c", LAUNCHER, str(scratch),
                str(max(16, file_mb * 2)), str(uid), str(gid),
                str(cpu), str(mem), str(fsize), str(nproc), "256", *_interpreter(), *fds,
                *limits,
            ]  # fmt: skip
            preexec = None
            cwd = str(host)
        else:
            exe = python or os.path.join(*_interpreter())
            cmd = [exe, "-I", "-S", "-B", "main.py", *fds, str(scratch), *limits]
            cwd = str(scratch)
            ids = _user(user) if user is not None else None
            if ids is not None:
                for p in (host, scratch, *scratch.iterdir()):
                    os.chown(p, *ids)
            uid = ids[0] if ids is not None else os.getuid()
            nproc = max_procs + (user_tasks(uid) if uid != 0 else 0)  # root: not limited

            def preexec() -> None:  # rlimits (and the user) in the child, before exec
                resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
                resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
                resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
                if ids is not None:
                    os.setgroups([])
                    os.setgid(ids[1])
                    os.setuid(ids[0])

        env = {"PATH": "/usr/bin:/bin", "HOME": cwd, "TMPDIR": cwd, "LANG": "C.UTF-8"}
        t0 = time.monotonic()
        timed_out = False
        with out_path.open("wb") as out, err_path.open("wb") as err:
            # Output goes to files (capped by RLIMIT_FSIZE, read back with a cap): a pipe
            # nobody drains would block the program, and memory stays bounded.
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=(token_r, verdict_w),
                start_new_session=True,  # its own process group, killed as a whole
                preexec_fn=preexec,  # noqa: PLW1509 - resource limits only, no locks taken
            )
            os.close(token_r)
            os.close(verdict_w)
            token_r = verdict_w = -1
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc)
        seconds = time.monotonic() - t0
        rc = proc.returncode
        completed = _read_pipe(verdict_r) == token
        return SandboxResult(
            passed=not timed_out and rc == 0 and completed,
            returncode=None if timed_out else rc,
            timed_out=timed_out,
            stdout=_read_capped(out_path, output_bytes),
            stderr=_read_capped(err_path, output_bytes),
            seconds=round(seconds, 3),
            isolation=mode,
            completed=completed,
        )
    finally:
        for fd in (token_r, token_w, verdict_r, verdict_w):
            if fd >= 0:
                os.close(fd)
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
