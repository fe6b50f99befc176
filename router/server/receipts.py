"""The routing receipt as `x-router-*` response headers (ASCII-safe)."""

from __future__ import annotations

import re
from urllib.parse import quote

from router.core.decision import Decision

# Reason texts use a few mathematical signs; headers must be ASCII (RFC 9110 field values).
_ASCII = str.maketrans({"→": "->", "≤": "<=", "≥": ">=", "−": "-", "×": "x", "…": "..."})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def header_value(value: object) -> str:
    """Printable ASCII: known signs spelled out, anything else percent-encoded, no CR/LF."""
    text = _CONTROL.sub(" ", str(value).translate(_ASCII))
    return quote(text, safe=" !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") if not text.isascii() else text


def receipt_headers(decision: Decision, request_id: str, latency_ms: float) -> dict[str, str]:
    """`x-router-*` headers for a decision (after the fallback chain ran, if it did)."""
    conf = decision.domain_confidence
    diff = decision.difficulty
    attempts = ",".join(f"{a.model}:{'ok' if a.ok else 'failed'}" for a in decision.attempts)
    headers = {
        "x-request-id": request_id,
        "x-router-model": decision.model,
        # The policy's choice when a fallback answered (its key missing, its server down ...).
        "x-router-wanted": decision.wanted or decision.model,
        "x-router-tier": decision.tier,
        "x-router-policy": decision.policy,
        "x-router-domain": decision.domain or "none",
        "x-router-domain-confidence": "" if conf is None else f"{conf:.4f}",
        "x-router-difficulty": "" if diff is None else f"{diff:.4f}",
        "x-router-reason": decision.reason,
        "x-router-escalated": "true" if decision.escalated else "false",
        "x-router-fallbacks": ",".join(decision.fallbacks),
        "x-router-attempts": attempts,
        "x-router-routing-ms": f"{decision.routing_ms:.2f}",
        # The conversation (router/serving/sessions.py); sticky: the turn kept the session's model.
        "x-router-session": decision.session or "",
        "x-router-sticky": "" if decision.sticky is None else str(decision.sticky).lower(),
        "x-router-latency-ms": f"{latency_ms:.1f}",
    }
    if decision.unprofiled:
        # Models the scorer has no rows for, and the stand-in whose estimate each one used.
        headers["x-router-unprofiled"] = ",".join(
            f"{m}={s}" for m, s in sorted(decision.unprofiled.items())
        )
    answered = decision.attempts[-1] if decision.attempts and decision.attempts[-1].ok else None
    if answered is not None and answered.dropped:
        # Parameters the answering model does not take, left out of its call (drop_params).
        headers["x-router-dropped-params"] = ",".join(answered.dropped)
    ev = decision.evidence.get(decision.wanted or decision.model)
    if ev:
        # The evidence behind the chosen model's success estimate, and the bound compared.
        headers["x-router-evidence"] = (
            f"rows={ev.get('rows')} neighbours={ev.get('neighbours')} lower={ev.get('lower')}"
        )
    headers.update(cascade_headers(decision))
    headers.update(budget_headers(decision))
    headers.update(cache_headers(decision))
    headers.update(privacy_headers(decision))
    return {k: header_value(v) for k, v in headers.items()}


def cache_headers(decision: Decision) -> dict[str, str]:
    """`x-router-cache: hit|miss|bypass` with the similarity and saved cost of a hit, the
    reason of a bypass, the guard's verdict on the nearest question of a miss. Empty with the
    cache off."""
    c = decision.cache
    if not c:
        return {}
    out = {"x-router-cache": str(c.get("status"))}
    if c.get("status") == "hit":
        out["x-router-cache-kind"] = str(c.get("kind"))
        out["x-router-cache-similarity"] = f"{c.get('similarity', 1.0):.4f}"
        out["x-router-cache-saved-usd"] = f"{c.get('saved_cost') or 0.0:.10f}"
    elif c.get("status") == "bypass":
        out["x-router-cache-reason"] = str(c.get("reason"))
    elif c.get("guard"):
        out["x-router-cache-reason"] = f"nearest {c.get('nearest'):.4f}: {c.get('guard')}"
    return out


def privacy_headers(decision: Decision) -> dict[str, str]:
    """`x-router-privacy`: the kinds of private value detected (never the values) and the
    action taken. Empty when nothing was detected or privacy is off."""
    p = decision.privacy
    if not p:
        return {}
    return {
        "x-router-privacy": ",".join(p.get("rules") or []),
        "x-router-privacy-action": str(p.get("action")),
    }


def cascade_headers(decision: Decision) -> dict[str, str]:
    """`x-router-cascade-*`: the cascade's mode, the verifier's probability and threshold,
    whether it escalated, and each call's cost (router/serving/cascade.py). Empty without a cascade."""
    c = decision.cascade
    if not c:
        return {}

    def num(v: object, fmt: str) -> str:
        return "" if v is None else format(v, fmt)

    return {
        "x-router-cascade-mode": str(c.get("mode") or ""),
        "x-router-cascade-probability": num(c.get("probability"), ".4f"),
        # How much the answer weighed against the router's prompt estimate, and whether it
        # looked unlike the verifier's training answers (router/core/verifier.py).
        "x-router-cascade-answer-weight": num(c.get("answer_weight"), ".4f"),
        "x-router-cascade-out-of-distribution": ""
        if c.get("out_of_distribution") is None
        else str(c["out_of_distribution"]).lower(),
        "x-router-cascade-threshold": num(c.get("threshold"), "g"),
        "x-router-cascade-escalated": "true" if c.get("escalated") else "false",
        "x-router-cascade-cheap-model": str(c.get("first") or ""),
        "x-router-cascade-cheap-cost": num(c.get("cheap_cost"), ".10f"),
        "x-router-cascade-large-cost": num(c.get("large_cost"), ".10f"),
        # The large call started early on the first tokens: "used" or "cancelled" (and paid).
        "x-router-cascade-speculative": _speculative(c.get("speculative")),
    }


def _speculative(s: dict | None) -> str:
    if not s:
        return ""
    if s.get("used"):
        return "used"
    return "failed" if s.get("failed") else "cancelled"  # failed: it cost nothing


def budget_headers(decision: Decision) -> dict[str, str]:
    """`x-router-budget-*`: the budget controller's target, the threshold it had the policy
    use, and the window's measured share and spend (router/serving/budget.py). Empty without a budget."""
    b = decision.budget
    if not b:
        return {}

    def num(v: object, fmt: str) -> str:
        return "" if v is None else format(v, fmt)

    target = b.get("target") or {}
    return {
        "x-router-budget-target": ",".join(f"{k}={v:g}" for k, v in target.items()),
        "x-router-budget-threshold": f"{b.get('threshold_field')}={num(b.get('threshold'), '.4f')}",
        "x-router-budget-large-share": num(b.get("large_share"), ".4f"),
        "x-router-budget-usd-per-hour": num(b.get("usd_per_hour"), ".6f"),
        "x-router-budget-window-requests": num(b.get("window_requests"), "d"),
    }
