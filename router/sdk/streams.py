"""Streamed answers of the SDK: chunks that carry the Decision of the model streaming them."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

from router.core.decision import Decision
from router.serving.background import close_soon, iterate
from router.serving.closing import aclose, closes
from router.serving.providers import is_timeout


def stream_failure_status(e: BaseException) -> int:
    """The HTTP status of a stream that failed after its first chunk (no fallback is possible
    then): 504 for a time-out, else 502. The proxy's error event and every decision-log row
    (the SDK's and the proxy's) say this status; the SDK's raised error carries it."""
    return 504 if is_timeout(e) else 502


def carries_nothing(chunk: Any) -> bool:
    """No role, content or tool call in any choice of this stream chunk."""
    for c in getattr(chunk, "choices", None) or []:
        d = getattr(c, "delta", None)
        if d is not None and (
            getattr(d, "role", None)
            or getattr(d, "content", None)
            or getattr(d, "tool_calls", None)
            or getattr(d, "function_call", None)
        ):
            return False
    return True


@closes("rest")
async def prepend(first: Any, rest: AsyncIterator) -> AsyncIterator:
    yield first
    async for chunk in rest:
        yield chunk


def ask_usage(params: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The stream's parameters asking the upstream for its token usage (what its cost is
    counted from), and whether the caller asked for it (else the usage chunk is not passed on)."""
    options = params.get("stream_options") or {}
    asked = bool(options.get("include_usage"))
    return {**params, "stream_options": {**options, "include_usage": True}}, asked


def _usage_only(chunk: Any) -> bool:
    return not getattr(chunk, "choices", None) and getattr(chunk, "usage", None) is not None


class AsyncRoutedStream:
    """Chunks of a streamed answer, with the Decision of the model that is streaming.

    `usage` is the last token usage a chunk reported; with `hide_usage` the usage-only chunk
    (asked of the upstream for the cost, not by the caller) is counted, not passed on. Read by
    `async for` (leaving the loop closes the stream), `await anext(stream)` or both, as
    openai's AsyncStream is; `async with stream:` closes it at the end of the block. A stream
    is read once: a loop after its end, or after a close, gets nothing.
    """

    def __init__(
        self, decision: Decision, first: Any, rest: AsyncIterator, hide_usage: bool = False
    ) -> None:
        self.decision = decision
        self._first, self._rest = first, rest
        self._hide_usage = hide_usage
        self._first_taken = False
        self._closed = False
        self.usage: Any = None
        # A stream dropped unclosed closes its source on its loop: the model stops generating.
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # made outside a loop: closed by whoever reads or closes it
            loop = None
        self._left = weakref.finalize(self, _close_left, loop, rest)
        self._left.atexit = False

    async def __aiter__(self):
        # A generator per loop, reading where the stream is (after an `anext`, say): a loop
        # left early drops it, and its `finally` closes the stream (the model stops).
        try:
            while True:
                try:
                    chunk = await self._next()
                except StopAsyncIteration:
                    return
                yield chunk
        finally:
            await self.aclose()

    async def __anext__(self) -> Any:
        try:
            return await self._next()
        except BaseException:  # its end, a failure or a cancellation: the stream is done
            await self.aclose()
            raise

    async def _next(self) -> Any:
        """The next chunk the caller sees; a failure is raised as it came (litellm's Timeout,
        MidStreamFallbackError ...), with the status the proxy answers for it and the decision
        of the model that streamed."""
        while not self._closed:
            try:
                if self._first_taken:
                    chunk = await self._rest.__anext__()
                else:
                    chunk, self._first_taken = self._first, True
            except StopAsyncIteration:
                raise  # the end, not a failure
            except Exception as e:
                _annotate(e, stream_failure_status(e), self.decision)
                raise
            self.usage = getattr(chunk, "usage", None) or self.usage
            if not (self._hide_usage and _usage_only(chunk)):
                return chunk
        raise StopAsyncIteration

    async def __aenter__(self) -> AsyncRoutedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop reading: the model's connection is closed (a local model stops generating)."""
        self._closed = True
        self._left.detach()
        await aclose(self._rest)


def _annotate(e: Exception, status: int, decision: Decision) -> None:
    for name, value in (("status_code", status), ("decision", decision)):
        try:
            setattr(e, name, value)
        except (AttributeError, TypeError):  # an exception that takes no attributes
            pass


_closing: set[asyncio.Task] = set()  # the closes under way (a loop keeps weak task refs)


def _close_left(loop: asyncio.AbstractEventLoop | None, rest: AsyncIterator) -> None:
    """Close the source of a stream dropped unclosed, on the loop it was opened on."""
    if loop is None:
        return

    def start() -> None:
        task = loop.create_task(aclose(rest))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError:
        pass  # the loop is closed, and its connections with it


class RoutedStream:
    """`AsyncRoutedStream` for synchronous code: its chunks are read on the SDK's background
    event loop (router/serving/background.py). Read by `for` (leaving the loop closes it),
    `next(stream)` or both; `with stream:` closes it at the end of the block."""

    def __init__(self, stream: AsyncRoutedStream) -> None:
        self.decision = stream.decision
        self._stream = stream
        self._chunks = iterate(stream.__aiter__())

    @property
    def usage(self) -> Any:
        return self._stream.usage

    def __iter__(self) -> Iterator:
        try:
            yield from self._chunks
        finally:
            self.close()  # a `break` ends the loop's generator: the model's connection goes too

    def __next__(self) -> Any:
        """`next(stream)`, as openai's Stream takes it; a `for` loop after it reads on."""
        return next(self._chunks)

    def __enter__(self) -> RoutedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading: the model's connection is closed (a local model stops generating)."""
        self._chunks.close()
        close_soon(self._stream.aclose())
