"""`router eval --cascade`: the prompt-only router, the cascade and the hybrid on the same rows.

- *router*: the policy's threshold sweep on the prompt scorer (router/evaluation/evaluate.py).
- *cascade*: every row is answered by the cheap model first; the verifier judges the answer and
  the large model answers when P(right) < threshold. The cheap call is paid on every row.
- *hybrid*: the prompt scorer's P(cheap right) decides first (`policy.cascade_modes`, the code
  that serves traffic): at least threshold + band → the cheap answer unchecked; at most
  threshold − band → straight to the large model (no cheap call); between → cascaded.

Rows without the cheap model's answer cannot be verified: there the cascade and the hybrid
escalate as the router does, in the order of its gain head (P(large right and cheap wrong)):
1 − gain < threshold. Both
curves sweep the threshold from 0 to 1. Their x-axis for APGR and CPT is the *cost-equivalent*
large share: per row (cost − cheap cost) / (large cost − cheap cost), averaged, so a cheap
call that was thrown away counts; for the router it is the large-call share itself. Curves are cut where
that share reaches 1 (dearer than always calling the large model).

With `--cv K` / `--group-by source` the verifier is trained inside each fold, on the training
rows' answers only; a fold whose training rows have no answers has no verifier, and its rows
are routed by the prompt scorer alone (reported as `folds_without_verifier`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from router.core.data import DataError, Example, task_of
from router.core.policy import JUDGED, STRAIGHT_TO_LARGE, UNCHECKED, cascade_modes
from router.core.verifier import (
    OUT_OF_DISTRIBUTION,
    AnswerCase,
    AnswerVerifier,
    Verdicts,
    auroc,
    load_verifier,
)
from router.evaluation.evaluate import Curve, EvalData, Predictions

Log = Callable[[str], None]
DEFAULT_BAND = 0.2


def cheap_answer_case(ex: Example, cheap: str) -> AnswerCase | None:
    """The row's cheap-model answer as a case to judge, or None when the row has none."""
    answers = ex.extra.get("answers") or {}
    text = answers.get(cheap) if isinstance(answers, dict) else None
    if not isinstance(text, str):
        return None
    logprobs = ex.extra.get("logprobs") or {}
    usage = ex.extra.get("usage") or {}
    u = usage.get(cheap) if isinstance(usage, dict) else None
    return AnswerCase(
        prompt=ex.text(),
        answer=text,
        logprobs=logprobs.get(cheap) if isinstance(logprobs, dict) else None,
        finish_reason=u.get("finish_reason") if isinstance(u, dict) else None,
    )


@dataclass
class CascadeInputs:
    """Per row: both tiers' scores and costs, the answer's P(right) (NaN: none), the prompt's."""

    cheap_score: np.ndarray
    large_score: np.ndarray
    cheap_cost: np.ndarray
    large_cost: np.ndarray
    verifier_p: np.ndarray
    prompt_p: np.ndarray
    # Rows without an answer: the P(cheap right) they are escalated on (default: prompt_p).
    fallback_p: np.ndarray | None = None

    @property
    def has_answer(self) -> np.ndarray:
        return ~np.isnan(self.verifier_p)


def operating_point(x: CascadeInputs, threshold: float, band: float | None):
    """(mean cost, mean quality, cost-equivalent large share) at one threshold; `band` None:
    the plain cascade. The share is per row (cost − cheap cost) / (large cost − cheap cost),
    averaged: 1 for a large call, 0 for a kept cheap answer, 1 + c / (L − c) for an escalated
    one — the router's large-call share, with every discarded cheap call counted."""
    mode = cascade_modes(x.prompt_p, threshold, band)
    judged = mode == JUDGED
    answered = x.has_answer
    fallback = x.prompt_p if x.fallback_p is None else x.fallback_p
    escalate = np.where(answered, np.nan_to_num(x.verifier_p) < threshold, fallback < threshold)
    to_large = (mode == STRAIGHT_TO_LARGE) | (judged & escalate)
    # The cheap call is paid when its answer is kept, and when it was judged and thrown away.
    pays_cheap = (mode == UNCHECKED) | (judged & (answered | ~escalate))
    cost = pays_cheap * x.cheap_cost + to_large * x.large_cost
    quality = np.where(to_large, x.large_score, x.cheap_score)
    gap = x.large_cost - x.cheap_cost
    share = np.where(gap > 0, (cost - x.cheap_cost) / np.where(gap > 0, gap, 1.0), to_large * 1.0)
    return float(cost.mean()), float(quality.mean()), float(share.mean())


