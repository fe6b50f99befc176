"""The request's "model" field → which policy routes it and whether a catalogue model is pinned.

"router" uses the caller's policy (its API key's, else the default); "router/<policy>" names
one; a catalogue model name is pinned, which bypasses the score stage (and the hard rules
listed after `pin` in the policy's `rules:`).
"""

from __future__ import annotations

from dataclasses import dataclass

from router.core.config import did_you_mean
from router.sdk.router import Router
from router.server.auth import Principal
from router.server.errors import APIError

ROUTER_MODEL = "router"


@dataclass(frozen=True)
class Target:
    policy: str | None
    pin: str | None


def router_model_names(router: Router) -> list[str]:
    """ "router" and "router/<policy>" for each configured policy."""
    return [ROUTER_MODEL, *(f"{ROUTER_MODEL}/{p}" for p in sorted(router.policies))]


def resolve(router: Router, principal: Principal, model: str) -> Target:
    """Map the model name to a Target; 404 for an unknown one, 403 for one the key may not use."""
    known = model in router_model_names(router) or _in_catalogue(router, model)
    if not known:
        # The names this key may use, as GET /v1/models lists them: the nearest one, and for
        # a policy name (they are few) every policy.
        names = router_model_names(router) + [m.name for m in router.config.models]
        names = [n for n in names if principal.may_use(n)]
        hint = did_you_mean(model, names)
        policies = ""
        mine = [n for n in names if n.startswith(ROUTER_MODEL + "/")]
        if model.startswith(ROUTER_MODEL + "/") and mine:
            policies = f"; the policies are {', '.join(mine)}"
        raise APIError(
            404,
            f"model {model!r} does not exist{hint}{policies}; GET /v1/models lists the router "
            "models and the catalogue",
            "model",
            "model_not_found",
        )
    if not principal.may_use(model):
        raise APIError(
            403, f"this API key may not use model {model!r}", "model", "model_not_allowed"
        )
    if model == ROUTER_MODEL:
        return Target(principal.policy, None)
    if model.startswith(ROUTER_MODEL + "/"):
        return Target(model.removeprefix(ROUTER_MODEL + "/"), None)
    policy = principal.policy or router.config.default_policy
    # A pin is decided inside a policy (its hard rules); use one that lists the model.
    if model not in router.policy(policy).names:
        policy = next(
            (p for p in sorted(router.policies) if model in router.policy(p).names), policy
        )
    return Target(policy, model)


def _in_catalogue(router: Router, model: str) -> bool:
    return any(m.name == model for m in router.config.models)
