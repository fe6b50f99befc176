"""`router serve`: load the router, print how to call it, run uvicorn."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import tempfile
from pathlib import Path

from router.core.config import load_config
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


def _server_spec(config_path: Path):
    spec = load_config(config_path).server
    if spec.decision_log and "://" not in spec.decision_log:
        # Like policies_dir and scorer: relative to the config file.
        db = (config_path.resolve().parent / spec.decision_log).resolve()
        spec = spec.model_copy(update={"decision_log": str(db)})
    return spec


def serve(
    config_path: Path, host: str | None = None, port: int | None = None, workers: int = 1
) -> None:
    """Start the proxy for a `config.yaml` (host and port override its `server:` section).

    `workers` > 1 runs that many processes on the one port (uvicorn's process manager); each
    loads its own router, and /metrics sums every worker's counters (`_serve_workers`).
    """
    import uvicorn

    from router.sdk.router import Router
    from router.server import logs
    from router.server.app import create_app
    from router.server.auth import KeyRing

    spec = _server_spec(config_path)
    host = host or spec.host
    port = port or spec.port
    if workers > 1:
        print(usage(host, port, KeyRing(spec).enabled), flush=True)
        print(f"  {_escalations(config_path)}\n", flush=True)
        _serve_workers(config_path, host, port, workers, spec.shutdown_grace_s)
        return
    if os.environ.get(MULTIPROC_ENV):  # set by the user: prometheus_client writes there
        Path(os.environ[MULTIPROC_ENV]).mkdir(parents=True, exist_ok=True)
    router = Router.from_config(config_path)
    print(usage(host, port, KeyRing(spec).enabled), flush=True)
    # One plain line on what happens to escalations with the keys set now (router/sdk/demo.py).
    print(f"  {escalation_note(router.config, router.policies)}\n", flush=True)
    if router.local_models:
        # Started by the app's lifespan (router/serving/local.py) before the first request is accepted.
        names = ", ".join(router.local_models)
        print(f"  local models (llama.cpp, free loopback port): {names}; state: GET /ready\n")
    listener = logs.configure()
    app = create_app(router, spec)
    # uvicorn shuts down gracefully on SIGTERM, then raises it again to die by it; a handler
    # of ours turns that into a normal exit, so the `finally` below flushes the last log lines.
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
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


def _serve_workers(config_path: Path, host: str, port: int, workers: int, grace: float) -> None:
    """uvicorn's process manager: one listening socket, `workers` processes accepting on it,
    each restarted if it dies. Prometheus' multiprocess mode sums their metrics: each worker
    writes its samples under PROMETHEUS_MULTIPROC_DIR (a fresh temporary directory unless
    set), and any worker's /metrics reads them all."""
    import uvicorn

    os.environ[CONFIG_ENV] = str(config_path.resolve())
    fd, lock = tempfile.mkstemp(prefix="router-serve-", suffix=".lock")
    os.close(fd)
    os.environ[START_LOCK_ENV] = lock
    metrics_dir = os.environ.get(MULTIPROC_ENV)
    owned = not metrics_dir
    if owned:
        metrics_dir = tempfile.mkdtemp(prefix="router-metrics-")
        os.environ[MULTIPROC_ENV] = metrics_dir
    else:
        Path(metrics_dir).mkdir(parents=True, exist_ok=True)
        for old in Path(metrics_dir).glob("*.db"):  # a previous run's samples
            old.unlink()
    print(f"  {workers} worker processes; /metrics sums them ({MULTIPROC_ENV}={metrics_dir})\n")
    try:
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
        Path(lock).unlink(missing_ok=True)
        if owned:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def worker_app():
    """The app of one worker process (`router serve --workers N`): loads its own router."""
    import atexit

    from router.sdk.router import Router
    from router.server import logs
    from router.server.app import create_app

    path = Path(os.environ[CONFIG_ENV])
    router = Router.from_config(path)
    listener = logs.configure()
    if listener is not None:
        atexit.register(listener.stop)  # flush the last log lines
    # One worker at a time builds its app: building opens (and may create or migrate) the
    # decision log, which two processes must not do at once.
    with open(os.environ[START_LOCK_ENV], "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return create_app(router, _server_spec(path))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
