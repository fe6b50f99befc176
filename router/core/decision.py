"""The routing receipt: the `Decision` the policy returns for a request, and each upstream
`Attempt` made for it after. Plain data: the policy fills it, the serving layer adds the
attempts, and every face (headers, JSON, the decision log) reads it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass
class Attempt:
    """One upstream call made for a request."""

    model: str
    ok: bool
    error: str | None = None
    ms: float = 0.0
    # Request parameters left out of this call: the model does not take them (`drop_params`).
    dropped: tuple[str, ...] = ()


@dataclass
class Decision:
    """The routing receipt: which model, why, and what it is expected to cost."""

    model: str
    tier: str
    policy: str
    domain: str | None
    domain_confidence: float | None
    difficulty: float | None
    gain: float | None
    success: dict[str, float]
    reason: str
    fallbacks: list[str]
    cost_estimate: float
    large_cost_estimate: float
    routing_ms: float = 0.0
    escalated: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    # The model the policy chose, when another one answered (fallback chain).
    wanted: str | None = None
    # The conversation this turn belongs to (router/serving/sessions.py), and whether the turn stayed
    # on the session's model (a tool loop or a sticky session) instead of a fresh choice.
    session: str | None = None
    sticky: bool | None = None
    # The decision log's key for this request, for feedback (set when a row is recorded).
    request_id: str | None = None
    # The budget controller's state when the policy has a budget (router/serving/budget.py).
    budget: dict | None = None
    # The cascade (router/serving/cascade.py): its mode, the verifier's probability and threshold,
    # whether it escalated, both calls' costs. None when the policy has no `cascade:`.
    cascade: dict | None = None
    # The evidence behind each success estimate: the model's labelled rows, its similar
    # labelled prompts near this one, and the pessimistic bound the policy compared.
    evidence: dict[str, dict[str, float]] = field(default_factory=dict)
    # Catalogue models the scorer has no rows for, and the stand-in whose estimate they used.
    unprofiled: dict[str, str] = field(default_factory=dict)
    # The response cache (router/serving/cache.py): status hit/miss/bypass, the similarity of
    # a hit, why a request bypassed it, the cost a hit saved. None when the cache is off.
    cache: dict | None = None
    # The privacy rule (router/core/privacy.py): the action and the kinds of private value
    # that fired it, never the values. None when nothing was detected (or privacy is off).
    privacy: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)

    def answered_by(self, model: str, tier: str, attempts: list[Attempt], note: str) -> Decision:
        """This decision after the fallback chain moved the call to another model."""
        return replace(
            self,
            model=model,
            tier=tier,
            attempts=attempts,
            reason=f"{self.reason}; {note}",
            wanted=self.wanted or self.model,
            # Another model answered: the turn did not stay on its session's model, and the
            # session moves to the one that answered.
            sticky=None if self.sticky is None else False,
        )
