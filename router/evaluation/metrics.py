"""Cost-quality metrics, defined once (docs/evaluation.md, "Metrics") and used by `router eval` and the notebooks.

A curve is a set of operating points: mean cost per prompt, mean quality, and for two-tier data
the share of calls sent to the strong model.
"""

from __future__ import annotations

import numpy as np


def pgr(quality: np.ndarray | float, q_weak: float, q_strong: float) -> np.ndarray:
    """Performance gap recovered: 0 at the weak model's quality, 1 at the strong model's."""
    gap = q_strong - q_weak
    if gap == 0:
        raise ValueError("PGR is undefined when the weak and strong models score the same")
    return (np.asarray(quality, dtype=float) - q_weak) / gap


def share_range(share) -> tuple[float, float]:
    """The strong-call shares a curve covers: (lowest, highest)."""
    s = np.asarray(share, dtype=float)
    return float(s.min()), float(s.max())


def covers_all_shares(share, tol: float = 1e-9) -> bool:
    lo, hi = share_range(share)
    return lo <= tol and hi >= 1 - tol


def _pgr_on_grid(share, quality, q_weak, q_strong, grid):
    order = np.argsort(share, kind="stable")
    s, q = np.asarray(share, float)[order], np.asarray(quality, float)[order]
    return np.interp(grid, s, pgr(q, q_weak, q_strong))


def apgr(share, quality, q_weak: float, q_strong: float) -> float | None:
    """Average PGR over the strong-call shares the curve covers (linear between points;
    random ≈ 0.5). On a curve from 0% to 100% strong calls this is RouteLLM's APGR, the area
    under PGR over 0..1. A curve that covers only [lo, hi] is averaged over [lo, hi]: nothing
    is extrapolated beyond its points (`share_range` tells the range; report it). None when the
    curve has a single share."""
    lo, hi = share_range(share)
    if hi - lo < 1e-12:
        return None
    grid = np.linspace(lo, hi, 1001)
    area = np.trapezoid(_pgr_on_grid(share, quality, q_weak, q_strong, grid), grid)
    return float(area / (hi - lo))


def cpt(share, quality, q_weak: float, q_strong: float, p: float) -> float | None:
    """Call-performance threshold: the smallest strong-call share whose PGR ≥ p, looked for
    within the shares the curve covers (None if it never gets there). On a curve that starts
    above 0% the answer is at least its lowest share."""
    lo, hi = share_range(share)
    grid = np.linspace(lo, hi, 10001)
    ok = np.flatnonzero(_pgr_on_grid(share, quality, q_weak, q_strong, grid) >= p - 1e-12)
    return float(grid[ok[0]]) if len(ok) else None


def cost_at_quality(cost, quality, target: float) -> float | None:
    """The cheapest operating point reaching `target` quality (None if none does)."""
    cost, quality = np.asarray(cost, float), np.asarray(quality, float)
    ok = quality >= target - 1e-12
    return float(cost[ok].min()) if ok.any() else None


def quality_at_cost(cost, quality, budget: float) -> float | None:
    """The best quality of an operating point costing at most `budget` (None if none does)."""
    cost, quality = np.asarray(cost, float), np.asarray(quality, float)
    ok = cost <= budget * (1 + 1e-9)
    return float(quality[ok].max()) if ok.any() else None


def upper_hull(x, y) -> tuple[np.ndarray, np.ndarray]:
    """The non-decreasing upper convex hull of points (x, y), sorted by x."""
    pts = sorted(zip(np.asarray(x, float), np.asarray(y, float), strict=True))
    hull: list[tuple[float, float]] = []
    for px, py in pts:
        if hull and hull[-1][1] >= py:
            continue  # dominated: costs more, scores no better (keeps the hull non-decreasing)
        while hull and hull[-1][0] == px:
            hull.pop()  # same cost, lower quality (points are sorted by cost, then quality)
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            # Drop the middle point if it lies on or below the chord.
            if (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append((px, py))
    hx, hy = zip(*hull, strict=True)
    return np.array(hx), np.array(hy)


def aiq(cost, quality, c_min: float, c_max: float) -> float:
    """RouterBench's AIQ: area under the non-decreasing convex hull, cost normalised to [0, 1].

    The hull is flat to the right of its last point; left of its first point it does not exist,
    so a router that cannot reach the cheapest cost loses that area.
    """
    if c_max <= c_min:
        raise ValueError("AIQ needs c_max > c_min")
    x = (np.asarray(cost, float) - c_min) / (c_max - c_min)
    hx, hy = upper_hull(np.clip(x, 0.0, 1.0), quality)
    grid = np.linspace(0.0, 1.0, 2001)
    vals = np.interp(grid, hx, hy, left=0.0, right=hy[-1])
    return float(np.trapezoid(vals, grid))


def zero_router(cost, quality, n_points: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """RouterBench's zero router: send each prompt to a model drawn at random. Mixing models
    reaches every point on the non-decreasing upper convex hull of their (cost, quality), and no
    more: the hull, with points every 1/(n_points − 1) of its cost range for lookups."""
    hx, hy = upper_hull(cost, quality)
    if len(hx) == 1:
        return hx, hy
    grid = np.union1d(hx, np.linspace(hx[0], hx[-1], n_points))
    return grid, np.interp(grid, hx, hy)


def oracle(scores: np.ndarray, costs: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Per prompt, the cheapest model that scores best: (choice, mean quality, mean cost)."""
    best = scores.max(axis=1, keepdims=True)
    masked = np.where(scores >= best - 1e-12, costs, np.inf)
    choice = masked.argmin(axis=1)
    rows = np.arange(len(scores))
    return choice, float(scores[rows, choice].mean()), float(costs[rows, choice].mean())
