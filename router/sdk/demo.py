"""`router demo`: everyday and hard prompts routed by a config's policies, no model called.

What a newcomer sees in seconds and without any key: each decision and its reason, the share
kept on small models, and the estimated cost against sending everything to the large model.
Also what `router serve` says at start-up about escalations when a key is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from router.core.config import RouterConfig, load_config, load_policies
from router.core.data import domain_names
from router.core.decision import Decision
from router.core.policy import CompiledPolicy

if TYPE_CHECKING:  # the encoder and scorer load only when a tour needs them
    from router.sdk.router import Router


@dataclass(frozen=True)
class DemoPrompt:
    text: str
    kind: str  # "everyday" or "hard"


def demo_prompts() -> list[DemoPrompt]:
    """The prompts shipped in router/resources/demo_prompts.yaml."""
    text = resources.files("router").joinpath("resources", "demo_prompts.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return [DemoPrompt(p, kind) for kind in ("everyday", "hard") for p in data[kind]]


@dataclass
class PolicyTour:
    """One policy's decisions on the demo prompts."""

    policy: str
    decisions: list[Decision]

    @property
    def kept_small(self) -> int:
        return sum(d.tier == "small" for d in self.decisions)

    @property
    def cost(self) -> float:
        return sum(d.cost_estimate for d in self.decisions)

    @property
    def large_cost(self) -> float:
        return sum(d.large_cost_estimate for d in self.decisions)

    @property
    def saved(self) -> float | None:
        return 1 - self.cost / self.large_cost if self.large_cost > 0 else None


def tour(router: Router, prompts: list[DemoPrompt], policies: list[str] | None = None):
    """Route every prompt with each policy (all of the config's by default): one encoder call."""
    names = policies or sorted(router.policies)
    texts = [p.text for p in prompts]
    return [PolicyTour(name, router.route_many(texts, policy=name)) for name in names]


def load_routers(paths: list[Path]) -> list[Router]:
    """Routers for several configs; those naming the same encoder and scorer share them (the
    encoder and the scorer load once)."""
    from router.sdk.router import Router

    out: list[Router] = []
    for path in paths:
        first = out[0] if out else None
        config = load_config(path)
        if first is not None and (config.encoder, config.scorer) == (
            first.config.encoder,
            first.config.scorer,
        ):
            base = path.resolve().parent
            if config.scorer == "default" or (base / config.scorer) == (
                first.base_dir / first.config.scorer
            ):
                policies = load_policies(base / config.policies_dir, config, domain_names())
                r = Router(config, policies, first.scorer, first.encoder)
                r.base_dir, r.config_path = base, path.resolve()
                out.append(r)
                continue
        out.append(Router.from_config(path))
    return out


def shipped_configs(root: Path = Path(".")) -> list[Path]:
    """`config.yaml` and `configs/*.yaml` under `root` (the repository's shipped configs)."""
    found = [root / "config.yaml"] if (root / "config.yaml").is_file() else []
    return found + sorted((root / "configs").glob("*.yaml"))


# ---- keys -------------------------------------------------------------------------------------


def _callable_now(config: RouterConfig, name: str) -> bool:
    """True when the model can be called without a missing key (local models count)."""
    spec = config.model(name)
    return spec.api_key_env is None or bool(os.environ.get(spec.api_key_env))


def escalation_note(config: RouterConfig, policies: dict, policy: str | None = None) -> str:
    """One plain line: where the policy's escalations go, given the keys set right now."""
    name = policy or config.default_policy
    compiled = CompiledPolicy(policies[name], config.models, domain_names())
    large = compiled.reference_large
    if _callable_now(config, large.name):
        key = f" ({large.api_key_env} is set)" if large.api_key_env else ""
        return f"escalations: the {name} policy sends them to {large.name}{key}."
    chosen = compiled.names.index(large.name)
    order = compiled.fallbacks(chosen, np.ones(len(compiled.names), dtype=bool), -1)
    stand_in = next((m for m in order if _callable_now(config, m)), None)
    then = (
        f"answered by {stand_in} instead (the receipt says so)"
        if stand_in
        else "refused: no model of its fallback chain has a key"
    )
    return (
        f"escalations: {large.api_key_env} is not set, so requests the {name} policy escalates "
        f"to {large.name} are {then}; set it to reach {large.name}, or run `router demo` to see "
        "routing without any key."
    )
