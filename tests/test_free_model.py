"""A free model in a pool: the comparison `make model` gates on (router/evaluation/free_model.py),
measured for real: scorers trained per fold on a synthetic pool."""

from __future__ import annotations

import numpy as np
import pytest

from router.evaluation import free_model
from router.evaluation.evaluate import Curve
from tests.test_scorer import synthetic


def pool(n: int = 240, free: str = "perfect", seed: int = 0):
    """test_scorer's synthetic prompts (maths and code, half of them hard): "small" ($1) fails
    the hard ones, "big" ($10) answers all; "free" ($0) answers all or none."""
    X, rows = synthetic(n, seed)
    for r in rows:
        r.scores["free"] = {"perfect": 1.0, "useless": 0.0}[free]
        r.costs = {"small": 1e-6, "big": 1e-5, "free": 0.0}
    return X, rows


def curve(cost, quality) -> Curve:
    return Curve("router", np.array(cost, float), np.array(quality, float))


def test_budgets_where_the_pool_with_the_model_reaches_less_are_listed():
    without = curve([0.0, 1.0, 2.0], [0.5, 0.6, 0.7])
    better = curve([0.0, 1.0, 2.0], [0.55, 0.6, 0.7])
    worse = curve([0.0, 1.0, 2.0], [0.5, 0.58, 0.7])
    grid = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    assert free_model.budgets_worse(without, better, grid) == []
    assert free_model.budgets_worse(without, worse, grid) == [
        (1.0, 0.6, 0.58),
        (1.5, 0.6, 0.58),
    ]
    # Nothing within a budget that the pool without it could afford: worse too.
    pricier = curve([1.0, 2.0], [0.6, 0.7])
    assert free_model.budgets_worse(without, pricier, grid)[:2] == [
        (0.0, 0.5, None),
        (0.5, 0.5, None),
    ]


def test_a_free_model_right_on_every_prompt_never_lowers_quality():
    X, rows = pool(free="perfect")
    check = free_model.compare(rows, "free", X, "fake/16", cv=3)
    assert len(check.grid) == free_model.GRID_POINTS and check.grid[-1] == pytest.approx(1e-5)
    assert check.worse == [] and check.worst_drop == 0.0
    assert check.summary() == {
        "model": "free",
        "budget_grid": 201,
        "budgets_worse": 0,
        "worst_drop": 0.0,
        "fold_seed": 0,
    }
    without, with_ = (check.reports[k][0] for k in (free_model.WITHOUT, free_model.WITH))
    assert "free" not in without.models and "free" in with_.models
    # The rows given are left as they were.
    assert all("free" in r.scores and "free" in r.costs for r in rows)
    # Everything right at $0: the router takes it.
    with_curve = free_model.router_curve(check.reports[free_model.WITH][1])
    assert np.interp(0.0, with_curve.cost, with_curve.quality) == pytest.approx(1.0)


def test_the_check_finds_the_budgets_a_free_model_that_always_fails_costs():
    # Not a property the policy guarantees: with it the router sends the hard prompts to the
    # free model, and every one of them leaves it for the large model at the same cost weight,
    # so its curve jumps where the pool without it climbs point by point. The check is what
    # keeps a shipped scorer from losing that way on real data.
    X, rows = pool(free="useless")
    check = free_model.compare(rows, "free", X, "fake/16", cv=3)
    assert check.worse and check.worst_drop > 0
    curves = [
        free_model.router_curve(check.reports[k][1]) for k in (free_model.WITHOUT, free_model.WITH)
    ]
    assert check.worse == free_model.budgets_worse(*curves, check.grid)
    for _budget, without, with_ in check.worse:
        assert with_ is None or with_ < without


def test_the_fold_seed_draws_other_folds_and_any_curve_can_be_checked():
    # The check on another split of the same prompts: other scorers, other curves.
    X, rows = pool(free="useless")
    a = free_model.compare(rows, "free", X, "fake/16", cv=3, seed=0)
    b = free_model.compare(rows, "free", X, "fake/16", cv=3, seed=1)
    assert (a.seed, b.seed) == (0, 1) and b.summary()["fold_seed"] == 1
    ca, cb = (free_model.router_curve(c.reports[free_model.WITH][1]) for c in (a, b))
    assert not (np.array_equal(ca.cost, cb.cost) and np.array_equal(ca.quality, cb.quality))
    # worse_on compares another curve of the same two reports.
    assert a.worse_on("router") == a.worse
    knn = a.worse_on("knn")
    assert knn == free_model.budgets_worse(
        *(
            free_model.router_curve(a.reports[k][1], "knn")
            for k in (free_model.WITHOUT, free_model.WITH)
        ),
        a.grid,
    )
    with pytest.raises(ValueError, match="no curve 'no such curve' in the report: router, knn"):
        a.worse_on("no such curve")


def test_the_pool_must_score_the_model_at_no_cost():
    X, rows = pool(n=40)
    rows[3].costs["free"] = 1e-6
    with pytest.raises(ValueError, match="must cost \\$0"):
        free_model.compare(rows, "free", X, "fake/16", cv=2)
    del rows[5].scores["free"]
    with pytest.raises(ValueError, match="every row must have a score for 'free'"):
        free_model.compare(rows, "free", X, "fake/16", cv=2)
    with pytest.raises(ValueError, match="no rows"):
        free_model.compare([], "free", X[:0], "fake/16")
