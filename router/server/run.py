"""`router serve`: load the router, print how to call it, run uvicorn."""

from __future__ import annotations

import signal
from pathlib import Path

from ..config import load_config

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


def serve(config_path: Path, host: str | None = None, port: int | None = None) -> None:
    """Start the proxy for a `config.yaml` (host and port override its `server:` section)."""
    import uvicorn

    from ..router import Router
    from . import logs
    from .app import create_app
    from .auth import KeyRing

    cfg = load_config(config_path)
    spec = cfg.server
    if spec.decision_log and "://" not in spec.decision_log:
        # Like policies_dir and scorer: relative to the config file.
        db = (config_path.resolve().parent / spec.decision_log).resolve()
        spec = spec.model_copy(update={"decision_log": str(db)})
    host = host or spec.host
    port = port or spec.port
    router = Router.from_config(config_path)
    print(usage(host, port, KeyRing(spec).enabled), flush=True)
    if router.local_models:
        # Started by the app's lifespan (router/local.py) before the first request is accepted.
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


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)
