"""Concurrent requests' encoder calls (router/server/batching.py): lanes taken in arrival
order, each caller answered when its own call ends, waiting texts sharing a call up to the
batch. Every step is driven by the test (gated calls, no timing involved)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from router.server.batching import BatchingEncoder


class FakeEncoder:
    """Each call waits until the test releases it (`release(i)`: the i-th call, from 0)."""

    identity = "fake/1"
    dim = 2

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.running = 0
        self.most_at_once = 0
        self._gates: list[threading.Event] = []
        self._lock = threading.Lock()

    def release(self, i: int) -> None:
        _wait_until(lambda: len(self._gates) > i)
        self._gates[i].set()

    def encode(self, texts, *args, **kwargs):
        with self._lock:
            self.calls.append(list(texts))
            gate = threading.Event()
            self._gates.append(gate)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            assert gate.wait(60)
            if any(t == "boom" for t in texts):
                raise RuntimeError("encoder failed")
            return np.array([[len(t), i] for i, t in enumerate(texts)], dtype=np.float32)
        finally:
            with self._lock:
                self.running -= 1


def _wait_until(cond) -> None:
    deadline = time.monotonic() + 60  # a condition, not a duration: generous on a busy box
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.01)


class Callers:
    """One thread per text, started one after the other: each is in line (or in a call)
    before the next starts, so their order of arrival is known."""

    def __init__(self, enc) -> None:
        self.enc = enc
        self.out: dict[str, object] = {}
        self.threads: list[threading.Thread] = []

    def start(self, text: str, in_call: bool = False) -> None:
        before = self.enc.waiting

        def go():
            try:
                self.out[text] = self.enc.encode([text])
            except RuntimeError as e:
                self.out[text] = e

        t = threading.Thread(target=go)
        self.threads.append(t)
        t.start()
        if in_call:
            _wait_until(lambda: [text] in self.enc.inner.calls or text in _flat(self.enc))
        else:
            _wait_until(lambda: self.enc.waiting == before + 1)

    def join(self) -> None:
        for t in self.threads:
            t.join(60)


def _flat(enc) -> list[str]:
    return [t for call in enc.inner.calls for t in call]


def test_a_caller_gets_its_vector_when_its_own_call_ends():
    """No leader working through the line: A returns while B's call still runs, and C (who
    came after B) is not encoded before B."""
    inner = FakeEncoder()
    enc = BatchingEncoder(inner, lanes=1, batch=1)
    assert enc.identity == "fake/1" and enc.dim == 2
    callers = Callers(enc)
    callers.start("a", in_call=True)
    callers.start("bb")
    callers.start("ccc")
    inner.release(0)
    _wait_until(lambda: "a" in callers.out)  # A is answered ...
    _wait_until(lambda: len(inner.calls) == 2)
    assert inner.calls == [["a"], ["bb"]] and "bb" not in callers.out  # ... B still encoding
    assert callers.threads[0].is_alive() is False
    inner.release(1)
    inner.release(2)
    callers.join()
    assert inner.calls == [["a"], ["bb"], ["ccc"]]
    for text, X in callers.out.items():
        assert X.shape == (1, 2) and X[0, 0] == len(text)


def test_callers_take_the_lane_in_the_order_they_came():
    inner = FakeEncoder()
    enc = BatchingEncoder(inner, lanes=1, batch=1)
    callers = Callers(enc)
    callers.start("first", in_call=True)
    for text in ["2", "3", "4", "5"]:
        callers.start(text)
    for i in range(5):
        inner.release(i)
    callers.join()
    assert inner.calls == [["first"], ["2"], ["3"], ["4"], ["5"]]
    assert enc.calls == 5 and inner.most_at_once == 1


def test_lanes_run_calls_at_once():
    inner = FakeEncoder()
    enc = BatchingEncoder(inner, lanes=2, batch=1)
    callers = Callers(enc)
    callers.start("a", in_call=True)
    callers.start("b", in_call=True)  # a second lane: in a call while A's still runs
    callers.start("c")  # no third lane: in line
    assert inner.running == 2 and enc.waiting == 1
    for i in range(3):
        inner.release(i)
    callers.join()
    assert inner.most_at_once == 2 and sorted(callers.out) == ["a", "b", "c"]


def test_a_call_takes_what_is_already_waiting_up_to_the_batch():
    inner = FakeEncoder()
    enc = BatchingEncoder(inner, lanes=1, batch=3)
    callers = Callers(enc)
    callers.start("a", in_call=True)
    for text in ["b", "c", "d", "e"]:
        callers.start(text)
    inner.release(0)  # B's turn: B takes C and D with it (3 texts), E waits for the next call
    inner.release(1)
    inner.release(2)
    callers.join()
    assert inner.calls == [["a"], ["b", "c", "d"], ["e"]]
    for text, X in callers.out.items():
        assert X.shape == (1, 2) and X[0, 0] == len(text)


def test_an_error_reaches_every_caller_of_the_call():
    inner = FakeEncoder()
    enc = BatchingEncoder(inner, lanes=1, batch=4)
    callers = Callers(enc)
    callers.start("first", in_call=True)
    callers.start("boom")
    callers.start("ok")
    inner.release(0)
    inner.release(1)
    callers.join()
    assert isinstance(callers.out["boom"], RuntimeError)
    assert isinstance(callers.out["ok"], RuntimeError)  # it shared the failed call
    assert callers.out["first"].shape == (1, 2)
    # And the wrapper keeps working afterwards (the lane was passed on, not lost).
    threading.Thread(target=inner.release, args=(2,)).start()
    assert enc.encode(["again"]).shape == (1, 2)


def test_lanes_and_batch_come_from_the_encoders_measured_plan():
    from router.core.autotune import EncoderPlan

    inner = FakeEncoder()
    inner.plan = EncoderPlan(threads=1, lanes=3, batch=5, cores=3, threads_measured=True)
    enc = BatchingEncoder(inner)
    assert (enc.lanes, enc.batch) == (3, 5)


def test_bulk_calls_bypass_batching():
    inner = FakeEncoder()
    enc = BatchingEncoder(inner)
    threading.Thread(target=inner.release, args=(0,)).start()
    assert enc.encode(["x", "y"], batch_size=8).shape == (2, 2)
    assert enc.calls == 0  # not counted: it went straight to the encoder


class GatedEncoder:
    """The real encoder, whose first call waits for `release`: the others queue up behind it."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, texts, *args, **kwargs):
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            assert self.release.wait(120)
        return self.inner.encode(texts, *args, **kwargs)


