"""Does adding a free model to a pool ever lower the router's quality at some budget?

A router that knows its evidence never should: a model at $0 that is worse is simply not picked,
one that is better raises quality. `compare` evaluates the pool with and without the model at
$0, K-fold CV by prompt text, and `budgets_worse` lists the budgets, on a grid from $0 to the
priciest model, where the best quality the router reaches with the model is below what it
reaches without it. `make model` refuses a design for which that list is not empty
(scripts/build_scorer.py); `make bench-smollm2` reports it with SmolLM2 as a tenth model.

On a finite sample the answer is partly luck: where every model is near chance, a free model
wins some prompts on noise, and whether those few answers come out right depends on which
prompts were held out together. `seed` draws the folds; `make bench-smollm2` repeats the check
on several seeds to show how much.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from router.core.data import Example
from router.evaluation import metrics as M
from router.evaluation.evaluate import Curve, EvalData, Report, evaluate

GRID_POINTS = 201
WITHOUT, WITH = "without", "with"


@dataclass
class FreeModelCheck:
    """The pool evaluated without and with the free model, and where the router lost."""

    model: str
    reports: dict[str, tuple[EvalData, Report]]  # WITHOUT / WITH
    grid: np.ndarray  # budgets, $ per prompt
    worse: list[tuple[float, float, float | None]]  # (budget, quality without, with)
    seed: int = 0  # of the CV folds: which prompts are held out together

    def worse_on(self, curve: str) -> list[tuple[float, float, float | None]]:
        """`budgets_worse` for another curve of the same reports (e.g. `evaluate.NO_SHARED`)."""
        return budgets_worse(
            router_curve(self.reports[WITHOUT][1], curve),
            router_curve(self.reports[WITH][1], curve),
            self.grid,
        )

    @property
    def worst_drop(self) -> float:
        return max((qa - qb for _, qa, qb in self.worse if qb is not None), default=0.0)

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "budget_grid": len(self.grid),
            "budgets_worse": len(self.worse),
            "worst_drop": self.worst_drop,
            "fold_seed": self.seed,
        }


def without_model(rows: Sequence[Example], model: str) -> list[Example]:
    """The rows as they would be had `model` never been profiled."""
    out = []
    for r in rows:
        r = copy.deepcopy(r)
        r.scores.pop(model, None)
        if r.costs:
            r.costs.pop(model, None)
        r.cheap_models = [m for m in r.cheap_models if m != model]
        out.append(r)
    return out


def router_curve(report: Report, name: str = "router") -> Curve:
    for c in report.curves:
        if c.name == name:
            return c
    raise ValueError(f"no curve {name!r} in the report: {', '.join(c.name for c in report.curves)}")


def budgets_worse(
    without: Curve, with_: Curve, grid: np.ndarray
) -> list[tuple[float, float, float | None]]:
    """Each budget of `grid` where the best quality reachable with the model is below the best
    without it (None: nothing within the budget with it)."""
    worse = []
    for g in grid:
        qa = M.quality_at_cost(without.cost, without.quality, float(g))
        qb = M.quality_at_cost(with_.cost, with_.quality, float(g))
        if qa is not None and (qb is None or qb < qa - 1e-9):
            worse.append((float(g), qa, qb))
    return worse


def compare(
    rows: Sequence[Example],
    model: str,
    X: np.ndarray,
    encoder_identity: str,
    cv: int = 5,
    seed: int = 0,
    scorer_params: dict[str, Any] | None = None,
    extra: Callable[[str], Callable[..., tuple[list[Curve], dict[str, Any]]]] | None = None,
    curve: str = "router",
) -> FreeModelCheck:
    """Evaluate the pool of `rows` (each scored for `model`, at $0) without and with `model`,
    on the same `cv` folds (`seed` draws them), and compare their `curve` ("router", or `evaluate.NO_SHARED` for the design without the
    shared difficulty in the stack). `extra(name)` gives `evaluate` an extra hook per pool
    (diagnostics on the same folds)."""
    if not rows:
        raise ValueError(f"no rows to compare {model!r} on")
    if any(model not in r.scores for r in rows):
        raise ValueError(f"every row must have a score for {model!r}")
    if any(r.costs and r.costs.get(model, 0.0) != 0.0 for r in rows):
        raise ValueError(f"{model!r} must cost $0 on every row (a free model)")
    reports = {}
    for name, pool in ((WITHOUT, without_model(rows, model)), (WITH, list(rows))):
        data = EvalData.from_examples(pool)
        report = evaluate(
            data,
            X,
            encoder_identity=encoder_identity,
            cv=cv,
            seed=seed,
            scorer_params=scorer_params,
            extra=extra(name) if extra is not None else None,
        )
        reports[name] = (data, report)
    base = reports[WITHOUT][0]
    grid = np.linspace(0.0, float(base.costs.mean(axis=0).max()), GRID_POINTS)
    check = FreeModelCheck(model, reports, grid, [], seed)
    check.worse = check.worse_on(curve)
    return check