def cascade_curve(name: str, x: CascadeInputs, band: float | None, n_points: int = 201) -> Curve:
    """The threshold sweep, cut where its cost-equivalent large share reaches 1."""
    fallback = x.prompt_p if x.fallback_p is None else x.fallback_p
    signal = np.concatenate([x.verifier_p[x.has_answer], x.prompt_p, fallback[~x.has_answer]])
    qs = np.quantile(signal, np.linspace(0, 1, n_points)) if len(signal) else np.array([])
    grid = np.unique(np.clip(np.concatenate([[0.0, 1.0], qs, qs + 1e-9]), 0.0, 1.0))
    if band is not None:
        # The band edges move with the threshold: add the thresholds where a row crosses one.
        edges = np.concatenate([x.prompt_p - band, x.prompt_p + band])
        grid = np.unique(np.clip(np.concatenate([grid, edges, edges + 1e-9]), 0.0, 1.0))
        if len(grid) > 4 * n_points:
            grid = np.unique(np.quantile(grid, np.linspace(0, 1, 4 * n_points)))
    pts = sorted(
        ((s, c, q, float(t)) for t in grid for c, q, s in [operating_point(x, float(t), band)]),
        key=lambda p: (p[0], p[1]),
    )
    share = np.array([p[0] for p in pts])
    cost = np.array([p[1] for p in pts])
    quality = np.array([p[2] for p in pts])
    params = [p[3] for p in pts]
    keep = share <= 1.0 + 1e-12
    if not keep.all() and keep.any():
        # Interpolate the point at share 1 between the last kept and the first dropped.
        i = int(np.flatnonzero(~keep)[0])
        j = max(0, i - 1)
        w = 0.0 if share[i] == share[j] else (1.0 - share[j]) / (share[i] - share[j])
        c1 = cost[j] + w * (cost[i] - cost[j])
        q1 = quality[j] + w * (quality[i] - quality[j])
        k = np.flatnonzero(keep)
        cost = np.r_[cost[k], c1]
        quality = np.r_[quality[k], q1]
        share = np.r_[share[k], 1.0]
        params = [params[m] for m in k] + [params[i]]
    return Curve(name, cost, quality, share, params)


def prompt_estimates(data: EvalData, router_p: Predictions) -> np.ndarray:
    """The router's own P(cheap answer right) per row: the cheap model's success head, or
    1 − difficulty where it has none (what `policy.cascade_decision` hands the verdict)."""
    w, _ = data.weak_strong()
    cheap_success = router_p.success[:, w]
    p = np.where(np.isnan(cheap_success), 1.0 - router_p.difficulty, cheap_success)
    return np.clip(p, 0.0, 1.0)


def cascade_inputs(data: EvalData, router_p: Predictions, verifier_p: np.ndarray) -> CascadeInputs:
    w, s = data.weak_strong()
    prompt_p = prompt_estimates(data, router_p)
    # Rows without an answer are escalated as the router escalates them, in the order of its
    # gain head (P(large right and cheap wrong)): 1 - gain below the threshold. (Dividing by
    # P(large right) would turn it into "cheap fails", a worse signal: BENCHMARKS.md.)
    fallback_p = np.clip(1.0 - router_p.gain, 0.0, 1.0)
    answered = ~np.isnan(verifier_p)
    if answered.any() and not answered.all():
        # Mixed data (only some rows can be judged): one threshold must share escalations
        # between judged rows and the router's rows as the router shares them. The judged rows
        # take the router's own values, reassigned in the verifier's order (a rank mapping,
        # no labels): at every threshold as many of them escalate as under the router, and the
        # verifier picks which. Unjudged rows, and the hybrid's band on them, are the router's.
        idx = np.flatnonzero(answered)
        ranks = np.argsort(np.argsort(verifier_p[idx], kind="stable"), kind="stable")
        verifier_p = verifier_p.copy()
        verifier_p[idx] = np.sort(fallback_p[idx])[ranks]
        prompt_p = np.where(answered, prompt_p, fallback_p)
    return CascadeInputs(
        cheap_score=data.scores[:, w],
        large_score=data.scores[:, s],
        cheap_cost=data.costs[:, w],
        large_cost=data.costs[:, s],
        verifier_p=verifier_p,
        prompt_p=np.clip(prompt_p, 0.0, 1.0),
        fallback_p=fallback_p,
    )


