"""The synchronous SDK's event loop (router/serving/background.py)."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from router.serving.background import iterate, run_sync

caller = contextvars.ContextVar("caller", default=None)


def test_a_coroutine_runs_on_one_background_thread_and_returns_its_result():
    async def where():
        await asyncio.sleep(0)
        return threading.current_thread()

    first, second = run_sync(where()), run_sync(where())
    assert first is second and first is not threading.current_thread()


def test_the_callers_context_goes_with_the_coroutine():
    """The current OpenTelemetry span is a context variable: `chat()`'s spans nest in the
    caller's trace only if the context travels."""

    async def seen():
        return caller.get()

    token = caller.set("the caller's span")
    try:
        assert run_sync(seen()) == "the caller's span"
    finally:
        caller.reset(token)


def test_an_exception_reaches_the_caller():
    async def fails():
        raise ValueError("from the loop")

    with pytest.raises(ValueError, match="from the loop"):
        run_sync(fails())


def test_a_call_from_the_background_loop_itself_is_refused_not_a_deadlock():
    async def inner():
        return 1

    async def nested():
        return run_sync(inner())

    with pytest.raises(RuntimeError, match="own event loop"):
        run_sync(nested())


def test_an_async_iterator_is_read_in_order_and_closed_when_left():
    closed = threading.Event()

    async def numbers():
        try:
            for i in range(10):
                yield i
        finally:
            closed.set()

    assert list(iterate(numbers())) == list(range(10))
    assert closed.is_set()

    closed.clear()
    chunks = iterate(numbers())
    for i in chunks:
        if i == 2:
            break
    chunks.close()
    assert closed.is_set()  # the source was closed on the loop, not left to the collector


def test_a_stream_closed_on_the_loops_own_thread_is_closed_there_without_waiting():
    """A garbage collection can run on any thread, the loop's too: closing there must neither
    deadlock nor raise, and the source still closes."""
    closed = threading.Event()

    async def numbers():
        try:
            yield 1
            yield 2
        finally:
            closed.set()

    chunks = iterate(numbers())
    assert next(chunks) == 1

    async def close_here():
        chunks.close()

    run_sync(close_here())
    assert closed.wait(5)


def test_an_sdk_stream_closed_on_the_loops_own_thread_closes_without_waiting():
    from router.sdk.streams import AsyncRoutedStream, RoutedStream

    closed = threading.Event()

    class Source:
        def __aiter__(self):
            return self

        async def __anext__(self):
            return "two"

        async def aclose(self):
            closed.set()

    stream = RoutedStream(AsyncRoutedStream(None, "one", Source()))
    chunks = iter(stream)
    assert next(chunks) == "one"

    async def close_here():
        stream.close()

    run_sync(close_here())
    assert closed.wait(5)


def _in_child(out) -> None:
    async def answer():
        return "the child's own loop"

    out.put(run_sync(answer()))


def test_a_forked_child_runs_its_own_loop_instead_of_waiting_for_the_parents():
    import multiprocessing

    async def warm():
        return 1

    run_sync(warm())  # the parent's loop thread exists; a forked child has no copy of it
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_in_child, args=(out,))
    child.start()
    try:
        assert out.get(timeout=20) == "the child's own loop"
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
