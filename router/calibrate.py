"""Tune a live policy's escalation threshold to a target on routing data.

The sweep runs the policy's own `CompiledPolicy.select` over the data's prompts. Each catalogue
model's outcome on a prompt is the data's score for that model when the data has it (by name or
`profile`), else its tier's stand-in: the mean score of the row's cheap models for a small model,
the score of the data's best non-cheap model for a large one. Cost is the catalogue price with
the prompt's estimated tokens and the config's `expected_output_tokens`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Policy, dump_policy
from .data import DataError, Example, tier_outcomes
from .evaluate import sweep_field, sweep_values
from .policy import CompiledPolicy, ScoreInput
from .request import estimate_tokens, normalise_messages

TARGET = re.compile(r"^(large-share|quality|cost-per-1k)=([0-9]*\.?[0-9]+)$")


class CalibrationError(ValueError):
    """The target cannot be parsed or met on the data."""


@dataclass
class OperatingPoint:
    param: float
    quality: float
    cost_per_1k: float
    large_share: float


@dataclass
class Calibration:
    field: str
    target: str
    point: OperatingPoint
    all_large_quality: float
    all_large_cost_per_1k: float
    policy: Policy
    curve: list[OperatingPoint]


def parse_target(text: str) -> tuple[str, float]:
    m = TARGET.match(text.strip())
    if not m:
        raise CalibrationError(
            f"--target {text!r}: use large-share=0.3, quality=0.95 (share of the all-large "
            "quality) or cost-per-1k=USD"
        )
    kind, value = m.group(1), float(m.group(2))
    if kind in ("large-share", "quality") and not 0 <= value <= 1:
        raise CalibrationError(f"--target {text!r}: {kind} must be between 0 and 1")
    return kind, value


def outcome_matrix(compiled: CompiledPolicy, examples: list[Example]) -> np.ndarray:
    """(n, K) score of each policy model on each prompt (real, or its tier's stand-in)."""
    out = np.zeros((len(examples), len(compiled.models)))
    for i, (ex, (cheap, large)) in enumerate(zip(examples, tier_outcomes(examples), strict=True)):
        if cheap is None or large is None:
            raise DataError(
                f"row {i + 1} ({ex.id or ex.source}): calibration needs cheap_models and at "
                "least one other model"
            )
        for k, spec in enumerate(compiled.models):
            for key in (spec.name, spec.profile):
                if key and key in ex.scores:
                    out[i, k] = ex.scores[key]
                    break
            else:
                out[i, k] = large if spec.tier == "large" else cheap
    return out


def calibrate(
    router,
    policy_name: str,
    examples: list[Example],
    target: str,
    X: np.ndarray | None = None,
    n_points: int = 401,
) -> Calibration:
    """Find the escalation setting of `policy_name` that meets `target` on `examples`."""
    kind, value = parse_target(target)
    base = router.policy(policy_name)
    policy = base.policy
    texts = [router.text_of(_messages(ex)) for ex in examples]
    if X is None:
        X = router.encoder.encode(texts)
    batch = router.scorer.predict(X, texts)
    n, K = len(examples), len(base.models)
    success = np.full((n, K), np.nan)
    for k, spec in enumerate(base.models):
        col = router._success_col.get(spec.name)
        if col is not None:
            success[:, k] = batch.success[:, col]
    tokens = np.array([estimate_tokens(normalise_messages(_messages(ex))) for ex in examples])
    out_tokens = router.config.expected_output_tokens
    cost = np.array([[m.cost(t, out_tokens) for m in base.models] for t in tokens])
    scores = outcome_matrix(base, examples)
    s = ScoreInput(
        batch.domain_probs,
        batch.difficulty,
        batch.gain,
        success,
        np.ones((n, K), bool),
        np.ones(n, bool),
        cost,
    )
    field = sweep_field(policy, two_tier=True)
    values = sweep_values(field, batch.difficulty, batch.gain, n_points)
    large_tier = np.array([m.tier == "large" for m in base.models])
    rows = np.arange(n)
    curve = []
    for v in values:
        esc = policy.escalation.model_copy(update={field: float(v)})
        p = CompiledPolicy(
            policy.model_copy(update={"escalation": esc}),
            router.config.models,
            router.scorer.domains_,
        )
        choice, _ = p.select(s)
        curve.append(
            OperatingPoint(
                float(v),
                float(scores[rows, choice].mean()),
                float(cost[rows, choice].mean() * 1000),
                float(large_tier[choice].mean()),
            )
        )
    ref = base.large_idx[0]
    all_large_q = float(scores[:, ref].mean())
    all_large_c = float(cost[:, ref].mean() * 1000)
    if kind == "large-share":
        ok = [c for c in curve if c.large_share <= value + 1e-12]
        pick = max(ok, key=lambda c: (c.quality, -c.cost_per_1k)) if ok else None
    elif kind == "quality":
        ok = [c for c in curve if c.quality >= value * all_large_q - 1e-12]
        pick = min(ok, key=lambda c: (c.cost_per_1k, -c.quality)) if ok else None
    else:
        ok = [c for c in curve if c.cost_per_1k <= value + 1e-12]
        pick = max(ok, key=lambda c: (c.quality, -c.cost_per_1k)) if ok else None
    if pick is None:
        lo = min(curve, key=lambda c: c.cost_per_1k)
        hi = max(curve, key=lambda c: c.quality)
        raise CalibrationError(
            f"target {target} cannot be met on this data: cost per 1k ranges "
            f"{lo.cost_per_1k:.4f}..{max(c.cost_per_1k for c in curve):.4f} USD, quality up to "
            f"{hi.quality:.4f} ({hi.quality / all_large_q:.1%} of all-large)"
        )
    esc = policy.escalation.model_copy(update={field: round(pick.param, 6)})
    tuned = policy.model_copy(update={"escalation": esc})
    return Calibration(field, target, pick, all_large_q, all_large_c, tuned, curve)


def _messages(ex: Example):
    return ex.messages if ex.messages is not None else ex.prompt


def write_policy(cal: Calibration, path: str | Path, name: str | None = None) -> Path:
    """Write the tuned policy (renamed to match a new file name if needed)."""
    path = Path(path)
    policy = cal.policy
    stem = name or path.stem
    if policy.name != stem:
        policy = policy.model_copy(update={"name": stem})
    dump_policy(policy, path)
    return path