def distribution_labels(examples: list[Example], cheap: str) -> np.ndarray:
    """Per row, the distribution its cheap answer comes from: task and answering model. The
    verifier's weighing learns from folds that hold such labels out (`AnswerVerifier.fit`)."""
    return np.array(
        [f"{task_of(ex.source)}|{ex.extra.get('cheap_model') or cheap}" for ex in examples]
    )


@dataclass
class Judged:
    """The verifier's reading of every row's cheap answer (NaN where the row has none)."""

    probability: np.ndarray
    answer_probability: np.ndarray
    answer_weight: np.ndarray
    novelty: np.ndarray
    folds_without_verifier: list[Any]

    @classmethod
    def empty(cls, n: int) -> Judged:
        return cls(*(np.full(n, np.nan) for _ in range(4)), [])

    def put(self, idx: list[int], v: Verdicts) -> None:
        self.probability[idx] = v.probability
        self.answer_probability[idx] = v.answer_probability
        self.answer_weight[idx] = v.answer_weight
        self.novelty[idx] = v.novelty


class CascadeCurves:
    """The `extra` hook of `evaluate()`: adds the cascade and hybrid curves and their settings.

    `verifier`: a fitted verifier to use as is (no CV), else one is trained inside each fold,
    with the router's out-of-fold estimates of its training rows as the prompt side."""

    def __init__(
        self,
        band: float | None = DEFAULT_BAND,
        verifier: AnswerVerifier | None = None,
        C: float = 0.5,
        log: Log | None = None,
    ) -> None:
        self.band = band
        self.verifier = verifier
        self.C = C
        self.log = log or (lambda _m: None)

    def judge(
        self, data: EvalData, prompt_p: np.ndarray, folds: np.ndarray, cross_validated: bool
    ) -> Judged:
        """The verdict on each row's cheap answer, by the given verifier or one trained
        without the row's fold."""
        if not data.two_tier:
            raise DataError(
                "--cascade compares two tiers: give data with one cheap and one large model"
            )
        w = data.weak_strong()[0]
        cheap = data.models[w]
        cases = [cheap_answer_case(ex, cheap) for ex in data.examples]
        if not any(c is not None for c in cases):
            raise DataError(
                f"--cascade: no row has an answer of the cheap model {cheap!r} (rows need "
                "`answers`, as RouteLLM GSM8K rows or `router profile` output have)"
            )
        out = Judged.empty(len(cases))
        if not cross_validated:
            v = self.verifier or load_verifier("default")
            idx = [i for i, c in enumerate(cases) if c is not None]
            out.put(idx, v.verdicts([cases[i] for i in idx], list(prompt_p[idx])))
            return out
        labels = distribution_labels(data.examples, cheap)
        for f in np.unique(folds):
            te = [i for i in np.flatnonzero(folds == f) if cases[i] is not None]
            if not te:
                continue
            tr = [i for i in np.flatnonzero(folds != f) if cases[i] is not None]
            ty = data.scores[tr, w]
            if len(tr) < 10 or ty.min() == ty.max():
                out.folds_without_verifier.append(f.item() if hasattr(f, "item") else f)
                continue
            self.log(f"verifier fold {f}: {len(tr)} answers")
            # The prompt side of the training rows: the router's out-of-fold estimates.
            v = AnswerVerifier(C=self.C).fit([cases[i] for i in tr], ty, prompt_p[tr], labels[tr])
            out.put(te, v.verdicts([cases[i] for i in te], list(prompt_p[te])))
        return out

    def __call__(
        self, data: EvalData, router_p: Predictions, folds: np.ndarray, cross_validated: bool
    ) -> tuple[list[Curve], dict[str, Any]]:
        prompt_p = prompt_estimates(data, router_p)
        judged = self.judge(data, prompt_p, folds, cross_validated)
        x = cascade_inputs(data, router_p, judged.probability)
        curves = [cascade_curve("cascade", x, None), cascade_curve("hybrid", x, self.band)]
        seen = x.has_answer
        right = x.cheap_score[seen] >= 0.5
        settings = {
            "cascade": {
                "rows_with_answers": int(seen.sum()),
                "band": self.band,
                "verifier": "trained inside each fold" if cross_validated else "as is",
                "folds_without_verifier": judged.folds_without_verifier,
                "x_axis": "cost-equivalent large share (cheap calls counted)",
                **judged_figures(right, judged, prompt_p, seen),
            }
        }
        if not cross_validated:
            v = self.verifier or load_verifier("default")
            overlap = v.trained_on(data.examples)
            settings["cascade"]["rows_seen_by_verifier"] = (
                None if overlap is None else int(overlap.sum())
            )
        return curves, settings


