"""Helpers for the tests of the learning loop (shadow judging, hot reload, budgets, drift):
a config over a loopback upstream, a proxy around it, polling without sleeps-as-assertions."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from router.server import create_app
from tests.proxy import Proxy

ADMIN_KEY = "admin-key-for-tests-0123456789"
USER_KEY = "user-key-for-tests-0123456789"


def model(name: str, upstream_model: str, api_base: str, tier: str = "small", **extra) -> dict:
    return {
        "name": name,
        "litellm_model": f"openai/{upstream_model}",
        "api_base": api_base,
        "input_price": extra.pop("input_price", 0.1),
        "output_price": extra.pop("output_price", 0.2),
        "context_window": 8000,
        "capabilities": ["tools", "json", "streaming"],
        "tier": tier,
        "retries": 0,
        "timeout": extra.pop("timeout", 30),
        **extra,
    }


def write_config(
    directory: Path,
    api_base: str,
    models: list[dict] | None = None,
    policies: dict[str, dict] | None = None,
    scorer: str = "default",
    **top: Any,
) -> Path:
    """config.yaml + policies/ in `directory`; defaults: a cheap model, a large one, a judge."""
    (directory / "policies").mkdir(parents=True, exist_ok=True)
    models = models or [
        model("cheap", "cheap", api_base),
        model("large", "large", api_base, tier="large", input_price=5, output_price=15),
        model("judge", "judge", api_base, input_price=1, output_price=1),
    ]
    cfg = {
        "scorer": scorer,
        "default_policy": "balanced",
        "breaker": {"failures": 0},
        "decision_log": str(directory / "decisions.db"),
        "server": {"keys_env": None},
        "models": models,
        **top,
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    policies = policies or {
        "balanced": {
            "default": ["cheap"],
            "large": ["large"],
            "escalation": {"max_difficulty": 1.0},
        }
    }
    for name, body in policies.items():
        (directory / "policies" / f"{name}.yaml").write_text(yaml.safe_dump(body))
    return path


def router_for(cfg_path: Path, like: Any = None):
    """A Router for `cfg_path`; with `like`, it reuses its encoder and scorer (fast)."""
    from router import Router
    from router.core.config import load_config, load_policies
    from router.core.data import domain_names

    if like is None:
        return Router.from_config(cfg_path)
    config = load_config(cfg_path)
    policies = load_policies(cfg_path.parent / config.policies_dir, config, domain_names())
    r = Router(config, policies, like.scorer, like.encoder)
    r.base_dir = cfg_path.resolve().parent
    r.config_path = cfg_path.resolve()
    return r


def serve(router, **server: Any) -> Proxy:
    spec = router.config.server.model_copy(update=server)
    return Proxy(create_app(router, spec)).start()


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; generous for a busy machine."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def chat(client, text: str, model: str = "router", **extra) -> Any:
    return client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}], **extra},
    )


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text page (labels in any order), or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        head, _, value = line.rpartition(" ")
        sample, _, rest = head.partition("{")
        if sample != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
        if found == labels:
            return float(value)
    return None
