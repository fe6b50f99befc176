"""A streamed answer read as openai's Stream and AsyncStream are: `next(stream)` and
`await anext(stream)` (then a loop reads on), `with` / `async with` (the block's end closes it,
and the model stops generating), besides the `for` loops of test_sdk.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from router import Router
from tests.test_sdk import build_slow_router

WORDS = " ".join(["word"] * 20)  # 6 s of the slow model's stream: it is still going when left


@pytest.fixture(scope="module")
def slow_router(test_config, tmp_path_factory, upstream) -> Router:
    """The test config with `slow`, a model streaming one word every 0.3 s (policy `slow`)."""
    return build_slow_router(test_config, tmp_path_factory.mktemp("slow"), upstream)


def ended(upstream, text: str, limit: float = 4.0) -> str | None:
    """How the upstream's stream of `text` ended ("whole", or "abandoned" by a client that
    left), once it has; None if it still runs after `limit` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and text not in upstream.stream_ends:
        time.sleep(0.05)
    return upstream.stream_ends.get(text)


def text_of(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_next_then_a_loop_reads_the_whole_answer(router):
    """`next(stream)` was a TypeError ("'RoutedStream' object is not an iterator")."""
    stream = router.chat("Tell me a story about a fox", stream=True)
    first = next(stream)
    assert text_of([first]) + text_of(stream) == "echo: Tell me a story about a fox"
    with pytest.raises(StopIteration):
        next(stream)  # read once


def test_a_with_block_closes_the_stream_at_its_end(slow_router, upstream):
    """`with client.chat.completions.create(..., stream=True) as stream:` is how openai's
    documentation reads a stream: it was a TypeError (no context manager)."""
    with slow_router.chat("with " + WORDS, policy="slow", stream=True) as stream:
        assert text_of([next(stream)])
    assert ended(upstream, "echo: with " + WORDS) == "abandoned"
    assert list(stream) == []


async def test_anext_then_an_async_loop_reads_the_whole_answer(router):
    """`await anext(stream)` was a TypeError ("not an async iterator")."""
    stream = await router.achat("Tell me a story about an owl", stream=True)
    first = await anext(stream)
    rest = [c async for c in stream]
    assert text_of([first, *rest]) == "echo: Tell me a story about an owl"
    assert [c async for c in stream] == []  # read once
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_an_async_with_block_closes_the_stream_at_its_end(slow_router, upstream):
    async with await slow_router.achat("awith " + WORDS, policy="slow", stream=True) as stream:
        assert text_of([await anext(stream)])
    assert await asyncio.to_thread(ended, upstream, "echo: awith " + WORDS) == "abandoned"


async def test_leaving_an_async_loop_closes_the_stream_its_caller_still_holds(
    slow_router, upstream
):
    """The loop's own generator closes the stream when the loop is left, as before `anext`
    was taken: the caller keeping the stream does not keep the model generating."""
    stream = await slow_router.achat("break " + WORDS, policy="slow", stream=True)
    async for _ in stream:
        break
    assert await asyncio.to_thread(ended, upstream, "echo: break " + WORDS) == "abandoned"
    assert stream.decision.model == "slow"
