"""Metric functions on small cases computed by hand."""

import numpy as np
import pytest

from router.evaluation import metrics as M


def test_pgr_endpoints_and_midpoint():
    assert M.pgr(0.6, 0.6, 0.8) == pytest.approx(0.0)
    assert M.pgr(0.8, 0.6, 0.8) == pytest.approx(1.0)
    assert M.pgr(0.7, 0.6, 0.8) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        M.pgr(0.5, 0.5, 0.5)


def test_apgr_of_random_router_is_one_half():
    share = np.linspace(0, 1, 11)
    quality = 0.6 + 0.2 * share  # linear mix of weak (0.6) and strong (0.8)
    assert M.apgr(share, quality, 0.6, 0.8) == pytest.approx(0.5, abs=1e-9)


def test_apgr_of_a_perfect_step():
    # Reaches the strong quality with 20% strong calls, flat after: area = 0.5*0.2 + 0.8 = 0.9
    share = np.array([0.0, 0.2, 1.0])
    quality = np.array([0.6, 0.8, 0.8])
    assert M.apgr(share, quality, 0.6, 0.8) == pytest.approx(0.9, abs=1e-6)


def test_cpt_interpolates_between_points():
    share = np.array([0.0, 0.5, 1.0])
    quality = np.array([0.0, 0.8, 1.0])  # PGR 0, 0.8, 1
    assert M.cpt(share, quality, 0.0, 1.0, 0.4) == pytest.approx(0.25, abs=1e-3)
    assert M.cpt(share, quality, 0.0, 1.0, 0.9) == pytest.approx(0.75, abs=1e-3)
    assert M.cpt(share, quality, 0.0, 1.0, 1.5) is None


def test_cost_and_quality_lookups():
    cost, quality = np.array([1.0, 2.0, 5.0]), np.array([0.5, 0.7, 0.72])
    assert M.cost_at_quality(cost, quality, 0.7) == 2.0
    assert M.cost_at_quality(cost, quality, 0.9) is None
    assert M.quality_at_cost(cost, quality, 4.0) == 0.7
    assert M.quality_at_cost(cost, quality, 0.5) is None


def test_upper_hull_drops_points_under_the_chord_and_dominated_ones():
    hx, hy = M.upper_hull([0, 0.5, 1, 0.6, 0.9], [0, 0.4, 1, 0.9, 0.8])
    # (0.5,0.4) is under the chord from (0,0) to (0.6,0.9); (0.9,0.8) is dominated.
    assert list(hx) == [0.0, 0.6, 1.0] and list(hy) == [0.0, 0.9, 1.0]


def test_aiq_hand_case():
    # Two models at normalised cost 0 (q 0.5) and 1 (q 0.9): AIQ = trapezoid = 0.7
    assert M.aiq([1.0, 3.0], [0.5, 0.9], 1.0, 3.0) == pytest.approx(0.7, abs=1e-6)
    # A router point at cost 0.5 with q 0.9 lifts the hull: 0.5*(0.5+0.9)/2 + 0.5*0.9 = 0.8
    assert M.aiq([1.0, 2.0, 3.0], [0.5, 0.9, 0.9], 1.0, 3.0) == pytest.approx(0.8, abs=1e-6)


def test_oracle_prefers_the_cheapest_of_the_best():
    scores = np.array([[1, 1], [0, 1], [0, 0]], dtype=float)
    costs = np.array([[1, 10], [1, 10], [1, 10]], dtype=float)
    choice, q, c = M.oracle(scores, costs)
    assert list(choice) == [0, 1, 0]
    assert q == pytest.approx(2 / 3) and c == pytest.approx(12 / 3)


def test_aiq_is_finite_when_the_first_point_is_not_on_the_grid():
    # A lone point at normalised cost 0.125 (not a grid point): the area right of it only.
    assert M.aiq([0.125 * 8 + 1], [0.5], 1.0, 9.0) == pytest.approx(0.5 * 0.875, abs=1e-3)


def test_apgr_on_a_partial_curve_is_the_mean_over_its_covered_shares():
    # Covers shares 0.2..1 only. PGR: 0.5 at 0.2, 1 at 0.6, 1 at 1.0.
    # Area over [0.2, 1] = 0.4 * (0.5 + 1) / 2 + 0.4 * 1 = 0.7; mean = 0.7 / 0.8 = 0.875.
    share = np.array([0.2, 0.6, 1.0])
    quality = np.array([0.7, 0.8, 0.8])
    assert M.share_range(share) == (0.2, 1.0)
    assert not M.covers_all_shares(share)
    assert M.apgr(share, quality, 0.6, 0.8) == pytest.approx(0.875, abs=1e-6)
    # The old flat extrapolation would have credited PGR 0.5 over [0, 0.2] too: 0.8.
    assert M.apgr(share, quality, 0.6, 0.8) != pytest.approx(0.8, abs=1e-3)
    # A full curve is unchanged: the RouteLLM definition.
    assert M.covers_all_shares([0.0, 0.5, 1.0])
    assert M.apgr([0.0, 1.0], [0.6, 0.8], 0.6, 0.8) == pytest.approx(0.5, abs=1e-9)
    # One share only: no area to average.
    assert M.apgr([0.3, 0.3], [0.7, 0.7], 0.6, 0.8) is None


def test_cpt_looks_only_within_the_covered_shares():
    share = np.array([0.2, 0.6])
    quality = np.array([0.7, 0.8])  # PGR 0.5 at 0.2, 1 at 0.6 (weak 0.6, strong 0.8)
    # PGR 0.75 halfway between the points: share 0.4.
    assert M.cpt(share, quality, 0.6, 0.8, 0.75) == pytest.approx(0.4, abs=1e-3)
    # Already met at the lowest covered share: that share, never a share below it.
    assert M.cpt(share, quality, 0.6, 0.8, 0.3) == pytest.approx(0.2, abs=1e-9)
    # Above the curve's last point is never met (no flat extrapolation to 100%).
    assert M.cpt([0.0, 0.5], [0.6, 0.7], 0.6, 0.8, 0.9) is None


def test_zero_router_is_the_upper_hull_of_the_single_models():
    # Three models: (1, 0.5), (2, 0.6) under the chord to (3, 0.9), and a dominated (4, 0.8).
    cost, quality = M.zero_router([1.0, 2.0, 3.0, 4.0], [0.5, 0.6, 0.9, 0.8], n_points=5)
    # Hull (1, 0.5)-(3, 0.9); grid every 0.5 of cost: quality rises 0.1 per 0.5.
    np.testing.assert_allclose(cost, [1.0, 1.5, 2.0, 2.5, 3.0])
    np.testing.assert_allclose(quality, [0.5, 0.6, 0.7, 0.8, 0.9])
    # The middle model (2, 0.6) is not on it: mixing the outer two beats it (0.7 at cost 2).
    assert M.quality_at_cost(cost, quality, 2.0) == pytest.approx(0.7)
    # One model dominating the rest: the zero router is that model.
    c1, q1 = M.zero_router([1.0, 2.0], [0.9, 0.5])
    assert list(c1) == [1.0] and list(q1) == [0.9]


def test_upper_hull_keeps_the_best_of_equal_costs():
    hx, hy = M.upper_hull([1.0, 1.0, 2.0], [0.4, 0.6, 0.7])
    assert list(hx) == [1.0, 2.0] and list(hy) == [0.6, 0.7]