def judged_figures(
    right: np.ndarray, judged: Judged, prompt_p: np.ndarray, seen: np.ndarray
) -> dict[str, Any]:
    """AUROCs of the verdict, its answer side and the prompt side on the answered rows, the
    mean answer weight and the share of answers out of distribution."""
    if not seen.any():
        return {"verifier_auroc": None}
    nov = judged.novelty[seen]
    measured = ~np.isnan(nov)
    return {
        "verifier_auroc": auroc(right, judged.probability[seen]),
        "answer_side_auroc": auroc(right, judged.answer_probability[seen]),
        "prompt_auroc_on_answered_rows": auroc(right, prompt_p[seen]),
        "mean_answer_weight": float(np.nanmean(judged.answer_weight[seen])),
        "out_of_distribution_share": float(np.mean(nov[measured] > OUT_OF_DISTRIBUTION))
        if measured.any()
        else None,
    }


# ---- calibration: the threshold and band of a live policy's cascade ---------------------------

BAND_GRID = (None, 0.05, 0.1, 0.2, 0.3, 0.4)


@dataclass
class CascadePoint:
    threshold: float
    band: float | None
    quality: float
    cost: float
    share: float  # cost-equivalent large share


def calibrate_points(x: CascadeInputs, target: tuple[str, float]) -> tuple[CascadePoint, int]:
    """The cheapest (threshold, band) meeting `target`, as `calibrate.parse_target` reads it:
    ("quality", q) reaches q × the all-large quality; ("large-share", s) keeps the
    cost-equivalent large share ≤ s, ("cost-per-1k", usd) the cost ≤ usd / 1000 (both: best
    quality). Returns the point and how many were tried."""
    kind, value = target
    all_large_q = float(x.large_score.mean())
    points: list[CascadePoint] = []
    for band in BAND_GRID:
        c = cascade_curve("calibrate", x, band)
        for cost, q, share, t in zip(c.cost, c.quality, c.share, c.params, strict=True):
            points.append(CascadePoint(float(t), band, float(q), float(cost), float(share)))
    if kind == "quality":
        ok = [p for p in points if p.quality >= value * all_large_q - 1e-12]
        best = min(ok, key=lambda p: (p.cost, -p.quality)) if ok else None
    else:
        limit = value if kind == "large-share" else value / 1000
        ok = [p for p in points if (p.share if kind == "large-share" else p.cost) <= limit + 1e-12]
        best = max(ok, key=lambda p: (p.quality, -p.cost)) if ok else None
    if best is None:
        raise DataError(f"--target {kind}={value}: no threshold and band reach it on this data")
    return best, len(points)


def cascade_to_calibrate(router: Any, policy: str) -> Any:
    """The policy's `cascade:` section, if it can be calibrated offline (a DataError saying why
    not: none, or an LLM judge, whose verdicts need calls). Checked before any embedding."""
    spec = router.policy(policy).policy.cascade
    if spec is None:
        raise DataError(f"policy {policy!r} has no cascade: section to calibrate")
    if spec.verifier == "llm":
        raise DataError("an LLM verifier cannot be calibrated offline: its verdicts need calls")
    return spec


