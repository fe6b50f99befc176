"""`router serve`: load the router, print how to call it, run uvicorn."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from router.core.config import RouterConfig, load_config
from router.sdk.demo import escalation_note

USAGE = """\
router proxy on http://{host}:{port}  (OpenAI-compatible; model "router" routes, "router/<policy>" picks a policy)

  curl http://{host}:{port}/v1/chat/completions \\
    -H 'Content-Type: application/json'{auth_curl} \\
    -d '{{"model": "router", "messages": [{{"role": "user", "content": "What is 17 * 23?"}}]}}' -i

  from openai import OpenAI
  client = OpenAI(base_url="http://{host}:{port}/v1", api_key={key})
  r = client.chat.completions.with_raw_response.create(
      model="router", messages=[{{"role": "user", "content": "What is 17 * 23?"}}])
  print(r.headers["x-router-model"], r.headers["x-router-reason"], r.parse().choices[0].message.content)

  also: GET /v1/models, POST /v1/route (decision only), GET /metrics, GET /health, GET /ready
"""


def usage(host: str, port: int, auth: bool) -> str:
    """The banner printed before the server starts."""
    return USAGE.format(
        host=host,
        port=port,
        auth_curl=' \\\n    -H "Authorization: Bearer $ROUTER_KEY"' if auth else "",
        key='os.environ["ROUTER_KEY"]' if auth else '"not-needed"',
    )


def _server_spec(config_path: Path, config=None):
    spec = (config or load_config(config_path)).server
    if spec.decision_log and "://" not in spec.decision_log:
        # Like policies_dir and scorer: relative to the config file.
        db = (config_path.resolve().parent / spec.decision_log).resolve()
        spec = spec.model_copy(update={"decision_log": str(db)})
    return spec


def default_workers() -> int:
    """One worker process per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def serve(
    config_path: Path,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> None:
    """Start the proxy for a `config.yaml` (host and port override its `server:` section).

    `workers` processes (default: one per core) accept on the one port (uvicorn's process
    manager); each loads its own router, /metrics sums every worker's counters, and local
    GGUF models are served once for all of them (`_serve_workers`).
    """
    from router.server.auth import KeyRing, check_admin_key
    from router.serving.state import check_state_url

    config = load_config(config_path)
    spec = _server_spec(config_path, config)
    check_admin_key(spec)  # before the router loads: a short key is said at once
    state = config.state
    if state is not None:
        # Before any worker starts: a URL redis-py cannot use is one error, not a traceback
        # at each worker's start or at every call.
        check_state_url(state, config_path)
    host = host or spec.host
    port = port or spec.port
    workers = workers or default_workers()
    # Held from here until uvicorn binds it: a port another server listens on is one line
    # before anything starts. (Not a second `router serve` started while the first's workers
    # start: uvicorn's parent binds without listening, and both then bind.)
    held = claim_port(host, port)
    try:
        if workers > 1:
            print(usage(host, port, KeyRing(spec).enabled), flush=True)
            note, is_warning = per_process_note(config, workers)
            if note:  # a warning to stderr; the default's plain line to stdout
                print(note, file=sys.stderr if is_warning else sys.stdout, flush=True)
            print(f"  {_escalations(config_path)}\n", flush=True)
            _serve_workers(config_path, host, port, workers, spec.shutdown_grace_s, held.close)
            return
        _serve_one(config_path, host, port, spec, held.close)
    finally:
        held.close()


def _serve_one(config_path: Path, host: str, port: int, spec, release) -> None:
    """One process: the router, its app and uvicorn (`release`: the port, just before)."""
    import uvicorn

    from router.sdk.router import Router
    from router.server import logs
    from router.server.app import create_app
    from router.server.auth import KeyRing

    if os.environ.get(MULTIPROC_ENV):  # set by the user: prometheus_client writes there
        Path(os.environ[MULTIPROC_ENV]).mkdir(parents=True, exist_ok=True)
    router = Router.from_config(config_path)
    print(usage(host, port, KeyRing(spec).enabled), flush=True)
    # One plain line on what happens to escalations with the keys set now (router/sdk/demo.py).
    print(f"  {escalation_note(router.config, router.policies)}", flush=True)
    print(f"  {encoder_line(router)}\n", flush=True)
    if router.local_models:
        # Started by the app's lifespan (router/serving/local.py) before the first request is accepted.
        names = ", ".join(router.local_models)
        print(f"  local models (llama.cpp, free loopback port): {names}; state: GET /ready\n")
    listener = logs.configure()
    app = create_app(router, spec, settle_heap=True)
    # uvicorn shuts down gracefully on SIGTERM, then raises it again to die by it; a handler
    # of ours turns that into a normal exit, so the `finally` below flushes the last log lines.
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        release()
        # Our middleware writes the JSON access log; uvicorn's own would duplicate it.
        uvicorn.run(
            app,
            host=host,
            port=port,
            access_log=False,
            log_config=None,
            # SIGTERM: stop accepting, let in-flight requests and streams finish this long.
            timeout_graceful_shutdown=spec.shutdown_grace_s,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        if listener is not None:
            listener.stop()


def per_process_note(config: RouterConfig, workers: int) -> tuple[str, bool]:
    """What several workers without `state:` keep each to itself (docs/scaling.md). By
    default (`make run`: a worker per core, no `state:`) that is as it should be, and said as
    a plain line; a warning only when a rate limit is set, which each worker would allow in
    full. Returns (the text, whether it is a warning); ("", False) when there is nothing to say."""
    if workers <= 1 or config.state is not None:
        return "", False
    server = config.server
    if server.rate_limit is None and not any(k.rate_limit for k in server.keys):
        return (
            f"  {workers} worker processes: each keeps its own circuit breakers, budgets, "
            "sessions and cache; set `state:` to a Redis URL to share them (docs/scaling.md).\n"
        ), False
    return (
        f"  warning: {workers} worker processes and no `state:`: each allows a key's whole "
        f"rate limit ({workers} times it in all) and keeps its own circuit breakers, budgets "
        "and sessions (a conversation may change model between workers). Set `state: "
        "redis://host:6379/0` in the config to share them (docs/scaling.md), or run with "
        "--workers 1.\n"
    ), True


def encoder_line(router) -> str:
    """How the encoder runs here, as measured at start-up (router/core/autotune.py)."""
    plan = getattr(router.encoder, "plan", None)
    if plan is None:
        return f"encoder {router.encoder.identity}"
    how = "measured" if plan.threads_measured else "set"
    return (
        f"encoder {router.encoder.identity}: {plan.threads} thread(s) per call ({how}), "
        f"{plan.lanes} call(s) at once, up to {plan.batch} text(s) a call, "
        f"{plan.cores} core(s) for this process"
    )


def local_model_line(name: str, snap: dict) -> str:
    """A local model's state once started (its log line goes nowhere in the workers' parent)."""
    if snap.get("state") == "ready":
        return f"local model {name}: ready in {snap.get('ready_s') or 0:.1f} s"
    return (
        f"local model {name}: not ready ({snap.get('error')}); retried in the background, "
        "its requests go to its fallbacks meanwhile"
    )


def _escalations(config_path: Path) -> str:
    from router.core.config import load_policies
    from router.core.data import domain_names

    config = load_config(config_path)
    policies = load_policies(
        config_path.resolve().parent / config.policies_dir, config, domain_names()
    )
    return escalation_note(config, policies)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


# ---- several worker processes -----------------------------------------------------------

CONFIG_ENV = "ROUTER_SERVE_CONFIG"  # how `worker_app` in each worker finds the config file
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode
START_LOCK_ENV = "ROUTER_SERVE_START_LOCK"  # a file the workers lock while building their app
LOCAL_STATE_ENV = "ROUTER_SERVE_LOCAL_STATE"  # the shared local servers' state (JSON file)


def _serve_workers(
    config_path: Path, host: str, port: int, workers: int, grace: float, release
) -> None:
    """uvicorn's process manager: one listening socket, `workers` processes accepting on it,
    each restarted if it dies. Prometheus' multiprocess mode sums their metrics: each worker
    writes its samples under PROMETHEUS_MULTIPROC_DIR (a fresh temporary directory unless
    set), and any worker's /metrics reads them all. Local GGUF models are started here, once,
    before the workers, and stopped once after them; the workers read their state from a
    file (`LocalModelsView`). Each worker's encoder counts on its share of the cores."""
    from router.core.autotune import PROCESSES_ENV

    # The workers inherit these; put back as they were after, for a caller in the same process.
    with _environment_restored(
        CONFIG_ENV, PROCESSES_ENV, START_LOCK_ENV, MULTIPROC_ENV, LOCAL_STATE_ENV
    ):
        os.environ[CONFIG_ENV] = str(config_path.resolve())
        os.environ.setdefault(PROCESSES_ENV, str(workers))  # set by the user: theirs to say
        work = Path(tempfile.mkdtemp(prefix="router-serve-"))
        try:
            _run_workers(config_path, host, port, workers, grace, work, release)
        finally:
            shutil.rmtree(work, ignore_errors=True)  # the lock, the state file, our metrics


def _run_workers(
    config_path: Path,
    host: str,
    port: int,
    workers: int,
    grace: float,
    work: Path,
    release,
) -> None:
    import uvicorn

    from router.serving.local import LocalModels

    lock = work / "start.lock"
    lock.touch()
    os.environ[START_LOCK_ENV] = str(lock)
    metrics_dir = os.environ.get(MULTIPROC_ENV)
    if not metrics_dir:
        metrics_dir = str(work / "metrics")
        Path(metrics_dir).mkdir()
        os.environ[MULTIPROC_ENV] = metrics_dir
    else:
        Path(metrics_dir).mkdir(parents=True, exist_ok=True)
        for old in Path(metrics_dir).glob("*.db"):  # a previous run's samples
            old.unlink()
    config = load_config(config_path)
    local = None
    if any(m.is_local for m in config.models):
        state = work / "local-models.json"
        local = LocalModels(config.models, config_path.resolve().parent, state_file=state)
        names = ", ".join(local.servers)
        print(
            f"  local models (llama.cpp, one server each for all workers): {names}",
            flush=True,
        )
        # Not strict: a model that does not come up is retried while its fallbacks answer.
        local.start(strict=False)
        for name, snap in local.snapshot().items():
            print(f"  {local_model_line(name, snap)}", flush=True)
        os.environ[LOCAL_STATE_ENV] = str(state)
    print(f"  {workers} worker processes; /metrics sums them ({MULTIPROC_ENV}={metrics_dir})\n")
    try:
        release()  # the port, for uvicorn to bind at once
        uvicorn.run(
            "router.server.run:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=grace,
        )
    finally:
        if local is not None:
            local.stop()
    failed = work / FAILED_FILE
    if failed.exists():
        raise WorkerStartError(f"a worker could not start: {failed.read_text()}")


FAILED_FILE = "failed"  # in the work directory: why the first worker could not start
STARTED_FILE = "started"  # in the work directory: a worker has built its app


class CannotListen(RuntimeError):
    """`router serve` cannot listen where asked: the port is taken, or the host is not this
    machine's (the CLI: one red line)."""


def claim_port(host: str, port: int) -> socket.socket:
    """The port, bound and listening, until uvicorn takes it over (close it just before).

    Bound as uvicorn binds it (SO_REUSEADDR: a connection of a previous run still in TIME_WAIT
    is no conflict); on Linux that still fails while another socket listens there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1)
    except OSError as e:
        sock.close()
        # Only a port in use is the port's fault: a host that does not resolve or is not this
        # machine's address is fixed with --host.
        hint = (
            " (another router serve?); choose another port with --port"
            if e.errno == errno.EADDRINUSE
            else "; check --host (server.host)"
        )
        raise CannotListen(f"cannot listen on {host}:{port}: {e.strerror or e}{hint}") from None
    return sock


class WorkerStartError(RuntimeError):
    """No worker of `router serve --workers N` could build its app (the CLI: one red line)."""


@contextlib.contextmanager
def _environment_restored(*names: str):
    """Environment variables as they were before the block, whatever it set."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def worker_app():
    """The app of one worker process (`router serve --workers N`): loads its own router.

    Until one worker has built its app, a worker that cannot (a database down at start, a
    bad setting only the app checks) stops them all: uvicorn would otherwise start it again
    and again, forever, with the port bound and nothing answering. It leaves the reason for
    the parent (`_run_workers`) and exits as uvicorn's start-up failures do. Later, a worker
    that dies is started again by uvicorn while the others serve."""
    work = Path(os.environ[START_LOCK_ENV]).parent
    try:
        app = _worker_app()
    except Exception as e:
        if (work / STARTED_FILE).exists():
            raise
        from uvicorn.config import STARTUP_FAILURE

        logging.getLogger("router.server").error(
            "worker %d could not start", os.getpid(), exc_info=True
        )
        with contextlib.suppress(OSError):
            (work / FAILED_FILE).write_text(str(e) or type(e).__name__)
        sys.exit(STARTUP_FAILURE)
    (work / STARTED_FILE).touch()
    return app


def _worker_app():
    import atexit

    from router.sdk.router import Router
    from router.server import logs
    from router.server.app import create_app
    from router.serving.local import LocalModelsView

    path = Path(os.environ[CONFIG_ENV])
    router = Router.from_config(path)
    if router.local_models and os.environ.get(LOCAL_STATE_ENV):
        # The parent runs the local servers for every worker: this one only reads their state.
        router.local = LocalModelsView(Path(os.environ[LOCAL_STATE_ENV]), router.local_models)
    listener = logs.configure()
    if listener is not None:
        atexit.register(listener.stop)  # flush the last log lines
    print(f"  worker {os.getpid()}: {encoder_line(router)}", flush=True)
    # One worker at a time builds its app: building opens (and may create or migrate) the
    # decision log, which two processes must not do at once.
    with open(os.environ[START_LOCK_ENV], "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return create_app(router, _server_spec(path), settle_heap=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
