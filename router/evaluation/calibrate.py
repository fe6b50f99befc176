"""Tune a live policy's escalation threshold to a target on routing data, and verify it.

The sweep runs the policy's own `CompiledPolicy.select` over the data's prompts. Each catalogue
model's outcome on a prompt is the data's score for that model when the data has it (by name or
`profile`), else its tier's stand-in: the mean score of the row's cheap models for a small model,
the score of the data's best non-cheap model for a large one. Cost is the catalogue price with
the prompt's estimated tokens and the config's `expected_output_tokens`.

`calibrate_shipped` (`make policies`) does this for every shipped policy, for the pool it ships
with, on prompts the shipped scorer did not train on: it calibrates on one half of them and
verifies the written policy, with the shipped scorer, on the other half.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from router.core.config import ModelSpec, Policy, dump_policy, load_policies, load_policy
from router.core.data import (
    DataError,
    Example,
    domain_names,
    group_key,
    read_many,
    tier_outcomes,
    with_cheap_tier,
)
from router.core.policy import CompiledPolicy, ScoreInput
from router.core.request import estimate_tokens, normalise_messages
from router.evaluation.evaluate import sweep_field, sweep_values

TARGET = re.compile(r"^(large-share|quality|cost-per-1k)=([0-9]*\.?[0-9]+)$")

# What each shipped policy is tuned to (`make policies`).
SHIPPED_TARGETS = {
    "balanced": "quality=0.95",  # 95% of the all-large quality, as cheaply as possible
    "cost-saver": "large-share=0.15",  # at most 15% of calls to the large model
    "quality-first": "quality=0.99",
}
# Each shipped config and, through its `policies_dir`, the policies that ship with its pool.
SHIPPED_CONFIGS = ("config.yaml", "configs/pool.yaml")
# Fewer rows than this on either side refuse; the table shows each figure's standard error.
MIN_ROWS = 10


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
    # The rows calibrated on; those left out for lack of a cheap or large outcome
    # (`measured_rows`); the cheap models the data never scores, stood in for; the large models
    # it never scores, whose outcomes are the data's best large model's (`tier_outcomes`).
    rows: int = 0
    dropped: int = 0
    stood_in: list[str] = field(default_factory=list)
    large_stood_in: list[str] = field(default_factory=list)


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


def own_outcomes(compiled: CompiledPolicy, examples: Sequence[Example]) -> np.ndarray:
    """(n, K) bool: whether the data scores policy model k itself on row i (by name or profile)."""
    out = np.zeros((len(examples), len(compiled.models)), dtype=bool)
    for k, spec in enumerate(compiled.models):
        keys = {key for key in (spec.name, spec.profile) if key}
        out[:, k] = [bool(keys & ex.scores.keys()) for ex in examples]
    return out


def with_catalogue_tier(catalogue: Sequence[ModelSpec], examples: list[Example]) -> list[Example]:
    """The rows, those that name no `cheap_models` each with the models it scores that the
    catalogue puts in the small tier (by name or profile), or, when the catalogue places none
    or all of their models there, the cheaper half by cost (`with_cheap_tier`)."""
    untiered = [ex for ex in examples if not ex.cheap_models]
    if not untiered:
        return examples
    small = {key for m in catalogue if m.tier == "small" for key in (m.name, m.profile) if key}
    scored = {m for ex in untiered for m in ex.scores}
    if not small & scored or scored <= small:
        return with_cheap_tier(examples)[0]
    return [
        ex if ex.cheap_models else replace(ex, cheap_models=sorted(small & ex.scores.keys()))
        for ex in examples
    ]


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


def small_models(compiled: CompiledPolicy) -> list[int]:
    """Indices of the models the policy keeps requests on (its default and specialists)."""
    idx = set(compiled.default_idx)
    for ks in compiled.cheap_idx:
        idx.update(ks)
    return sorted(idx)


def pool_rows(
    compiled: CompiledPolicy, examples: Sequence[Example]
) -> tuple[np.ndarray, list[str]]:
    """Rows that measure the policy's own cheap models: (mask, models stood in for).

    A row counts when it has cheap and large outcomes and scores every cheap model of the policy
    that the data scores anywhere; a cheap model the data never scores cannot be measured and is
    stood in for (the mean of the row's cheap models), and named. The large tier keeps its
    stand-in (the data's best large model) where its own score is missing."""
    own = own_outcomes(compiled, examples)
    small = small_models(compiled)
    measured = [k for k in small if own[:, k].any()]
    stood_in = [compiled.names[k] for k in small if k not in measured]
    tiers = tier_outcomes(examples)
    ok = np.array([c is not None and g is not None for c, g in tiers], dtype=bool)
    if measured:
        ok &= own[:, measured].all(axis=1)
    return ok, stood_in


def measured_rows(
    router, policy_name: str, examples: Sequence[Example], X: np.ndarray | None = None
) -> tuple[list[Example], np.ndarray | None, int, list[str]]:
    """The rows that measure the policy (`pool_rows`), each with its catalogue tier: (rows, their
    embeddings, how many were left out, the cheap models stood in for). A row missing a label
    the policy needs (the cheap model's score where the data scores it elsewhere, or every
    large model's) is left out, as `router eval` leaves such rows out, rather than given
    another model's score or failing the whole run."""
    tiered = with_catalogue_tier(router.config.models, list(examples))
    compiled = router.policy(policy_name)
    mask, stood_in = pool_rows(compiled, tiered)
    keep = np.flatnonzero(mask)
    if not len(keep):
        small = ", ".join(compiled.names[k] for k in small_models(compiled))
        raise CalibrationError(
            f"none of the {len(tiered)} rows scores both the cheap models of policy "
            f"{policy_name!r} ({small}; by name or profile) and a model outside them"
        )
    rows = [tiered[i] for i in keep]
    return rows, None if X is None else X[keep], len(tiered) - len(keep), stood_in


@dataclass
class _Inputs:
    """One policy's sweep inputs on a set of prompts."""

    compiled: CompiledPolicy
    scores: ScoreInput
    outcomes: np.ndarray  # (n, K)
    cost: np.ndarray  # (n, K) USD
    large_tier: np.ndarray  # (K,) bool


def _inputs(router, policy_name: str, examples: list[Example], X: np.ndarray | None) -> _Inputs:
    base = router.policy(policy_name)
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
    s = ScoreInput(
        batch.domain_probs,
        batch.difficulty,
        batch.gain,
        success,
        np.ones((n, K), bool),
        np.ones(n, bool),
        cost,
        comparable=None if router.comparable is None else base.comparable_matrix(router.comparable),
    )
    large_tier = np.array([m.tier == "large" for m in base.models])
    outcomes = outcome_matrix(base, with_catalogue_tier(router.config.models, examples))
    return _Inputs(base, s, outcomes, cost, large_tier)


def _point(router, inp: _Inputs, policy: Policy, param: float) -> OperatingPoint:
    compiled = CompiledPolicy(policy, router.config.models, router.scorer.domains_)
    choice, _ = compiled.select(inp.scores)
    rows = np.arange(len(choice))
    return OperatingPoint(
        float(param),
        float(inp.outcomes[rows, choice].mean()),
        float(inp.cost[rows, choice].mean() * 1000),
        float(inp.large_tier[choice].mean()),
    )


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
    examples, X, dropped, stood_in = measured_rows(router, policy_name, examples, X)
    inp = _inputs(router, policy_name, examples, X)
    policy = inp.compiled.policy
    own = own_outcomes(inp.compiled, examples)
    large_stood_in = [inp.compiled.names[k] for k in inp.compiled.large_idx if not own[:, k].any()]
    field_name = sweep_field(policy, two_tier=True)
    values = sweep_values(field_name, inp.compiled, inp.scores, n_points)
    curve = []
    for v in values:
        esc = policy.escalation.model_copy(update={field_name: float(v)})
        curve.append(_point(router, inp, policy.model_copy(update={"escalation": esc}), v))
    ref = inp.compiled.large_idx[0]
    all_large_q = float(inp.outcomes[:, ref].mean())
    all_large_c = float(inp.cost[:, ref].mean() * 1000)
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
    esc = policy.escalation.model_copy(update={field_name: round(pick.param, 6)})
    tuned = policy.model_copy(update={"escalation": esc})
    return Calibration(
        field_name,
        target,
        pick,
        all_large_q,
        all_large_c,
        tuned,
        curve,
        len(examples),
        dropped,
        stood_in,
        large_stood_in,
    )


@dataclass
class Verification:
    """A policy as it is, measured on prompts: its operating point and the all-large one."""

    policy: str
    rows: int
    point: OperatingPoint
    all_large_quality: float
    all_large_cost_per_1k: float
    quality_se: float = 0.0  # standard error of point.quality over the rows

    @property
    def quality_vs_all_large(self) -> float:
        return self.point.quality / self.all_large_quality if self.all_large_quality else 0.0


def verify(
    router, policy_name: str, examples: list[Example], X: np.ndarray | None = None
) -> Verification:
    """Measure `policy_name` with the router's scorer and thresholds, unchanged, on `examples`."""
    inp = _inputs(router, policy_name, examples, X)
    policy = inp.compiled.policy
    field_name = sweep_field(policy, two_tier=True)
    param = getattr(policy.escalation, field_name)
    ref = inp.compiled.large_idx[0]
    choice, _ = inp.compiled.select(inp.scores)
    got = inp.outcomes[np.arange(len(choice)), choice]
    return Verification(
        policy_name,
        len(examples),
        _point(router, inp, policy, param if param is not None else float("nan")),
        float(inp.outcomes[:, ref].mean()),
        float(inp.cost[:, ref].mean() * 1000),
        float(got.std(ddof=1) / np.sqrt(len(got))) if len(got) > 1 else float("nan"),
    )


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


def write_threshold(cal: Calibration, source: Path, dest: Path) -> Path:
    """Copy policy file `source` to `dest` with only the tuned threshold changed, keeping its
    comments and layout; a file whose threshold cannot be found once is rewritten whole."""
    value = getattr(cal.policy.escalation, cal.field)
    text = source.read_text(encoding="utf-8")
    pattern = re.compile(rf"(\b{cal.field}:\s*)([-+0-9.eE]+|null|~)")
    # Fixed-point: PyYAML reads "1e-05" (no dot) as a string.
    number = f"{value:.6f}".rstrip("0")
    number += "0" if number.endswith(".") else ""
    if len(pattern.findall(text)) == 1:
        dest.write_text(pattern.sub(lambda m: f"{m.group(1)}{number}", text), encoding="utf-8")
    else:
        dump_policy(cal.policy, dest)
    return dest


def with_scorer(router, scorer: Any):
    """The same router (catalogue, policies, encoder) with another scorer (or its directory)."""
    from router.core.scorer import Scorer
    from router.sdk.router import Router

    if not isinstance(scorer, Scorer):
        scorer = Scorer.load(scorer, encoder_identity=router.encoder.identity)
    out = Router(router.config, router.policies, scorer, router.encoder)
    out.base_dir = router.base_dir
    return out


# ---- the shipped policies (`make policies`) -------------------------------------------------


def verification_half(ex: Example) -> bool:
    """Which half of the held-out prompts verifies (the other calibrates): the last hex digit
    of the group key, independent of the prefix that `data.held_out` reads."""
    return int(group_key(ex)[-1], 16) % 2 == 1


@dataclass
class ShippedPolicy:
    """One shipped policy: its calibration and its verification."""

    config: str
    policy: str
    target: str
    field: str
    threshold: float | None
    calibration_rows: int
    expected: OperatingPoint | None
    verified: Verification
    stood_in: list[str] = field(default_factory=list)
    written: Path | None = None


def calibrate_shipped(
    root: str | Path,
    data: Sequence[str | Path],
    configs: Sequence[str] = SHIPPED_CONFIGS,
    targets: dict[str, str] | None = None,
    scorer: str | Path | None = None,
    out_dir: str | Path | None = None,
    recalibrate: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[ShippedPolicy]:
    """Calibrate (unless `recalibrate` is False) and verify every shipped policy.

    For each config under `root`, with its scorer (or `scorer`): the rows that scorer did not
    train on (its recorded prompt hashes) and that measure the pool's own cheap models
    (`pool_rows`) are split in two by `verification_half`. The threshold is calibrated on one
    half and written into the policy file (in place, or under `out_dir/<config stem>/`); the
    written file is then loaded as the router would load it and measured on the other half.
    """
    from router.evaluation.train import embed_examples
    from router.sdk.router import Router

    say = log or (lambda _m: None)
    root = Path(root)
    targets = SHIPPED_TARGETS if targets is None else targets
    rows = read_many(data)
    results: list[ShippedPolicy] = []
    for cfg_name in configs:
        cfg_path = root / cfg_name
        router = Router.from_config(cfg_path)
        if scorer is not None:
            router = with_scorer(router, scorer)
        seen = router.scorer.trained_on(rows)
        if seen is None:
            raise CalibrationError(
                f"{cfg_name}: its scorer recorded no training prompts, so prompts it did not "
                "see cannot be told apart; retrain it (make model)"
            )
        unseen = [r for r, s in zip(rows, seen, strict=True) if not s]
        say(f"{cfg_name}: {len(unseen)} of {len(rows)} rows unseen by its scorer")
        X_all = embed_examples(router.encoder, unseen) if unseen else np.zeros((0, 0))
        ver = np.array([verification_half(r) for r in unseen], dtype=bool)
        src_dir = cfg_path.parent / router.config.policies_dir
        dest_dir = src_dir if out_dir is None else Path(out_dir) / Path(cfg_name).stem
        dest_dir.mkdir(parents=True, exist_ok=True)
        planned: list[tuple[str, str, np.ndarray, list[str], Calibration | None, int]] = []
        for name in router.policies:
            target = targets.get(name)
            if target is None:
                continue
            mask, stood_in = pool_rows(router.policy(name), unseen)
            cal_idx, ver_idx = np.flatnonzero(mask & ~ver), np.flatnonzero(mask & ver)
            if len(ver_idx) < MIN_ROWS or (recalibrate and len(cal_idx) < MIN_ROWS):
                raise CalibrationError(
                    f"{cfg_name}: policy {name}: {len(cal_idx)} calibration and {len(ver_idx)} "
                    f"verification rows measure its cheap models; need {MIN_ROWS} each"
                )
            cal = None
            dest = dest_dir / f"{name}.yaml"
            if recalibrate:
                cal_rows = [unseen[i] for i in cal_idx]
                cal = calibrate(router, name, cal_rows, target, X=X_all[cal_idx])
                write_threshold(cal, src_dir / f"{name}.yaml", dest)
                written = load_policy(dest, router.config, router.scorer.domains_)
                if written.escalation != cal.policy.escalation:
                    raise CalibrationError(f"{dest}: the written thresholds do not read back")
                say(
                    f"{cfg_name}: {name}: {cal.field} = {getattr(cal.policy.escalation, cal.field)}"
                )
            elif dest_dir != src_dir:
                dest.write_bytes((src_dir / f"{name}.yaml").read_bytes())
            planned.append((name, target, ver_idx, stood_in, cal, len(cal_idx)))
        # Verify what ships: the written policy files as the router loads them, this scorer.
        shipped = load_policies(dest_dir, router.config, domain_names())
        shipped_router = Router(
            router.config, {**router.policies, **shipped}, router.scorer, router.encoder
        )
        for name, target, ver_idx, stood_in, cal, n_cal in planned:
            v = verify(shipped_router, name, [unseen[i] for i in ver_idx], X_all[ver_idx])
            pol = shipped[name]
            fname = sweep_field(pol, two_tier=True)
            results.append(
                ShippedPolicy(
                    cfg_name,
                    name,
                    target,
                    fname,
                    getattr(pol.escalation, fname),
                    n_cal,
                    cal.point if cal else None,
                    v,
                    stood_in,
                    dest_dir / f"{name}.yaml",
                )
            )
    return results


def verification_table(results: Sequence[ShippedPolicy]) -> list[list[str]]:
    """The verification as rows of text (header first), for a terminal or Markdown."""
    head = [
        "pool",
        "policy",
        "target",
        "threshold",
        "calibration rows",
        "verification rows",
        "quality ± s.e.",
        "of all-large",
        "large share",
        "$/1k requests",
        "all-large $/1k",
        "stood in for",
    ]
    out = [head]
    for r in results:
        v = r.verified
        out.append(
            [
                r.config,
                r.policy,
                r.target,
                f"{r.field}={r.threshold:g}" if r.threshold is not None else r.field,
                str(r.calibration_rows) if r.expected is not None else "-",
                str(v.rows),
                f"{v.point.quality:.3f} ± {v.quality_se:.3f}",
                f"{v.quality_vs_all_large:.1%}",
                f"{v.point.large_share:.1%}",
                f"{v.point.cost_per_1k:.4f}",
                f"{v.all_large_cost_per_1k:.4f}",
                ", ".join(r.stood_in) or "-",
            ]
        )
    return out
