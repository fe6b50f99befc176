"""Measured defaults for the encoder: threads per call, calls at once, texts per call.

Nothing here is a setting to tune: `encoder.threads: auto` (the default) measures at start-up,
on a few fixed texts, how long one text takes with 1, 2 ... threads per call, within the cores
this process may use (`cores_for_this_process`: the CPUs it may run on, divided among the
router processes sharing them). The rule:

- **threads**: the fewest threads whose time is within `THREAD_GAIN` of the fastest count. A
  thread more must pay for itself: a thread that helps one call little is a core another
  request could have used. One core per process (e.g. `router serve` with a worker per core):
  one thread, nothing to measure.
- **lanes**: encoder calls that may run at once in a server, `cores // threads` (at least 1).
- **batch**: texts per call. 1 for an encoder whose vectors would depend on the other texts of
  a call (`per_text`: minilm-l2-q8, minilm-q8); otherwise the smallest of `BATCH_SIZES` whose
  time per text is within `BATCH_GAIN` of the best (measured: a shared call costs the texts
  that share it their waiting for each other, so it must save real work).

The result is measured once per process and kind of encoder (a test session, a reload, a second
Router reuse it) and reported by `router serve` and GET /ready.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

PROCESSES_ENV = "ROUTER_PROCESSES"  # router processes sharing this machine's cores
MAX_THREADS = 4  # more threads never helped a ~60-token text
THREAD_GAIN = 0.15  # a thread more must cut the time by more than this share
BATCH_SIZES = (1, 4, 8)
BATCH_GAIN = 0.10
ROUNDS = 5
MIN_ROUNDS = 3
BUDGET_S = 0.4  # measuring time after which no round starts past MIN_ROUNDS
BATCH_ROUNDS = 3  # a batched encoder (not the default) is slower to measure: fewer rounds

# Fixed texts of the lengths requests have (a greeting to a long instruction).
SAMPLE_TEXTS = (
    "hey, how are you doing today?",
    "What is 17 * 23?",
    "Translate 'good morning, see you at the station at nine' into French and German.",
    "Write a Python function that merges two sorted lists in linear time, with unit tests "
    "for empty lists, duplicates and lists of different lengths.",
    "Summarise the causes of the First World War in three bullet points for a secondary "
    "school student, then name one book that covers the period well and say why it is "
    "worth reading, in no more than two sentences.",
    "A train leaves at 9:40 and arrives at 13:05, with a stop of 12 minutes on the way. How "
    "long was it moving? Show your working.",
)


@dataclass(frozen=True)
class EncoderPlan:
    """How the encoder runs in this process, and why."""

    threads: int  # ONNX intra-op threads per call
    lanes: int  # encoder calls at once (a server's concurrent requests)
    batch: int  # texts per call at most
    cores: int  # the cores this process counts as its own
    threads_measured: bool  # False: set in the config, or one core left nothing to measure
    timings_ms: dict[str, float] = field(default_factory=dict)  # what the choice rests on

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def cores_for_this_process(processes: int | None = None) -> int:
    """The CPUs this process may run on, shared evenly among `processes` router processes
    (default: the ROUTER_PROCESSES environment variable, which `router serve --workers N`
    sets for its workers; 1 when unset)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    if processes is None:
        raw = os.environ.get(PROCESSES_ENV, "").strip()
        try:
            processes = int(raw) if raw else 1
        except ValueError:
            raise ValueError(f"{PROCESSES_ENV}={raw!r}: expected a whole number") from None
    return max(1, cpus // max(1, processes))


def _time_texts(encoder: Any, texts: tuple[str, ...], batch: int = 1) -> float:
    """Seconds to embed `texts`, `batch` per call, bypassing the cache."""
    t0 = time.perf_counter()
    for start in range(0, len(texts), batch):
        encoder._embed(list(texts[start : start + batch]))
    return time.perf_counter() - t0


def _median_rounds(encoders: dict[int, Any], measure: Callable[[Any], float]) -> dict[int, float]:
    """Median over ROUNDS of each candidate's time; candidates alternate within a round so a
    burst of load on the machine hits them all alike. Past BUDGET_S (a loaded machine) it
    stops after MIN_ROUNDS: start-up must stay short."""
    times: dict[int, list[float]] = {k: [] for k in encoders}
    t0 = time.perf_counter()
    for r in range(ROUNDS):
        if r >= MIN_ROUNDS and time.perf_counter() - t0 > BUDGET_S:
            break
        for k, enc in encoders.items():
            times[k].append(measure(enc))
    return {k: statistics.median(v) for k, v in times.items()}


def _fewest_within(times: dict[int, float], gain: float) -> int:
    best = min(times.values())
    return min(k for k, t in times.items() if t <= best * (1 + gain))


def choose_threads(build: Callable[[int], Any], cores: int) -> tuple[Any, int, dict[str, float]]:
    """Build the encoder with each thread count up to `cores` (at most MAX_THREADS), time them
    on SAMPLE_TEXTS and keep the fewest threads within THREAD_GAIN of the fastest. Returns
    (the chosen encoder, its threads, the median ms per round of each count)."""
    counts = list(range(1, min(cores, MAX_THREADS) + 1))
    encoders = {n: build(n) for n in counts}
    if len(counts) == 1:
        return encoders[1], 1, {}
    for enc in encoders.values():  # the first calls of a session are slow: not measured
        _time_texts(enc, SAMPLE_TEXTS[:2])
    times = _median_rounds(encoders, lambda enc: _time_texts(enc, SAMPLE_TEXTS))
    chosen = _fewest_within(times, THREAD_GAIN)
    return encoders[chosen], chosen, {f"threads_{n}": round(t * 1000, 2) for n, t in times.items()}


def choose_batch(encoder: Any) -> tuple[int, dict[str, float]]:
    """Texts per call: 1 for a per-text encoder, else the smallest of BATCH_SIZES whose time
    per text is within BATCH_GAIN of the best."""
    if getattr(encoder, "per_text", False):
        return 1, {}
    texts = (SAMPLE_TEXTS * 2)[: max(BATCH_SIZES)]
    times = {b: t / len(texts) for b, t in _per_size(encoder, texts).items()}
    chosen = _fewest_within(times, BATCH_GAIN)
    return chosen, {f"batch_{b}_per_text": round(t * 1000, 2) for b, t in times.items()}


def _per_size(encoder: Any, texts: tuple[str, ...]) -> dict[int, float]:
    times: dict[int, list[float]] = {b: [] for b in BATCH_SIZES}
    _time_texts(encoder, texts[:2])  # the first calls are slow: not measured
    for _ in range(BATCH_ROUNDS):
        for b in BATCH_SIZES:
            times[b].append(_time_texts(encoder, texts, b))
    return {b: statistics.median(v) for b, v in times.items()}


# One measurement per process and kind of encoder: (name, max_tokens, cores) → (threads,
# timings); (name, max_tokens, threads) → (batch, timings).
_threads_measured: dict[tuple, tuple[int, dict[str, float]]] = {}
_batches_measured: dict[tuple, tuple[int, dict[str, float]]] = {}


def plan_encoder(
    build: Callable[[int], Any],
    threads: int | str,
    kind: str,
    max_tokens: int,
    cores: int | None = None,
    tunable: bool = True,
) -> tuple[Any, EncoderPlan]:
    """The encoder to use and its plan. `build(threads)` makes an encoder of `kind` and
    `max_tokens`; `threads` is the config's value: "auto", or a number used as is.
    `tunable=False`: the backend sets its own threads."""
    cores = cores or cores_for_this_process()
    timings: dict[str, float] = {}
    if not tunable:  # its threads are not ours to set (torch): one call at a time
        encoder = build(1)
        batch, batch_timings = _batch_of((kind, max_tokens, 0), encoder)
        return encoder, EncoderPlan(1, 1, batch, cores, False, batch_timings)
    if threads == "auto":
        key = (kind, max_tokens, cores)
        if key in _threads_measured:
            n, timings = _threads_measured[key]
            encoder = build(n)
        else:
            encoder, n, timings = choose_threads(build, cores)
            _threads_measured[key] = (n, timings)
    else:
        n = int(threads)
        encoder = build(n)
    batch, batch_timings = _batch_of((kind, max_tokens, n), encoder)
    return encoder, EncoderPlan(
        threads=n,
        lanes=max(1, cores // n),
        batch=batch,
        cores=cores,
        threads_measured=bool(timings),
        timings_ms={**timings, **batch_timings},
    )


def _batch_of(key: tuple, encoder: Any) -> tuple[int, dict[str, float]]:
    if key not in _batches_measured:
        _batches_measured[key] = choose_batch(encoder)
    return _batches_measured[key]
