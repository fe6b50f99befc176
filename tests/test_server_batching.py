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


@pytest.mark.parametrize("n", [1, 7])
def test_real_router_decisions_are_unchanged(router, n):
    from router.server import batching

    texts = [f"What is {i} plus {i}?" for i in range(n)]
    plain = [router.route(t) for t in texts]
    wrapped = (
        BatchingEncoder(router.encoder)
        if not isinstance(router.encoder, batching.BatchingEncoder)
        else router.encoder
    )
    X = wrapped.encode(texts)
    assert X.shape == (n, router.encoder.dim)
    assert [d.model for d in plain] == [router.route(t).model for t in texts]
