"""Build a verifier with its figures, and never silently replace a better one.

`measure` runs the cascade evaluation (`evaluate` + `CascadeCurves`) on answered two-tier rows
three ways, the router and the verifier both trained without the held-out part:

- `cv`: 5 folds by prompt text (within the training distribution);
- `task`: leave one task out (`data.task_of`: a dataset the verifier never saw);
- `model`: leave one answering model out (another model's style), when two or more answered.

For each it reports the verdict's AUROC, its answer side's and the router's prompt side's on the
same rows, the mean answer weight, the share of answers out of distribution, and the APGR of the
router alone, the cascade and the hybrid. `build` measures, compares the `cv` and `task` verdict
AUROCs with those the artifact at `out` recorded, refuses to overwrite a better one unless forced,
then fits on every answer (the prompt side: the router's out-of-fold estimates from the `cv` run)
and saves the figures in the artifact.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from router.core.data import DataError, Example, task_of
from router.core.verifier import AnswerVerifier, VerifierError, verifier_cases
from router.evaluation.evaluate import (
    Curve,
    EvalData,
    Predictions,
    evaluate,
    group_labels,
    score_curve,
    sweep,
)
from router.evaluation.evaluate_cascade import (
    CascadeCurves,
    CascadeInputs,
    cascade_curve,
    cascade_inputs,
    distribution_labels,
    prompt_estimates,
)
from router.evaluation.two_tier import answered_rows, answering_models

Log = Callable[[str], None]
# The figures a new verifier must not be worse on: (grouping, figure).
GATED = (("cv", "verifier_auroc"), ("task", "verifier_auroc_within"))
# Where the cascade must do at least as well as the router alone, on the new figures.
GROUPINGS_CASCADE_VS_ROUTER = ("cv", "task", "model")


class _Keep(CascadeCurves):
    """CascadeCurves that also keeps the router's (out-of-fold) predictions and verdicts."""

    def __call__(self, data, router_p, folds, cross_validated):
        self.router_p_ = router_p
        self.prompt_p_ = prompt_estimates(data, router_p)
        return super().__call__(data, router_p, folds, cross_validated)

    def judge(self, data, prompt_p, folds, cross_validated):
        self.judged_ = super().judge(data, prompt_p, folds, cross_validated)
        return self.judged_


def prompt_curve(x: CascadeInputs) -> Curve:
    """The router deciding on the prompt side alone (what the verdict falls back to): the
    cheap answer kept where prompt P(right) ≥ threshold, else straight to the large model."""
    alone = replace(x, verifier_p=np.full(len(x.prompt_p), np.nan), fallback_p=x.prompt_p)
    return cascade_curve("prompt", alone, None)


def _apgrs(data: EvalData, router_p: Predictions, verdict: np.ndarray) -> dict[str, float | None]:
    """APGR of the router (policy sweep), of the prompt side alone and of the cascade."""
    x = cascade_inputs(data, router_p, verdict)
    curves = [sweep("router", data, router_p), prompt_curve(x), cascade_curve("cascade", x, None)]
    return {c.name: score_curve(c, data)["apgr"] for c in curves}


def _apgr_within(
    data: EvalData, router_p: Predictions, verdict: np.ndarray, labels: np.ndarray
) -> dict[str, float | None]:
    """The mean over held-out groups of each curve's APGR on that group's rows alone: how
    each distribution fares, without the calibration shifts between folds."""
    per: dict[str, list[float]] = {}
    for g in np.unique(labels):
        idx = np.flatnonzero(labels == g)
        sub = data.subset(idx)
        rp = Predictions(
            router_p.domain_probs[idx],
            router_p.difficulty[idx],
            router_p.gain[idx],
            router_p.success[idx],
        )
        for k, v in _apgrs(sub, rp, verdict[idx]).items():
            if v is not None:
                per.setdefault(k, []).append(v)
    return {k: round(float(np.mean(v)), 4) for k, v in per.items()}


def _within(y: np.ndarray, p: np.ndarray, labels: np.ndarray) -> float | None:
    """The mean over `labels` of the AUROC inside each (labels with one class left out)."""
    from router.core.verifier import auroc

    vals = [auroc(y[labels == g], p[labels == g]) for g in np.unique(labels)]
    vals = [v for v in vals if v is not None]
    return round(float(np.mean(vals)), 4) if vals else None