def live_inputs(router: Any, policy: str, examples: list[Example], X: np.ndarray) -> CascadeInputs:
    """What a live policy's cascade would see and pay on `examples`: the policy's scorer on the
    prompts, its verifier on the rows' cheap answers, catalogue prices on estimated tokens.
    The row's cheap-model score and answer stand in for the cascade's first model, the score of
    its best non-cheap model for the large one (as `router calibrate` does)."""
    from router.core.data import tier_outcomes
    from router.core.request import estimate_tokens, normalise_messages
    from router.serving.cascade import verifier_at

    compiled = router.policy(policy)
    spec = cascade_to_calibrate(router, policy)
    first = (
        router.config.model(spec.models[0])
        if spec.models
        else compiled.models[compiled.default_idx[0]]
    )
    large = compiled.reference_large
    outcomes = tier_outcomes(examples)
    keep = [i for i, (c, g) in enumerate(outcomes) if c is not None and g is not None]
    if not keep:
        raise DataError("calibration needs rows with cheap_models and a large model's score")
    rows = [examples[i] for i in keep]
    batch = router.scorer.predict(X[keep], [ex.text() for ex in rows])
    col = router._success_col.get(first.name)
    prompt_p = batch.success[:, col] if col is not None else 1.0 - batch.difficulty
    verifier = verifier_at(spec.verifier)
    vp = np.full(len(rows), np.nan)
    cases = [(i, cheap_answer_case(ex, ex.cheap_models[0])) for i, ex in enumerate(rows)]
    cases = [(i, c) for i, c in cases if c is not None]
    if not cases:
        raise DataError("--cascade: no row has its cheap model's answer (`answers`)")
    idx = [i for i, _ in cases]
    vp[idx] = verifier.predict_proba([c for _, c in cases], list(prompt_p[idx]))[:, 1]
    out_tokens = router.config.expected_output_tokens
    tokens = np.array(
        [estimate_tokens(normalise_messages(ex.messages or ex.prompt)) for ex in rows]
    )
    return CascadeInputs(
        cheap_score=np.array([outcomes[i][0] for i in keep]),
        large_score=np.array([outcomes[i][1] for i in keep]),
        cheap_cost=np.array([first.cost(t, out_tokens) for t in tokens]),
        large_cost=np.array([large.cost(t, out_tokens) for t in tokens]),
        verifier_p=vp,
        prompt_p=np.clip(prompt_p, 0.0, 1.0),
    )


def verifier_overlap(
    verifier: AnswerVerifier, examples: list[Example], remedy: str = "Use --cv, or data"
) -> str | None:
    """A one-line warning when the verifier learned from some of `examples` (its figures on
    them are optimistic), or recorded nothing to check that by; None when all is clear.
    `remedy`: what the command offers instead (`router calibrate` has no --cv)."""
    seen = verifier.trained_on(examples)
    if seen is None:
        return (
            "the verifier recorded no training prompts (saved before hashes were kept): cannot "
            "check whether this data overlaps its training data"
        )
    if not seen.any():
        return None
    return (
        f"{int(seen.sum())} of {len(examples)} rows ({seen.mean():.1%}) are prompts the verifier "
        f"was trained on: its verdicts on them are optimistic. {remedy} it did not see"
    )


def policy_verifier(router: Any, policy: str) -> AnswerVerifier | None:
    """The trained verifier of a policy's cascade (None: no cascade, or an LLM judge)."""
    from router.serving.cascade import verifier_at

    spec = router.policy(policy).policy.cascade
    if spec is None or spec.verifier == "llm":
        return None
    return verifier_at(spec.verifier)


def write_cascade_settings(path: Any, threshold: float, band: float | None) -> None:
    """Set `cascade.threshold` and `cascade.band` in a policy file, leaving the rest as written.

    Read as the router reads it (a key given twice, a YAML boolean where a number goes, a
    YAML mistake: one ConfigError naming the file and the line or field), and refused before
    anything is written when it is not a valid policy."""
    from pathlib import Path

    import yaml

    from router.core.config import read_yaml, validate_policy

    path = Path(path)
    data = read_yaml(path)
    validate_policy(data, path)  # a mapping, with the fields and values a policy takes
    cascade = dict(data.get("cascade") or {})
    cascade["threshold"] = round(threshold, 6)
    if band is None:
        cascade.pop("band", None)
    else:
        cascade["band"] = band
    data["cascade"] = cascade
    path.write_text(
        yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=1000), encoding="utf-8"
    )
