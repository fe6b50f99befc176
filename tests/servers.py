"""Throwaway real servers for tests and benchmarks: `redis-server` and PostgreSQL.

Each is started from the binaries on the machine, on a free 127.0.0.1 port, with its data in a
temporary directory, and removed when stopped (as pytest-postgresql and pytest-redis do):

    redis = RedisServer().start()       # redis.url -> redis://127.0.0.1:<port>/0
    pg = PostgresServer().start()       # pg.create_database() -> postgresql://postgres@...
    ...
    redis.stop(); pg.stop()

A missing binary raises `ServerUnavailable` whose message says what to install; the pytest
fixtures turn it into a skip, or into a failure when ROUTER_REQUIRE_SERVERS=1 (CI sets it, so the
tests that need these servers cannot be skipped there). Servers are stopped at interpreter exit
too, so a crashed test run leaves no postmaster or redis-server behind.

Nothing here needs a Python client library: readiness is checked with a raw RESP `PING` and
`pg_ctl -w`, and SQL runs through `psql`, so bench/ can use this module as it is.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

START_S = 60.0  # a server must be up by then (the machine may be busy)
REQUIRE_ENV = "ROUTER_REQUIRE_SERVERS"


class ServerUnavailable(RuntimeError):
    """A server cannot be started here because its binaries (or its user) are missing."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def servers_required() -> bool:
    """True when a missing server must fail the tests instead of skipping them (CI)."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


_RUNNING: list = []  # servers to stop at exit


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        try:
            server.stop()
        except Exception:  # noqa: BLE001  (best effort at exit)
            pass


def _resp(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class RedisServer:
    """A `redis-server` on 127.0.0.1, nothing persisted. `kill()` and `start()` again (same
    port, same URL) let a test take Redis away and bring it back."""

    def __init__(self, binary: str | None = None, port: int | None = None) -> None:
        self.binary = (
            binary
            or os.environ.get("ROUTER_REDIS_SERVER")
            or _which("redis-server", ["/usr/bin", "/usr/local/bin"])
        )
        if not self.binary or not os.access(self.binary, os.X_OK):
            raise ServerUnavailable(
                "redis-server not found: install it (Debian/Ubuntu: apt-get install "
                "redis-server) or set ROUTER_REDIS_SERVER to its path"
            )
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="router-redis-"))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        if self.running:
            return self
        cmd = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.dir),
            "--daemonize", "no", "--loglevel", "warning",
        ]  # fmt: skip
        log = (self.dir / "redis.log").open("a")
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}: {self.log_tail()}"
                )
            try:
                if self.command("PING") == b"+PONG\r\n":
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            self.kill()
            raise RuntimeError(f"redis-server did not answer PING in {START_S} s")
        if self not in _RUNNING:
            _RUNNING.append(self)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self, *args: str, timeout: float = 5.0) -> bytes:
        """Send one command, return the raw reply (enough for PING/FLUSHALL/DBSIZE)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(_resp(*args))
            return s.recv(65536)

    def flush(self) -> None:
        """Empty every database (between tests)."""
        self.command("FLUSHALL")

    def kill(self) -> None:
        """SIGKILL: an outage as abrupt as a crash. `start()` brings it back on the same port."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.running:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self in _RUNNING:
            _RUNNING.remove(self)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.dir / "redis.log").read_text()[-n:]
        except OSError:
            return ""


def _which(name: str, dirs: list[str]) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in dirs:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def _postgres_bindir() -> str | None:
    env = os.environ.get("ROUTER_PG_BIN")
    if env:
        return env
    # Debian keeps each major version's binaries apart; take the newest one present.
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
    )
    for d in reversed(candidates):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return d
    initdb = shutil.which("initdb")
    if initdb:
        return str(Path(initdb).resolve().parent)
    return None


class PostgresServer:
    """A PostgreSQL cluster initialised into a temporary directory (trust auth, loopback only,
    fsync off: a test database, not a durable one).

    PostgreSQL refuses to run as root: when this process is root, initdb and pg_ctl run as the
    `postgres` user through runuser, and the directory is handed to that user."""

    def __init__(
        self, bindir: str | None = None, port: int | None = None, durable_commits: bool = False
    ) -> None:
        # durable_commits: synchronous_commit on, so a commit survives the server's own crash
        # (`kill()`), as on a production server (the bench kills it mid-run). fsync stays off:
        # the machine itself does not crash here.
        self.durable_commits = durable_commits
        self.bindir = bindir or _postgres_bindir()
        if not self.bindir or not all(
            os.access(Path(self.bindir) / b, os.X_OK) for b in ("initdb", "pg_ctl", "psql")
        ):
            raise ServerUnavailable(
                "PostgreSQL server binaries (initdb, pg_ctl, psql) not found: install them "
                "(Debian/Ubuntu: apt-get install postgresql) or set ROUTER_PG_BIN to their "
                "directory"
            )
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable(
                    "running as root and there is no `postgres` user to run PostgreSQL as: "
                    "create one (useradd postgres) or run the tests as a normal user"
                ) from None
            runuser = _which("runuser", ["/usr/sbin", "/sbin"])
            if not runuser:
                raise ServerUnavailable("running as root and runuser is missing (util-linux)")
            self.as_user = [runuser, "-u", "postgres", "--"]
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="router-pg-"))
        self.data = self.dir / "data"
        self.user = "postgres"
        self._started = False
        self._n = 0

    def _bin(self, name: str) -> str:
        return str(Path(self.bindir) / name)

    def _run(self, cmd: list[str], as_owner: bool = False, timeout: float = 120) -> str:
        full = (self.as_user if as_owner else []) + cmd
        res = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:2])} failed ({res.returncode}): {res.stderr}")
        return res.stdout

    def start(self) -> PostgresServer:
        if self._started:
            return self
        if self.as_user:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        if not self.data.exists():
            self._run(
                [self._bin("initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust",
                 "-E", "UTF8", "--no-sync", "--locale=C"],
                as_owner=True,
            )  # fmt: skip
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir}"
            f" -c fsync=off -c synchronous_commit={'on' if self.durable_commits else 'off'}"
            " -c full_page_writes=off"
            " -c max_connections=200"
        )
        self._run(
            [self._bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
             str(self.dir / "postgres.log"), "-w", "-t", str(int(START_S)), "start"],
            as_owner=True, timeout=START_S + 30,
        )  # fmt: skip
        self._started = True
        if self not in _RUNNING:
            _RUNNING.append(self)
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; returns its URL (one per test keeps tests apart)."""
        if name is None:
            self._n += 1
            name = f"test_{os.getpid()}_{self._n}"
        self.query(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def query(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql; returns unaligned, tuples-only output (`|`-separated)."""
        return self._run(
            [self._bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
             "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql]
        )  # fmt: skip

    def kill(self) -> None:
        """Stop at once, as a crash would (`pg_ctl stop -m immediate`); `start()` restarts it."""
        if self._started:
            self._run(
                [self._bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                as_owner=True,
            )
            self._started = False

    def stop(self) -> None:
        if self._started:
            try:
                self._run(
                    [self._bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                    as_owner=True,
                )
            finally:
                self._started = False
        if self in _RUNNING:
            _RUNNING.remove(self)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.dir / "postgres.log").read_text()[-n:]
        except OSError:
            return ""


# ---- pytest fixtures (imported into tests/conftest.py) ---------------------------------------

try:
    import pytest
except ImportError:  # used outside pytest (bench/): no fixtures
    pytest = None

if pytest is not None:

    def _start_or_skip(factory):
        try:
            return factory().start()
        except ServerUnavailable as e:
            if servers_required():
                pytest.fail(f"{e} ({REQUIRE_ENV} is set, so this is a failure)")
            pytest.skip(str(e))

    @pytest.fixture(scope="session")
    def redis_server():
        """A session's `RedisServer` (tests that kill it must call `.start()` again)."""
        server = _start_or_skip(RedisServer)
        yield server
        server.stop()

    @pytest.fixture
    def redis_url(redis_server) -> str:
        """redis://127.0.0.1:<port>/0 of a running, empty Redis."""
        redis_server.start()  # a previous test may have killed it
        redis_server.flush()
        return redis_server.url

    @pytest.fixture(scope="session")
    def postgres_server():
        """A session's `PostgresServer`."""
        server = _start_or_skip(PostgresServer)
        yield server
        server.stop()

    @pytest.fixture
    def postgres_url(postgres_server) -> str:
        """postgresql://postgres@127.0.0.1:<port>/<fresh database> for one test."""
        postgres_server.start()  # a previous test may have killed it
        return postgres_server.create_database()
