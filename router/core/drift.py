"""Drift alarm: are live routing scores still distributed as on the scorer's training data?

At training, the scorer records the distribution of three signals over its training prompts
(out-of-fold predictions, so they look like predictions on prompts it never saw):

- *domain*: the share of each predicted domain;
- *difficulty* and *gain*: histograms over ten bins cut at the training deciles.

`DriftMonitor` keeps the last `window` live decisions and compares each signal with its training
distribution by the population stability index,
PSI = Σ (live share − training share) · ln(live share / training share).
Rule of thumb: below 0.1 stable, 0.1–0.25 a moderate shift, above 0.25 a large one. Past the
configured threshold the monitor logs one warning (and one more only after the signal came back
below it): the scorer is being asked about prompts unlike the ones it learned from.

A batch routed at once (a notebook's replay or evaluation, a file's rows in their order) is not
live traffic: its windows follow the file's grouping, and every crossing would log a line.
`DriftMonitor.batch()` holds those warnings and logs one summary at the end instead: which
signals went past the threshold, in which windows, by how much, and whether they still are.
`summarise_windows` writes the same summary for any series of windows (notebook 03's).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

log = logging.getLogger("router.core.drift")

SIGNALS = ("domain", "difficulty", "gain")
DEFAULT_BINS = 10
# Shares are floored here before the logarithm: an empty bin would make PSI infinite.
PSI_FLOOR = 1e-4
# A drift summary names this many spans of windows past the threshold per signal, then counts.
MAX_SPANS = 3


def quantile_edges(values: np.ndarray, bins: int = DEFAULT_BINS) -> list[float]:
    """Bin edges at the quantiles of `values` (probabilities), outer edges 0 and 1, no repeats."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return [0.0, 1.0]
    inner = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(np.r_[0.0, np.round(inner, 6), 1.0])
    return [float(e) for e in edges]


def bin_counts(values: Iterable[float], edges: Sequence[float]) -> np.ndarray:
    """How many values fall in each bin [e_i, e_i+1) (the last bin closed; outliers clamped)."""
    v = np.clip(np.asarray(list(values), dtype=np.float64), edges[0], edges[-1])
    idx = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(edges) - 2)
    return np.bincount(idx, minlength=len(edges) - 1)


