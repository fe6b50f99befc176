"""A scorer design measured before it ships, beside the artifact it would replace.

`measure` runs K-fold CV (by prompt text) and leave-one-source-out on each evaluation dataset,
each fold trained on the dataset's other rows plus every other dataset (`TrainAlso`: never the
test prompts, and leaving a source out, never its task in any dataset). `regressions` names
each gated figure that is worse than what the previous artifact recorded. `make model`
(scripts/build_scorer.py) prints both and refuses to overwrite a shipped scorer that is worse
on either, unless forced; the figures it measured are recorded in the new artifact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from router.core.data import Example
from router.evaluation.evaluate import EvalData, TrainAlso, evaluate

# The figure that gates a design, by kind of data: APGR on two models; on N models, the
# quality reached at the best single model's cost.
GATED = {"two_tier": "apgr", "n_model": "quality_at_best_single_cost"}
# Figures shown beside it.
SHOWN = {
    "two_tier": ("apgr", "cost_reduction_at_95", "aiq"),
    "n_model": ("quality_at_best_single_cost", "aiq", "oracle_gain_captured"),
}
MODES = ("cv", "loso")

Log = Callable[[str], None]


def measure(
    eval_sets: dict[str, list[Example]],
    train_also: dict[str, list[Example]],
    embed: Callable[[Sequence[Example]], np.ndarray],
    encoder_identity: str,
    scorer_params: dict[str, Any] | None = None,
    cv: int = 5,
    log: Log | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per evaluation dataset, the `router eval --json` report of the design under CV and
    leaving each source out: {name: {"cv": report, "loso": report}}."""
    say = log or (lambda _m: None)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, rows in eval_sets.items():
        data = EvalData.from_examples(rows)
        X = embed(data.examples)
        extra_rows = train_also.get(name, [])
        extra = TrainAlso(list(extra_rows), embed(extra_rows)) if extra_rows else None
        out[name] = {}
        for mode in MODES:
            say(f"{name}: {mode}")
            report = evaluate(
                data,
                X,
                encoder_identity=encoder_identity,
                cv=cv if mode == "cv" else None,
                group_by_source=mode == "loso",
                train_also=extra,
                scorer_params=scorer_params,
                log=lambda m, name=name, mode=mode: say(f"{name} {mode}: {m}"),
            )
            out[name][mode] = report.to_json()
    return out


def kind_of(report: dict[str, Any]) -> str:
    """ "two_tier" when the report has APGR figures, else "n_model"."""
    router = report["results"]["router"]
    return "two_tier" if router.get("apgr") is not None else "n_model"


def figures_of(
    measured: dict[str, dict[str, dict[str, Any]]], curve: str = "router"
) -> dict[str, Any] | None:
    """A curve's shown figures per dataset and mode, as an artifact records them; None when
    a report lacks the curve (`router-no-shared`: the same fits without the shared model)."""
    out: dict[str, Any] = {}
    for name, modes in measured.items():
        out[name] = {}
        for mode, report in modes.items():
            kind = kind_of(report)
            if curve not in report["results"]:
                return None
            router = report["results"][curve]
            out[name][mode] = {
                "kind": kind,
                **{k: router.get(k) for k in SHOWN[kind]},
                "rows": report.get("rows"),
            }
    return out


def regressions(
    new: dict[str, Any], old: dict[str, Any] | None, tolerance: float = 0.0
) -> list[str]:
    """Each gated figure of `new` that is below `old`'s by more than `tolerance`, as a line
    for a person; empty when nothing got worse (or nothing was recorded before)."""
    lines = []
    for name, modes in (old or {}).items():
        for mode, before in modes.items():
            after = new.get(name, {}).get(mode)
            if after is None:
                continue
            key = GATED[before.get("kind", "n_model")]
            b, a = before.get(key), after.get(key)
            if b is not None and (a is None or a < b - tolerance):
                lines.append(f"{name} {mode}: {key} {a} < previous {b}")
    return lines


def comparison_rows(new: dict[str, Any], old: dict[str, Any] | None) -> list[list[str]]:
    """[dataset, mode, figure, previous, new] for every shown figure, for a printed table."""

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.4f}"

    rows = []
    for name, modes in new.items():
        for mode, after in modes.items():
            before = ((old or {}).get(name) or {}).get(mode) or {}
            for key in SHOWN[after["kind"]]:
                rows.append([name, mode, key, fmt(before.get(key)), fmt(after.get(key))])
    return rows
