"""Charts of the figures as inline SVG, drawn on the server: the dashboard swaps them in as they
refresh and `router stats --html` writes them into its report, so one drawing serves both and
neither needs a script or anything from outside.

Only SVG presentation attributes are used (no `style=`): the dashboard's Content-Security-Policy
allows no inline styles. Every text is escaped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from html import escape
from typing import Any

# Tableau 10: distinct, readable on white, fine for colour-blind readers in its first few.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
SPEND, LARGE, SAVED = "#4e79a7", "#9c9c9c", "#59a14f"
W, H = 640, 220  # the viewBox; the SVG scales to its container
LEFT, RIGHT, BOTTOM = 56, 48, 34  # plot margins
TOP = 28  # room for the legend above the plot
PW, PH = W - LEFT - RIGHT, H - TOP - BOTTOM  # the plot area
CHAR_W = 7  # a generous width of one 11 px character, in viewBox units
LEGEND_CHARS = 24  # a longer name is cut short in a legend
MORE_W = 10 + CHAR_W * len("+99 more")  # room a legend keeps for saying what it left out


def model_colours(models: Sequence[str]) -> dict[str, str]:
    """A colour per model, by name order, so a model keeps its colour while the set stays."""
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(sorted(models))}


def usd(v: float | None) -> str:
    """Dollars to four significant digits, never in exponent form ($0.0000657)."""
    if v is None:
        return "–"
    if v == 0:
        return "$0"
    if abs(v) >= 100:
        return f"${v:,.0f}"
    if abs(v) >= 1:
        return f"${v:,.2f}"
    decimals = 4 - math.floor(math.log10(abs(v))) - 1
    return f"${v:.{decimals}f}".rstrip("0").rstrip(".")


def _svg(title: str, body: list[str], label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _nice_max(v: float) -> float:
    """A round axis maximum at or above v (1, 2, 2.5 or 5 times a power of ten)."""
    if v <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= v * (1 - 1e-9):
            return m * mag
    return 10 * mag


def _clock(ts: float, step: int, span: float = 0.0) -> str:
    """A bucket's start, UTC; with the date when the window spans more than a day (a 7-day
    window's 3-hour buckets read "05 Dec 21:00", not a clock face repeating itself)."""
    fmt = "%H:%M" if step < 86400 else "%d %b"
    if step < 86400 and span > 86400:
        fmt = "%d %b %H:%M"
    return time.strftime(fmt, time.gmtime(ts))


def _span(starts: Sequence[float], step: int) -> float:
    """Seconds from the first bucket's start to the last one's end."""
    return (starts[-1] - starts[0] + step) if starts else 0.0


def _ticks(n: int, labels: int = 7) -> list[int]:
    """About `labels` evenly spaced bucket indices, the first and the last among them; a
    tick too close to the last one gives way to it (their labels would overlap)."""
    if n <= 0:
        return []
    every = max(1, n // (labels - 1))
    ticks = list(range(0, n, every))
    if ticks[-1] != n - 1:
        if len(ticks) > 1 and (n - 1) - ticks[-1] < every / 2:
            ticks[-1] = n - 1
        else:
            ticks.append(n - 1)
    return ticks


def _frame(
    starts: Sequence[float], step: int, ymax: float, ylabel, right: tuple[float, Any] | None = None
) -> list[str]:
    """Axes, grid lines, y labels (left; and right when given), a few time labels."""
    pw, ph = PW, PH
    out = [f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fff" stroke="#ddd"/>']
    for i in range(5):
        frac = i / 4
        y = TOP + ph - frac * ph
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#555">{escape(ylabel(ymax * frac))}</text>'
        )
        if right is not None:
            rmax, rlabel = right
            out.append(
                f'<text x="{LEFT + pw + 6}" y="{y + 4:.1f}" font-size="11" '
                f'fill="{SAVED}">{escape(rlabel(rmax * frac))}</text>'
            )
    n = len(starts)
    span = _span(starts, step)
    for i in _ticks(n, 5 if step < 86400 < span else 7):  # dated labels are wider
        x = LEFT + (i + 0.5) * pw / max(1, n)
        out.append(
            f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" font-size="11" '
            f'fill="#555">{escape(_clock(starts[i], step, span))}</text>'
        )
    out.append(
        f'<text x="{W - RIGHT}" y="{H - 4}" text-anchor="end" font-size="10" fill="#888">UTC</text>'
    )
    return out


def _legend(items: Sequence[tuple[str, str]], y: float = 8) -> list[str]:
    """Coloured keys along the top, as many as fit in the chart's width: a name longer than
    LEGEND_CHARS is cut short (whole in its tooltip), and "+N more" counts those left out."""
    out, x = [], LEFT
    for i, (label, colour) in enumerate(items):
        shown = label if len(label) <= LEGEND_CHARS else label[: LEGEND_CHARS - 1] + "…"
        width = 14 + CHAR_W * len(shown)
        left = len(items) - i
        if x + width > W - (MORE_W if left > 1 else 0):
            out.append(f'<text x="{x}" y="{y + 9}" font-size="11" fill="#555">+{left} more</text>')
            break
        tip = f"<title>{escape(label)}</title>" if shown != label else ""
        out.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour}"/>')
        out.append(
            f'<text x="{x + 14}" y="{y + 9}" font-size="11" fill="#333">{escape(shown)}{tip}</text>'
        )
        x += width + 10
    return out


