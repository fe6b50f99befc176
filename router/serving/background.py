"""The event loop behind the synchronous SDK: `Router.chat` is `Router.achat` run here.

The router's calling code is written once, for asyncio. Synchronous callers hand each
coroutine to one long-lived loop in a daemon thread (`run_sync`) and wait for its result, as
Playwright's and asgiref's synchronous faces do. The caller's context variables (the current
OpenTelemetry span) go with the coroutine: `asyncio.run_coroutine_threadsafe` schedules it
in a copy of the calling thread's context.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

from router.serving.closing import aclose

T = TypeVar("T")
# How long, at interpreter exit, the loop may take to close what it holds open (pooled
# upstream sessions, unfinished streams).
SHUTDOWN_S = 5.0

_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(target=_loop.run_forever, name="router-sync", daemon=True)
            _thread.start()
            atexit.register(_shutdown)
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the background loop and wait for its result (or its exception). An
    interrupted caller (KeyboardInterrupt) cancels it."""
    loop = _background_loop()
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError("a synchronous router call from the router's own event loop: await it")
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result()
    except BaseException:
        future.cancel()  # a no-op once it is done
        raise


_END = object()


async def _next(chunks: AsyncIterator) -> Any:
    try:
        return await chunks.__anext__()
    except StopAsyncIteration:
        return _END


def iterate(chunks: AsyncIterator) -> Iterator:
    """An async iterator read from synchronous code, one `run_sync` per item; closing the
    iterator (or leaving a `for` loop over it) closes `chunks`."""
    try:
        while (item := run_sync(_next(chunks))) is not _END:
            yield item
    finally:
        close_soon(aclose(chunks))


def close_soon(coro: Coroutine[Any, Any, None]) -> None:
    """Run a closing coroutine: waited for, except on the loop's own thread (where a garbage
    collection may close a stream), where waiting would never end, so it is scheduled."""
    if threading.current_thread() is _thread:
        _background_loop().create_task(coro)
    else:
        run_sync(coro)


def _forget_in_child() -> None:
    """A forked child has no copy of the loop's thread: it starts its own on first use, where
    it would otherwise wait for ever on a loop nobody runs."""
    global _loop, _thread, _lock
    _loop, _thread, _lock = None, None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def _shutdown() -> None:
    """At exit: close the loop's async generators (the pooled upstream sessions close with
    theirs, router/serving/upstream.py), so nothing warns of an unclosed session."""
    loop = _loop
    if loop is None or loop.is_closed():
        return
    future = asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop)
    try:
        future.result(SHUTDOWN_S)
    except (concurrent.futures.TimeoutError, RuntimeError):
        pass  # exit anyway: the daemon thread goes with the process