def measure(
    rows: Sequence[Example],
    X: np.ndarray,
    encoder_identity: str,
    cv: int = 5,
    C: float = 0.5,
    log: Log | None = None,
) -> tuple[dict[str, dict[str, Any]], np.ndarray]:
    """Figures per grouping (see the module doc), and the router's out-of-fold prompt
    estimates of every row from the `cv` run."""
    say = log or (lambda _m: None)
    data = EvalData.from_examples(rows)
    if data.dropped:
        raise DataError(f"{data.dropped} answered rows lack a score for the large model")
    w = data.weak_strong()[0]
    right = data.scores[:, w] >= 0.5
    tasks = group_labels(data, "task")
    models = np.array([ex.extra.get("cheap_model") or data.models[w] for ex in data.examples])
    groupings: list[tuple[str, tuple[str, np.ndarray] | None]] = [("cv", None)]
    if len(np.unique(tasks)) >= 2:
        groupings.append(("task", ("task", tasks)))
    if len(np.unique(models)) >= 2:
        groupings.append(("model", ("model", models)))
    figures: dict[str, dict[str, Any]] = {}
    prompt_p = np.full(len(data.examples), np.nan)
    for name, groups in groupings:
        say(f"measuring: {name}")
        hook = _Keep(C=C, log=lambda m, n=name: say(f"{n}: {m}"))
        report = evaluate(
            data,
            X,
            encoder_identity=encoder_identity,
            cv=cv if groups is None else None,
            groups=groups,
            extra=hook,
            log=lambda m, n=name: say(f"{n}: router {m}"),
        )
        res = report.to_json()
        judged = hook.judged_
        within = tasks if name != "model" else models
        pooled = _apgrs(data, hook.router_p_, judged.probability)
        inside = _apgr_within(data, hook.router_p_, judged.probability, within)
        # The answer side alone: a format 1 verifier's design, on the same folds.
        alone = _apgrs(data, hook.router_p_, judged.answer_probability)
        alone_inside = _apgr_within(data, hook.router_p_, judged.answer_probability, within)
        figures[name] = {
            "mode": res["mode"],
            "rows": len(data.examples),
            **{k: _round(v) for k, v in res["cascade"].items() if isinstance(v, float)},
            "verifier_auroc_within": _within(right, judged.probability, within),
            "answer_side_auroc_within": _within(right, judged.answer_probability, within),
            "prompt_auroc_within": _within(right, hook.prompt_p_, within),
            "within": "task" if name != "model" else "model",
            **{
                f"{curve}_{metric}": _round(res["results"][curve][metric])
                for curve in ("router", "cascade", "hybrid")
                for metric in ("apgr", "cpt_80", "quality_at_best_single_cost")
            },
            "prompt_apgr": _round(pooled["prompt"]),
            **{f"{k}_apgr_within": v for k, v in inside.items()},
            "answer_side_cascade_apgr": _round(alone["cascade"]),
            "answer_side_cascade_apgr_within": alone_inside.get("cascade"),
        }
        if name == "cv":
            prompt_p = hook.prompt_p_
    return figures, prompt_p


def _round(v: Any) -> Any:
    return round(float(v), 4) if isinstance(v, float | np.floating) else v


def recorded_figures(path: Path) -> dict[str, Any] | None:
    """The figures a saved verifier recorded (a format 1 verifier: its 5-fold CV AUROC only),
    or None when `path` holds no verifier."""
    meta_file = Path(path) / "verifier.json"
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if isinstance(meta.get("figures"), dict):
        return meta["figures"]
    legacy = (meta.get("trained_on") or {}).get("cv_auroc")
    return {"cv": {"verifier_auroc": legacy, "mode": "5-fold CV (format 1, answer side only)"}}


@dataclass
class Comparison:
    """The new figures beside the recorded ones, and whether the new verifier is worse."""

    rows: list[tuple[str, str, float | None, float | None]] = field(default_factory=list)
    worse: list[str] = field(default_factory=list)

    def table(self) -> str:
        lines = [f"{'figure':42s} {'previous':>9s} {'new':>9s}"]
        for grouping, fig, old, new in self.rows:
            o = "-" if old is None else f"{old:.4f}"
            n = "-" if new is None else f"{new:.4f}"
            mark = "  worse" if f"{grouping}.{fig}" in self.worse else ""
            lines.append(f"{grouping + '.' + fig:42s} {o:>9s} {n:>9s}{mark}")
        return "\n".join(lines)