def spend_chart(series: dict[str, Any], step: int) -> str:
    """Spend per time bucket against the all-large counterfactual, and the saved share."""
    starts = series["start"]
    cost, large, saved = series["cost_usd"], series["large_cost_usd"], series["saved_share"]
    n, span = len(starts), _span(starts, step)
    ymax = _nice_max(max([*cost, *large, 0.0]))
    pw, ph, top = PW, PH, TOP

    def x(i: int) -> float:
        return LEFT + (i + 0.5) * pw / max(1, n)

    def y(v: float) -> float:
        return top + ph - v / ymax * ph

    body = _frame(starts, step, ymax, usd, (1.0, lambda v: f"{v:.0%}"))
    bar = max(1.0, pw / max(1, n) * 0.7)
    for i, v in enumerate(cost):
        if v > 0:
            body.append(
                f'<rect x="{x(i) - bar / 2:.1f}" y="{y(v):.1f}" width="{bar:.1f}" '
                f'height="{top + ph - y(v):.1f}" fill="{SPEND}"><title>{escape(_clock(starts[i], step, span))}: '
                f"spent {escape(usd(v))} of {escape(usd(large[i]))} all-large</title></rect>"
            )
    pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(large))
    if n:
        body.append(
            f'<polyline points="{pts}" fill="none" stroke="{LARGE}" stroke-width="1.5" '
            'stroke-dasharray="4 3"/>'
        )
    # The saved share on the right-hand axis (0–100%), where there was spend to compare.
    segs: list[list[str]] = [[]]
    for i, s in enumerate(saved):
        if s is None:
            segs.append([])
        else:
            segs[-1].append(f"{x(i):.1f},{top + ph - max(0.0, min(1.0, s)) * ph:.1f}")
    for seg in segs:
        if len(seg) > 1:
            body.append(
                f'<polyline points="{" ".join(seg)}" fill="none" stroke="{SAVED}" stroke-width="2"/>'
            )
        elif len(seg) == 1:
            cx, cy = seg[0].split(",")
            body.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{SAVED}"/>')
    body += _legend([("spend", SPEND), ("all-large", LARGE), ("saved share (right)", SAVED)])
    return _svg("Spend against all-large, and the saved share", body, "spend chart")


