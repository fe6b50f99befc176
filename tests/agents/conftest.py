"""Shared set-up of the agent tests: a tool-using loopback upstream, its catalogue and policies.

Every policy here decides without the scorer's help (`max_difficulty: 1.0`, no domain
specialists): the fresh choice is the first default model the hard rules leave, else the large
one. So what a test sees across turns is the session's doing, not the scorer's.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from router.server import create_app
from tests.agents.upstream import AgentUpstream
from tests.proxy import Proxy, router_from

TOOLS_CAPABLE = {"small-tools", "large", "flip"}


def write_agent_config(directory: Path, api_base: str) -> Path:
    (directory / "policies").mkdir(parents=True, exist_ok=True)

    def model(name, upstream, tier, caps, price, **extra):
        return {
            "name": name,
            "litellm_model": f"openai/{upstream}",
            "api_base": api_base,
            "input_price": price,
            "output_price": price * 2,
            "context_window": 8000 if tier == "small" else 128000,
            "capabilities": caps,
            "tier": tier,
            "retries": 0,
            **extra,
        }

    cfg = {
        "scorer": "default",
        "default_policy": "agents",
        "breaker": {"failures": 0},
        "models": [
            model("small", "small", "small", ["json", "streaming"], 0.1),
            model("small-tools", "small-tools", "small", ["tools", "json", "streaming"], 0.2),
            model("flip", "switch-flip", "small", ["tools", "json", "streaming"], 0.15),
            model("large", "large", "large", ["tools", "json", "vision", "streaming"], 5.0),
            model("embedder", "embedder", "small", ["streaming"], 0.01),
            model("broken", "fail-500", "small", ["streaming"], 0.01),
            model("cutter", "cut-stream", "small", ["tools", "json", "streaming"], 0.3),
        ],
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    policies = {
        "agents": "default: [small-tools]\nlarge: [large]",
        "sticky": "default: [small]\nlarge: [large]",
        "loose": "default: [small]\nlarge: [large]\nsession: {allow_downgrade: true}",
        "nosession": "default: [small-tools]\nlarge: [large]\nsession: {sticky: false}",
        "flaky": "default: [flip]\nlarge: [large]\nfallbacks: [large]",
        "cutting": "default: [cutter]\nlarge: [large]",
    }
    for name, body in policies.items():
        text = f"{body}\nescalation: {{max_difficulty: 1.0}}\n"
        (directory / "policies" / f"{name}.yaml").write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def agent_upstream():
    up = AgentUpstream().start()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def agent_router(agent_upstream, router, tmp_path_factory):
    """A Router over the agent catalogue; reuses the session router's encoder and scorer."""
    cfg = write_agent_config(tmp_path_factory.mktemp("agents"), agent_upstream.base_url)
    return router_from(cfg, router)


@pytest.fixture(scope="module")
def agent_proxy(agent_router, tmp_path_factory):
    spec = agent_router.config.server.model_copy(
        update={"decision_log": str(tmp_path_factory.mktemp("agentlog") / "d.db"), "keys_env": None}
    )
    p = Proxy(create_app(agent_router, spec)).start()
    yield p
    p.stop()
