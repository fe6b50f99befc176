"""Micro-batched routing: concurrent encode calls share one encoder call (no timing involved)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from router.server.batching import BatchingEncoder


class FakeEncoder:
    identity = "fake/1"
    dim = 2

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = threading.Event()

    def encode(self, texts, *args, **kwargs):
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            assert self.release.wait(60)
        if any(t == "boom" for t in texts):
            raise RuntimeError("encoder failed")
        return np.array([[len(t), i] for i, t in enumerate(texts)], dtype=np.float32)


def _wait_until(cond) -> None:
    deadline = time.monotonic() + 60  # a condition, not a duration: generous on a busy box
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _run(enc, texts):
    out = {}

    def go(t):
        try:
            out[t] = enc.encode([t])
        except RuntimeError as e:
            out[t] = e

    threads = [threading.Thread(target=go, args=(t,)) for t in texts]
    return out, threads


def test_waiting_callers_share_one_encoder_call():
    inner = FakeEncoder()
    enc = BatchingEncoder(inner)
    assert enc.identity == "fake/1" and enc.dim == 2
    out, threads = _run(enc, ["a", "bb", "ccc", "dddd", "eeeee"])
    threads[0].start()
    _wait_until(lambda: len(inner.calls) == 1)  # the leader is inside the encoder
    for t in threads[1:]:
        t.start()
    _wait_until(lambda: len(enc._queue) == 4)
    inner.release.set()
    for t in threads:
        t.join(60)
    assert inner.calls == [["a"], ["bb", "ccc", "dddd", "eeeee"]]
    for text, X in out.items():
        assert X.shape == (1, 2) and X[0, 0] == len(text)


def test_an_error_reaches_every_caller_of_the_batch():
    inner = FakeEncoder()
    enc = BatchingEncoder(inner)
    out, threads = _run(enc, ["first", "boom", "ok"])
    threads[0].start()
    _wait_until(lambda: len(inner.calls) == 1)
    for t in threads[1:]:
        t.start()
    _wait_until(lambda: len(enc._queue) == 2)
    inner.release.set()
    for t in threads:
        t.join(60)
    assert isinstance(out["boom"], RuntimeError) and isinstance(out["ok"], RuntimeError)
    assert out["first"].shape == (1, 2)
    # And the wrapper keeps working afterwards.
    assert enc.encode(["again"]).shape == (1, 2)


def test_bulk_calls_bypass_batching():
    inner = FakeEncoder()
    inner.release.set()
    enc = BatchingEncoder(inner)
    assert enc.encode(["x", "y"], batch_size=8).shape == (2, 2)


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
    batching = BatchingEncoder(gated)
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
    _wait_until(lambda: len(batching._queue) == len(texts) - 1)
    gated.release.set()
    for t in threads:
        t.join(120)
    # One call for the leader, one padded batch for everyone who queued behind it.
    assert gated.calls == [texts[:1], texts[1:]]
    for i, d in enumerate(alone):
        b = out[i]
        assert not isinstance(b, Exception), b
        assert (b.model, b.tier, b.reason, b.domain) == (d.model, d.tier, d.reason, d.domain)
        assert b.difficulty == pytest.approx(d.difficulty, abs=1e-4)
        assert b.gain == pytest.approx(d.gain, abs=1e-4)
        assert b.success == pytest.approx(d.success, abs=1e-4)
        assert b.domain_confidence == pytest.approx(d.domain_confidence, abs=1e-4)