def mix_chart(series: dict[str, Any], step: int) -> str:
    """Answered requests per time bucket, stacked by the model that answered."""
    starts, per_model = series["start"], series["models"]
    n, span = len(starts), _span(starts, step)
    colours = model_colours(list(per_model))
    totals = [sum(v[i] for v in per_model.values()) for i in range(n)]
    ymax = _nice_max(max([*totals, 0]))
    pw, ph, top = PW, PH, TOP
    body = _frame(starts, step, ymax, lambda v: f"{v:g}")
    bar = max(1.0, pw / max(1, n) * 0.8)
    for i in range(n):
        base = 0.0
        for m, counts in per_model.items():
            v = counts[i]
            if not v:
                continue
            h = v / ymax * ph
            y0 = top + ph - (base + v) / ymax * ph
            body.append(
                f'<rect x="{LEFT + (i + 0.5) * pw / n - bar / 2:.1f}" y="{y0:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}" fill="{colours[m]}"><title>'
                f"{escape(_clock(starts[i], step, span))}: {escape(m)} {v}</title></rect>"
            )
            base += v
    body += _legend([(m, colours[m]) for m in per_model])
    return _svg("Requests by answering model", body, "model mix chart")


def latency_chart(histogram: dict[str, Any], pct: dict[str, Any]) -> str:
    """Requests per latency bin, with p50 and p99 named."""
    edges, counts = histogram["edges_ms"], histogram["counts"]
    labels = [f"≤{_ms(e)}" for e in edges] + [f">{_ms(edges[-1])}"]
    # Tooltips name the unit of each bin ("≤1 s", not "≤1s ms").
    tips = [f"≤{_duration(e)}" for e in edges] + [f">{_duration(edges[-1])}"]
    n = len(counts)
    ymax = _nice_max(max([*counts, 0]))
    pw, ph, top = PW, PH, TOP
    body = [f'<rect x="{LEFT}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#ddd"/>']
    for i in range(5):
        y = top + ph - i / 4 * ph
        body.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        body.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#555">{ymax * i / 4:g}</text>'
        )
    bar = pw / n * 0.8
    for i, v in enumerate(counts):
        x = LEFT + (i + 0.5) * pw / n
        if v:
            h = v / ymax * ph
            body.append(
                f'<rect x="{x - bar / 2:.1f}" y="{top + ph - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{SPEND}"><title>{escape(tips[i])}: {v}</title></rect>'
            )
        body.append(
            f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" font-size="10" '
            f'fill="#555">{escape(labels[i])}</text>'
        )
    marks = [f"{k} {_duration(v)}" for k, v in pct.items() if k in ("p50", "p99")]
    body.append(
        f'<text x="{LEFT}" y="17" font-size="11" fill="#333">'
        f"{escape('   '.join(marks) or 'no requests')}</text>"
    )
    body.append(
        f'<text x="{W - RIGHT}" y="{H - 4}" text-anchor="end" font-size="10" fill="#888">ms</text>'
    )
    return _svg("Latency histogram", body, "latency histogram")


def bar(share: float, colour: str = SPEND, width: int = 80) -> str:
    """A small horizontal bar for a share in [0, 1] (tables of models and domains)."""
    w = max(0.0, min(1.0, share)) * width
    return (
        f'<svg class="bar" viewBox="0 0 {width} 10" width="{width}" height="10" '
        f'xmlns="http://www.w3.org/2000/svg"><rect width="{width}" height="10" fill="#eee"/>'
        f'<rect width="{w:.1f}" height="10" fill="{colour}"/></svg>'
    )


def gauge(value: float | None, threshold: float, top: float | None = None) -> str:
    """A bar for a drift PSI with the alarm threshold marked; red past it."""
    width = 80
    top = top or max(threshold * 2, value or 0.0)
    w = 0.0 if value is None else min(1.0, value / top) * width
    colour = "#e15759" if value is not None and value > threshold else SAVED
    t = threshold / top * width
    return (
        f'<svg class="bar" viewBox="0 0 {width} 10" width="{width}" height="10" '
        f'xmlns="http://www.w3.org/2000/svg"><rect width="{width}" height="10" fill="#eee"/>'
        f'<rect width="{w:.1f}" height="10" fill="{colour}"/>'
        f'<line x1="{t:.1f}" x2="{t:.1f}" y1="0" y2="10" stroke="#333" stroke-width="1.5"/></svg>'
    )


def _duration(v: float) -> str:
    """A latency with its unit: "8.9 ms", "250 ms", "5.01 s"."""
    if v >= 1000:
        return f"{v / 1000:.2f}".rstrip("0").rstrip(".") + " s"
    return f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


def _ms(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:g}s"
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}"