def compare(new: dict[str, Any], old: dict[str, Any] | None, tolerance: float = 0.0) -> Comparison:
    """Each gated figure, and the rest of the headline ones, beside the previous verifier's."""
    out = Comparison()
    shown = [
        *GATED,
        ("cv", "answer_side_auroc"),
        ("cv", "cascade_apgr"),
        ("cv", "router_apgr"),
        ("task", "verifier_auroc"),
        ("task", "cascade_apgr"),
        ("task", "router_apgr"),
        ("model", "verifier_auroc_within"),
        ("model", "cascade_apgr"),
        ("model", "router_apgr"),
    ]
    for grouping, fig in shown:
        n = (new.get(grouping) or {}).get(fig)
        o = ((old or {}).get(grouping) or {}).get(fig)
        if n is None and o is None:
            continue
        out.rows.append((grouping, fig, o, n))
        if (grouping, fig) in GATED and o is not None and (n is None or n < o - tolerance):
            out.worse.append(f"{grouping}.{fig}")
    # Whatever the previous verifier measured: a cascade that does worse than the router
    # alone, in or out of the verifier's training distribution, is not worth its extra call.
    for grouping in GROUPINGS_CASCADE_VS_ROUTER:
        figures = new.get(grouping) or {}
        cascade, router = figures.get("cascade_apgr"), figures.get("router_apgr")
        if cascade is not None and router is not None and cascade < router - tolerance:
            out.worse.append(f"{grouping}.cascade_apgr below its router_apgr")
    return out


@dataclass
class BuildReport:
    figures: dict[str, Any]
    comparison: Comparison
    written: bool
    out: Path
    answers: int
    by_model: dict[str, int]


def build(
    examples: Sequence[Example],
    out: str | Path,
    encoder: Any,
    models: str | Sequence[str] = "cheap",
    cv: int = 5,
    C: float = 0.5,
    force: bool = False,
    tolerance: float = 0.0,
    log: Log | None = None,
) -> BuildReport:
    """Measure, compare with the verifier at `out`, and (unless it is worse and not `force`d)
    fit on every answer and save. `models`: "cheap" (every row's cheap models that answered),
    "all" (every model that answered), or names."""
    from router.evaluation.train import embed_examples

    say = log or (lambda _m: None)
    out = Path(out)
    if models in ("cheap", "all"):
        names = answering_models(examples, cheap_only=models == "cheap")
    else:
        names = list(models)
    rows = answered_rows(examples, names)
    data = EvalData.from_examples(rows)
    rows = data.examples
    cheap = data.models[data.weak_strong()[0]]
    found = verifier_cases(rows, [cheap])
    by_model = {m: found.models.count(m) for m in sorted(set(found.models))}
    say(f"{len(found.cases)} answers ({', '.join(f'{m}: {n}' for m, n in by_model.items())})")
    X = embed_examples(encoder, rows)
    figures, prompt_p = measure(rows, X, encoder.identity, cv=cv, C=C, log=say)
    figures["data"] = {
        "answers": len(found.cases),
        "by_model": by_model,
        "tasks": sorted({task_of(s) for s in found.sources}),
        "right_rate": round(float((found.y >= 0.5).mean()), 4),
    }
    previous = recorded_figures(out)
    comparison = compare(figures, previous, tolerance)
    if comparison.worse and not force:
        return BuildReport(figures, comparison, False, out, len(found.cases), by_model)
    say("fitting on every answer")
    verifier = AnswerVerifier(C=C).fit(
        found.cases, found.y, prompt_p, distribution_labels(rows, cheap)
    )
    extra = {"figures": figures}
    if previous is not None:
        extra["replaced"] = {k: v for k, v in previous.items() if k != "replaced"}
    try:
        verifier.save(out, extra=extra)
    except OSError as e:
        raise VerifierError(f"{out}: cannot write the verifier: {e}") from None
    return BuildReport(figures, comparison, True, out, len(found.cases), by_model)