BATCH_TEXTS = [
    "hi",
    "What is 7 plus 5?",
    "Prove that there are infinitely many primes, then generalise the argument to primes "
    "of the form 4k + 3 and explain where it fails for 4k + 1.",
    "Translate 'good morning' into French",
    "Write a Python function that merges two sorted lists in linear time, with tests.",
    "Which bone protects the brain?",
    "Summarise the causes of the First World War in three bullet points for a student.",
]


def test_real_router_decisions_are_the_same_through_the_batching_encoder(router):
    """Routing concurrent requests through one padded encoder batch gives each request the
    decision (model, reason, scores) it gets when routed alone."""
    from router import Router

    texts = BATCH_TEXTS
    for t in texts:
        router.encoder._cache.pop(t, None)
    alone = [router.route(t) for t in texts]
    for t in texts:
        router.encoder._cache.pop(t, None)  # the batch must really be embedded, not cached
    gated = GatedEncoder(router.encoder)
    batching = BatchingEncoder(gated, lanes=1, batch=len(texts))
    batched_router = Router(router.config, router.policies, router.scorer, batching)
    out: dict[int, object] = {}

    def go(i):
        try:
            out[i] = batched_router.route(texts[i])
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            out[i] = e

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(texts))]
    threads[0].start()
    _wait_until(lambda: len(gated.calls) == 1)  # the leader is inside the encoder
    for t in threads[1:]:
        t.start()
    _wait_until(lambda: batching.waiting == len(texts) - 1)
    gated.release.set()
    for t in threads:
        t.join(120)
    # One call for the first, one padded batch for everyone who waited behind it (in any
    # order: the threads reach the queue as the scheduler lets them, and batches sort by length).
    assert len(gated.calls) == 2 and gated.calls[0] == texts[:1]
    assert sorted(gated.calls[1]) == sorted(texts[1:])
    for i, d in enumerate(alone):
        b = out[i]
        assert not isinstance(b, Exception), b
        assert (b.model, b.tier, b.reason, b.domain) == (d.model, d.tier, d.reason, d.domain)
        assert b.difficulty == pytest.approx(d.difficulty, abs=1e-4)
        assert b.gain == pytest.approx(d.gain, abs=1e-4)
        assert b.success == pytest.approx(d.success, abs=1e-4)
        assert b.domain_confidence == pytest.approx(d.domain_confidence, abs=1e-4)


