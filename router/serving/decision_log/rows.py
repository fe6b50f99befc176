"""A decision-log row: built from a Decision (`decision_row`), the routing embedding as int8,
and feedback scores."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from router.core.decision import Decision

from router.serving.decision_log.schema import ROUTING_TEXT

# ---- the row ------------------------------------------------------------------------------


def quantize(vector: np.ndarray) -> tuple[bytes, float]:
    """An embedding as int8 bytes and the scale that restores it (max |v| ↦ 127)."""
    v = np.asarray(vector, dtype=np.float32).ravel()
    peak = float(np.abs(v).max()) if v.size else 0.0
    scale = peak / 127 if peak > 0 else 1.0
    return np.clip(np.round(v / scale), -127, 127).astype(np.int8).tobytes(), scale


def dequantize(blob: bytes, scale: float) -> np.ndarray:
    """The float embedding of `quantize`'s bytes, unit-normed as the encoder's rows are."""
    v = np.frombuffer(blob, dtype=np.int8).astype(np.float32) * float(scale)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def decision_row(
    decision: Decision | None,
    request_id: str,
    *,
    kind: str = "chat",
    ts: float | None = None,
    status: int | None = 200,
    routing_text: str | None = None,
    usage: tuple[int, int] | None = None,
    cost: tuple[float, float] | None = None,
    scrub: Callable[[str | None], str | None] = lambda s: s,
    **fields: Any,
) -> dict[str, Any]:
    """The decision-log row of one request: the one builder behind every writer.

    `routing_text` is what the router embedded; the log turns it into the int8 embedding and
    keeps the text itself only with `store_text`. `cost` is (estimate, large-model estimate),
    by default the decision's own; `scrub` hides secrets and quoted prompts in error texts.
    `fields` are further columns (key_name, requested_model, stream, error, latency_ms, ...).
    """
    row: dict[str, Any] = {
        "request_id": request_id,
        "ts": time.time() if ts is None else ts,
        "kind": kind,
        "status": status,
        **fields,
    }
    if decision is not None:
        d = decision
        attempts = [{**a.__dict__, "error": scrub(a.error)} for a in d.attempts]
        for attempt in attempts:
            if not attempt["dropped"]:  # kept only where a call left parameters out
                del attempt["dropped"]
        cache = d.cache or {}
        if cost is None:  # a cache hit called no model
            own = 0.0 if cache.get("status") == "hit" else d.cost_estimate
            cost = (own, d.large_cost_estimate)
        row.update(
            policy=d.policy,
            model=d.model,
            tier=d.tier,
            domain=d.domain,
            domain_confidence=d.domain_confidence,
            difficulty=d.difficulty,
            gain=d.gain,
            success=json.dumps(d.success),
            reason=scrub(d.reason),
            escalated=d.escalated,
            # Another model was tried after a failure: the only model failing is no fallback.
            fell_back=any(not a.ok for a in d.attempts[:-1]),
            attempts=json.dumps(attempts, ensure_ascii=False),
            upstream_ms=sum(a.ms for a in d.attempts),
            routing_ms=d.routing_ms,
            # Scrubbed field by field: JSON escaping would hide a quoted prompt from a replace.
            decision=json.dumps(
                {**d.to_dict(), "reason": scrub(d.reason), "attempts": attempts},
                ensure_ascii=False,
            ),
            cost_estimate=cost[0],
            large_cost_estimate=cost[1],
            cache=cache.get("status"),
            saved_cost=cache.get("saved_cost") if cache.get("status") == "hit" else None,
            privacy=",".join(d.privacy.get("rules") or []) if d.privacy else None,
            privacy_action=d.privacy.get("action") if d.privacy else None,
        )
    if usage is not None:
        row.update(prompt_tokens=usage[0], completion_tokens=usage[1])
    if routing_text:
        row[ROUTING_TEXT] = routing_text
    return row


def feedback_score(value: Any) -> float:
    """A feedback score: a number in [0, 1], or "up" (1.0) / "down" (0.0)."""
    if isinstance(value, str):
        named = {"up": 1.0, "down": 0.0}.get(value.strip().lower())
        if named is None:
            raise ValueError(f'score must be a number in [0, 1], "up" or "down", got {value!r}')
        return named
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f'score must be a number in [0, 1], "up" or "down", got {value!r}')
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"score must be in [0, 1], got {value!r}")
    return float(value)


def _cell(v: Any) -> Any:
    if isinstance(v, str) and "\x00" in v:
        return v.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, list | dict):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, np.generic):
        return v.item()
    return v
