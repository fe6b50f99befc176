"""Tokens and estimated cost of one answer, beside the all-large counterfactual."""

from __future__ import annotations

from typing import Any

from router.core.decision import Decision
from router.sdk.router import Router


def usage_of(obj: Any) -> tuple[int, int] | None:
    """(prompt, completion) tokens from a response or final stream chunk, if it reports them."""
    usage = getattr(obj, "usage", None)
    if usage is None:
        return None
    p = getattr(usage, "prompt_tokens", None) or 0
    c = getattr(usage, "completion_tokens", None) or 0
    return int(p), int(c)


def costs(router: Router, decision: Decision, usage: tuple[int, int] | None) -> tuple[float, float]:
    """(cost of the answering model, cost had the policy's first large model answered).

    With reported usage both are priced on the real token counts (catalogue prices); without,
    the Decision's own estimates are used. A cache hit cost nothing (`saved_cost` says what it
    saved); its all-large counterfactual stays.
    """
    if (decision.cache or {}).get("status") == "hit":
        large = router.policy(decision.policy).reference_large
        return 0.0, large.cost(*usage) if usage is not None else decision.large_cost_estimate
    if usage is None:
        cost, large_cost = decision.cost_estimate, decision.large_cost_estimate
    else:
        answered = router.config.model(decision.model)
        large = router.policy(decision.policy).reference_large
        cost, large_cost = answered.cost(*usage), large.cost(*usage)
    return cost + cascade_extra_cost(decision), large_cost


def cascade_extra_cost(decision: Decision) -> float:
    """What a cascade paid besides the answer that went out: the cheap call when it was
    escalated (its answer was discarded), the LLM verifier's call, and a speculative large
    call the verdict cancelled. The all-large
    counterfactual stays one large call: a cascade can cost more than it."""
    c = decision.cascade or {}
    extra = (c.get("judge_cost") or 0.0) + (c.get("speculative_cost") or 0.0)
    if c.get("mode") == "judged" and c.get("escalated") and c.get("cheap_cost") is not None:
        extra += c["cheap_cost"]
    return float(extra)