class GatedScorer:
    """The real scorer, whose first call waits for `release`: the others queue up behind it."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[int] = []  # rows per call
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict(self, X, texts):
        self.calls.append(len(X))
        if len(self.calls) == 1:
            assert self.release.wait(120)
        return self.inner.predict(X, texts)


def test_waiting_rows_share_one_scorer_call_and_each_gets_its_own_scores(router):
    from router.server.batching import BatchingScorer

    texts = BATCH_TEXTS
    X = router.encoder.encode(texts)
    alone = [router.scorer.predict(X[i : i + 1], [t]) for i, t in enumerate(texts)]
    gated = GatedScorer(router.scorer)
    shared = BatchingScorer(gated)
    assert shared.domains_ == router.scorer.domains_  # the scorer's attributes pass through
    out: dict[int, object] = {}

    def go(i):
        out[i] = shared.predict(X[i : i + 1], [texts[i]])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(texts))]
    threads[0].start()
    _wait_until(lambda: len(gated.calls) == 1)  # the first is inside the scorer
    for i, t in enumerate(threads[1:], 1):
        t.start()
        _wait_until(lambda i=i: shared.waiting == i)
    gated.release.set()
    for t in threads:
        t.join(120)
    assert gated.calls == [1, len(texts) - 1]  # everyone who waited shared one call
    for i, a in enumerate(alone):
        b = out[i]
        assert len(b) == 1 and b.domains == a.domains and b.models == a.models
        np.testing.assert_allclose(b.domain_probs, a.domain_probs, atol=1e-9)
        np.testing.assert_allclose(b.difficulty, a.difficulty, atol=1e-9)
        np.testing.assert_allclose(b.gain, a.gain, atol=1e-9)
        np.testing.assert_allclose(b.success, a.success, atol=1e-9)
        # The evidence behind each estimate is its own row's, not the shared call's first.
        assert (a.evidence is None) == (b.evidence is None)
        if a.evidence is not None:
            assert b.evidence.shape == a.evidence.shape
            np.testing.assert_allclose(b.evidence, a.evidence, atol=1e-5)  # float32 sims


def test_a_bulk_prediction_goes_straight_to_the_scorer(router):
    from router.server.batching import BatchingScorer

    shared = BatchingScorer(router.scorer, batch=4)
    texts = BATCH_TEXTS[:5]
    out = shared.predict(router.encoder.encode(texts), texts)
    assert len(out) == 5 and shared.calls == 0


def test_cached_texts_need_no_lane(router):
    """A text the encoder has cached comes back at once, even while every lane is busy (the
    decision log's writer asks for each routed text again)."""
    gated = GatedEncoder(router.encoder)
    gated.cached = router.encoder.cached
    enc = BatchingEncoder(gated, lanes=1, batch=1)
    router.encoder.encode(["already here"])  # in the cache now
    router.encoder._cache.pop("not cached yet", None)
    busy = threading.Thread(target=enc.encode, args=(["not cached yet"],))
    busy.start()
    try:
        _wait_until(lambda: len(gated.calls) == 1)  # the only lane is held
        X = enc.encode(["already here"])
        assert X.shape == (1, router.encoder.dim) and gated.calls == [["not cached yet"]]
        np.testing.assert_allclose(X, router.encoder.encode(["already here"]))
    finally:
        gated.release.set()
        busy.join(60)
