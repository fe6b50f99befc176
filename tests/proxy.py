"""The proxy app served in-process on 127.0.0.1 (a free port), for the server tests."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import uvicorn
import yaml


class Proxy:
    """`create_app(...)` in a uvicorn thread; `base_url` ends in /v1."""

    def __init__(self, app) -> None:
        self.app = app
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = self.url + "/v1"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Proxy:
        self.thread.start()
        deadline = time.time() + 60  # generous: the machine may be busy
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("proxy did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def decision_log(self):
        return self.app.state.decision_log


def _model(name: str, litellm_model: str, api_base: str, **extra) -> dict:
    return {
        "name": name,
        "litellm_model": litellm_model,
        "api_base": api_base,
        "input_price": 0.1,
        "output_price": 0.2,
        "context_window": 8000,
        "capabilities": ["tools", "json", "streaming"],
        "tier": "small",
        **extra,
    }


def write_server_config(src_cfg, dest, api_base: str):
    """The shared test config plus models that time out, rate-limit or cut their stream."""
    shutil.copytree(src_cfg.parent, dest)
    cfg_path = dest / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["models"] += [
        _model("slow", "openai/slow", api_base, timeout=1, retries=0),
        _model("limited", "openai/fail-429", api_base, retries=2),
        _model("cut", "openai/cut-stream", api_base),
        # Leaves out the parameters it does not take (test_server.py, drop_params).
        _model("lenient", "openai/lenient", api_base, drop_params=True),
    ]
    cfg_path.write_text(yaml.safe_dump(cfg))
    pol = dest / "policies"
    (pol / "slowonly.yaml").write_text("default: [slow]\nlarge: [slow]\n")
    (pol / "limited.yaml").write_text("default: [limited]\nlarge: [limited]\n")
    (pol / "allbroken.yaml").write_text("default: [broken]\nlarge: [broken]\n")
    (pol / "cutting.yaml").write_text("default: [cut]\nlarge: [large]\n")
    (pol / "lenient.yaml").write_text("default: [lenient]\nlarge: [lenient]\n")
    return cfg_path


_ROUTERS: dict = {}


def shared_server_router(test_config, tmp_path_factory, upstream):
    """One Router over the extended config for the whole session (loading one takes seconds)."""
    from router import Router

    if "router" not in _ROUTERS:
        dest = tmp_path_factory.mktemp("server") / "cfg"
        _ROUTERS["router"] = Router.from_config(
            write_server_config(test_config, dest, upstream.base_url)
        )
    return _ROUTERS["router"]


# ---- upstream faults ----------------------------------------------------------------------

# name in the catalogue → (upstream model, extra ModelSpec fields). Time-outs are short (2 s)
# so a hang costs little; "refused" points at a loopback port nobody listens on.
FAULTS: dict[str, tuple[str, dict]] = {
    "f500": ("fail-500", {"retries": 1}),
    "f502": ("fail-502", {"retries": 1}),
    "f503": ("fail-503", {"retries": 1}),
    "f429": ("fail-429", {"retries": 1}),
    "f429wait": ("retry-after-1", {"retries": 1}),
    "f429long": ("retry-after-3600", {"retries": 1}),
    "refused": ("refused", {"retries": 0}),
    "timeout": ("slow", {"retries": 0}),
    "hang": ("hang", {"retries": 0}),
    "stallbody": ("stall-body", {"retries": 0}),
    "malformed": ("malformed", {"retries": 0}),
    "cut": ("cut-stream", {"retries": 0}),
    "stall": ("stall-stream", {"retries": 0}),
    "garbage": ("garbage-stream", {"retries": 0}),
    "slowstream": ("slow-stream", {"retries": 0, "timeout": 10}),
    "switch": ("switch-a", {"retries": 0}),
    "gated": ("gated", {"retries": 0, "timeout": 60}),
    "gatedstream": ("gated-stream", {"retries": 0, "timeout": 60}),
    "leaky": ("echo-secret", {"retries": 0, "api_key_env": "ROUTER_TEST_PROVIDER_KEY"}),
    "smallwindow": ("small-window", {"retries": 0}),
    "patient": ("patient-20", {"retries": 0, "timeout": 30}),
    "nokey": ("echo", {"retries": 0, "api_key_env": "ROUTER_TEST_KEY_NEVER_SET"}),
    "tinywindow": ("echo", {"retries": 0, "context_window": 64}),
}
FAULT_TIMEOUT_S = 2.0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # released on close: nothing listens there


def write_fault_config(src_cfg, dest, api_base: str, breaker: dict | None = None):
    """The shared test config plus one model per upstream fault and, for each fault X, the
    policies `fb-X` (X, then falls back to `large`) and `only-X` (X alone: a clean error)."""
    shutil.copytree(src_cfg.parent, dest)
    cfg_path = dest / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    refused = f"http://127.0.0.1:{_closed_port()}/v1"
    for name, (upstream_model, extra) in FAULTS.items():
        base = refused if name == "refused" else api_base
        spec = {"timeout": FAULT_TIMEOUT_S, **extra}
        cfg["models"].append(_model(name, f"openai/{upstream_model}", base, **spec))
        (dest / "policies" / f"fb-{name}.yaml").write_text(
            f"default: [{name}]\nlarge: [large]\nescalation:\n  max_difficulty: 1.0\n"
        )
        (dest / "policies" / f"only-{name}.yaml").write_text(
            f"default: [{name}]\nlarge: [{name}]\n"
        )
    # A prompt too long for the first model, whose fallback cannot be called (no key).
    (dest / "policies" / "window-then-nokey.yaml").write_text(
        "default: [smallwindow]\nlarge: [nokey]\nescalation:\n  max_difficulty: 1.0\n"
    )
    # A prompt longer than the only callable model's window, which fits only a keyless one.
    (dest / "policies" / "tiny-then-nokey.yaml").write_text(
        "default: [tinywindow]\nlarge: [nokey]\n"
    )
    cfg["breaker"] = breaker or {"failures": 0}
    cfg_path.write_text(yaml.safe_dump(cfg))
    return cfg_path


def router_from(cfg_path, like):
    """A Router for `cfg_path` that reuses `like`'s encoder and scorer (no reload: fast)."""
    from router import Router
    from router.core.config import load_config, load_policies
    from router.core.data import domain_names

    config = load_config(cfg_path)
    policies = load_policies(cfg_path.parent / config.policies_dir, config, domain_names())
    return Router(config, policies, like.scorer, like.encoder)


# ---- `router serve` as a real process ------------------------------------------------------

SERVE_START_S = 180  # loading the encoder on a busy 2-core machine


class ServeProcess:
    """`python -m router.cli serve` in its own session on a free port; stopped by pid, never
    by name. `port` reuses a port (a restart behind the same URL). One process unless told:
    with workers, SIGTERM leaves the listener open until the parent exits and `kill -9` of the
    parent leaves its workers running."""

    def __init__(self, cfg, log, port: int | None = None, workers: int = 1) -> None:
        import os
        import subprocess
        import sys
        from pathlib import Path

        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        env.pop("ROUTER_API_KEYS", None)
        cmd = [sys.executable, "-m", "router.cli", "serve", "--config", str(cfg)]
        self.proc = subprocess.Popen(
            [*cmd, "--port", str(self.port), "--workers", str(workers)],
            stdout=Path(log).open("a"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
            start_new_session=True,
        )
        self.log = Path(log)
        self.db = None

    def wait_ready(self, path: str = "/ready") -> None:
        import httpx

        deadline = time.monotonic() + SERVE_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not become ready:\n{self.log.read_text()[-3000:]}")

    def refuses_connections(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return False
        except OSError:
            return True

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