def reference_distributions(
    domains: Sequence[str],
    predicted_domain: np.ndarray,
    difficulty: np.ndarray,
    gain: np.ndarray,
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """The training-data distributions a scorer saves (JSON-able).

    `predicted_domain` holds domain indices; `difficulty` and `gain` probabilities (NaN: none).
    """
    out: dict[str, Any] = {
        "domain": {
            "labels": list(domains),
            "counts": np.bincount(
                np.asarray(predicted_domain, dtype=int), minlength=len(domains)
            ).tolist(),
        }
    }
    for name, values in (("difficulty", difficulty), ("gain", gain)):
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        edges = quantile_edges(v, bins)
        out[name] = {"edges": edges, "counts": bin_counts(v, edges).tolist()}
    return out


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index between two histograms over the same bins (counts or shares)."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("psi needs two non-empty histograms over the same bins")
    e = np.maximum(e / e.sum(), PSI_FLOOR)
    a = np.maximum(a / a.sum(), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def check_reference(reference: Any) -> dict[str, Any] | None:
    """The reference if it has every signal in the expected shape, else None (old scorers)."""
    if not isinstance(reference, dict):
        return None
    try:
        dom = reference["domain"]
        if len(dom["labels"]) != len(dom["counts"]) or sum(dom["counts"]) <= 0:
            return None
        for name in ("difficulty", "gain"):
            h = reference[name]
            if len(h["edges"]) != len(h["counts"]) + 1 or sum(h["counts"]) <= 0:
                return None
    except (KeyError, TypeError):
        return None
    return reference


def _finite(value: Any) -> float | None:
    """A PSI as a float, None for none (None or NaN, as pandas holds a missing one)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def summarise_windows(
    windows: Iterable[tuple[str, Mapping[str, float | None]]], threshold: float
) -> str:
    """One line on a series of windows, each `(label, PSI per signal)` in order: for each signal
    past `threshold` in any window, its highest PSI and where, and in which windows it was past
    (spans of consecutive ones); then the PSI of the last window, the end. Or, when none was
    past, each signal's highest."""
    series = [(label, {s: _finite(v) for s, v in scores.items()}) for label, scores in windows]
    names = [s for s in SIGNALS if any(sc.get(s) is not None for _, sc in series)]
    if not names:
        return "no window had enough requests for a PSI"

    def listed(scores: Mapping[str, float | None]) -> str:
        return ", ".join(f"{s} {scores[s]:.3f}" for s in names if scores.get(s) is not None)

    past = {
        s: [i for i, (_, sc) in enumerate(series) if sc.get(s) is not None and sc[s] > threshold]
        for s in names
    }
    if not any(past.values()):
        highest = {s: max(sc[s] for _, sc in series if sc.get(s) is not None) for s in names}
        return (
            f"no window past PSI {threshold:.3f} ({len(series)} windows; highest {listed(highest)})"
        )
    hit = sum(any(v is not None and v > threshold for v in sc.values()) for _, sc in series)
    parts = []
    for s in names:
        if not past[s]:
            continue
        peak = max(past[s], key=lambda i: series[i][1][s])
        text = f"{s} up to {series[peak][1][s]:.3f} ({series[peak][0]})"
        if len(past[s]) > 1:
            # Consecutive windows past the threshold make one span; a few spans are named.
            spans: list[list[int]] = []
            for i in past[s]:
                if spans and i == spans[-1][1] + 1:
                    spans[-1][1] = i
                else:
                    spans.append([i, i])
            named = [
                series[a][0] if a == b else f"from {series[a][0]} to {series[b][0]}"
                for a, b in spans[:MAX_SPANS]
            ]
            if len(spans) > MAX_SPANS:
                named.append(f"{len(spans) - MAX_SPANS} more")
            text += f", past it in {len(past[s])} windows: {', '.join(named)}"
        parts.append(text)
    last_label, last = series[-1]
    return (
        f"PSI past {threshold:.3f} in {hit} of {len(series)} windows: "
        + "; ".join(parts)
        + f"; at the end ({last_label}): {listed(last)}"
    )


class DriftBatch:
    """What `DriftMonitor.batch()` saw: each check's PSI, labelled by the batch's requests in its
    window, the signals whose warning it held back, and the alarms at the end."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.requests = 0  # observed during the batch
        self.windows: list[tuple[str, dict[str, float | None]]] = []
        self.crossed: list[str] = []  # one entry per warning held back, in order
        self.alarms: dict[str, bool] = dict.fromkeys(SIGNALS, False)  # at the end
        self._checked_at = -1  # the batch's request count at its last check

    def summary(self) -> str:
        text = f"routing drift over a batch of {self.requests} requests: " + summarise_windows(
            self.windows, self.threshold
        )
        still = [s for s in SIGNALS if self.alarms.get(s)]
        if still:
            text += (
                f"; past the threshold at the end: {', '.join(still)}: the scorer sees prompts "
                "unlike its training data (retrain from the decision log)"
            )
        elif self.crossed:
            text += "; none is past the threshold at the end"
        return text

    __str__ = summary


class DriftMonitor:
    """PSI of live domain, difficulty and gain against the scorer's training distributions.

    `observe()` is cheap (a deque append under a lock) and safe from any thread; PSI is
    computed every `check_every` observations and on demand (`/metrics` scrapes).
    """

    def __init__(
        self,
        reference: dict[str, Any] | None,
        window: int = 1000,
        threshold: float = 0.25,
        min_samples: int = 100,
        check_every: int = 50,
    ) -> None:
        self.reference = check_reference(reference)
        self.window = window
        self.threshold = threshold
        # A window never holds more than `window` decisions: a larger minimum would keep the
        # alarm silent for ever.
        self.min_samples = min(min_samples, window)
        self.check_every = check_every
        self._live: dict[str, deque] = {s: deque(maxlen=window) for s in SIGNALS}
        self._lock = threading.Lock()
        self._seen = 0
        self._alarm: dict[str, bool] = dict.fromkeys(SIGNALS, False)
        self.warnings = 0  # warnings logged so far
        self.last: dict[str, float | None] = dict.fromkeys(SIGNALS)
        self._batch: DriftBatch | None = None  # batch(): its warnings are held
        self._batch_start = 0

    @property
    def enabled(self) -> bool:
        """False for a scorer saved without training distributions (retrain to get them)."""
        return self.reference is not None

    def observe(self, domain: str | None, difficulty: float | None, gain: float | None) -> None:
        """One live decision's scores (None where the request had no text)."""
        if self.reference is None:
            return
        with self._lock:
            if domain is not None:
                self._live["domain"].append(domain)
            if difficulty is not None:
                self._live["difficulty"].append(float(difficulty))
            if gain is not None:
                self._live["gain"].append(float(gain))
            self._seen += 1
            due = self._seen % self.check_every == 0
        if due:
            self.check()

    @property
    def settings(self) -> tuple[int, float, int]:
        return (self.window, self.threshold, self.min_samples)

    def adopt(self, old: DriftMonitor) -> None:
        """Continue `old`'s window (a reload with the same scorer but new settings): its newest
        decisions, up to this window's size, and whether each signal was past the threshold."""
        with old._lock:
            live = {s: list(v) for s, v in old._live.items()}
            seen = old._seen
        with self._lock:
            for s in SIGNALS:
                self._live[s].extend(live[s][-self.window :])
            self._seen = seen
        self._alarm = old.alarms()
        self.warnings = old.warnings
        self.check()  # the new threshold applies now, not after `check_every` more requests

    def samples(self) -> dict[str, int]:
        with self._lock:
            return {s: len(v) for s, v in self._live.items()}

    def live_histograms(self) -> dict[str, np.ndarray]:
        """The window's counts over the reference bins, per signal."""
        if self.reference is None:
            return {}
        with self._lock:
            live = {s: list(v) for s, v in self._live.items()}
        labels = self.reference["domain"]["labels"]
        pos = {d: i for i, d in enumerate(labels)}
        dom = np.zeros(len(labels))
        for d in live["domain"]:
            if d in pos:
                dom[pos[d]] += 1
        out = {"domain": dom}
        for name in ("difficulty", "gain"):
            out[name] = bin_counts(live[name], self.reference[name]["edges"])
        return out

    def scores(self) -> dict[str, float | None]:
        """PSI per signal over the current window; None until `min_samples` were seen."""
        if self.reference is None:
            return dict.fromkeys(SIGNALS)
        out: dict[str, float | None] = {}
        for name, counts in self.live_histograms().items():
            if counts.sum() < self.min_samples:
                out[name] = None
            else:
                out[name] = round(psi(self.reference[name]["counts"], counts), 6)
        return out

    def check(self) -> dict[str, float | None]:
        """Compute PSI and log a warning for each signal that crossed the threshold (within a
        `batch()`, record the window and hold the warning for the batch's summary)."""
        scores = self.scores()
        self.last = scores
        batch = self._batch
        if batch is not None:
            self._record(batch, scores)
        for name, value in scores.items():
            above = value is not None and value > self.threshold
            if above and not self._alarm[name] and batch is not None:
                batch.crossed.append(name)
            elif above and not self._alarm[name]:
                self.warnings += 1
                log.warning(
                    "routing drift: %s PSI %.3f > %.3f over the last %d requests; the scorer "
                    "sees prompts unlike its training data (retrain from the decision log)",
                    name,
                    value,
                    self.threshold,
                    self.samples()[name],
                    extra={"signal": name, "psi": value, "threshold": self.threshold},
                )
            self._alarm[name] = above
        return scores

    def alarms(self) -> dict[str, bool]:
        return dict(self._alarm)

    def _record(self, batch: DriftBatch, scores: dict[str, float | None]) -> None:
        with self._lock:
            n = self._seen - self._batch_start
            k = max(len(v) for v in self._live.values())
        batch._checked_at = n
        if all(v is None for v in scores.values()):
            return
        first = n - k + 1
        label = f"requests {first}–{n}" if first >= 1 else f"the last {k} requests at request {n}"
        batch.windows.append((label, dict(scores)))

    @contextmanager
    def batch(self) -> Iterator[DriftBatch]:
        """Observe a batch (a replay or an evaluation in a notebook, a file's rows in their
        order) with one warning at its end instead of one per signal at every crossing.

        Checks run as usual and `alarms()` (and `/metrics`) follow them; a last check covers
        the batch's end. The warnings a crossing would log are held, and if there was any, one
        warning sums them up (`DriftBatch.summary()`): each signal past the threshold, in which
        windows, its highest PSI, and the signals still past it at the end. For offline batches:
        the proxy's live monitor is never held."""
        batch = DriftBatch(self.threshold)
        if self.reference is None:
            yield batch
            return
        if self._batch is not None:
            raise RuntimeError("this drift monitor is already in a batch")
        with self._lock:
            self._batch_start = self._seen
        self._batch = batch
        try:
            yield batch
        finally:
            with self._lock:
                batch.requests = self._seen - self._batch_start
            try:
                if batch._checked_at != batch.requests:
                    self.check()  # the batch's end
            finally:
                self._batch = None
            batch.alarms = self.alarms()
            if batch.crossed:
                self.warnings += 1
                log.warning(
                    "%s",
                    batch.summary(),
                    extra={"signals": sorted(set(batch.crossed)), "threshold": self.threshold},
                )
