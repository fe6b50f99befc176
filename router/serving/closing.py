"""Closing a stream's source when whoever reads the stream stops early.

A stream is layers of generators (sessions, cache, decision log, receipts) over an upstream
connection. A generator that reads another does not close it when it is itself closed, and one
closed before its first chunk never runs at all, so the connection at the bottom stayed open
until garbage collection reached it. A local model generates until its client goes, so an
answer nobody read held up the next request for as long as the whole answer took (18 s
measured through the proxy). Each layer is therefore made by `closes(...)`: closing the layer
closes its source, started or not, all the way down.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any


async def aclose(source: Any) -> None:
    """Close `source` if it can be closed (these layers, upstream streams, litellm's)."""
    close = getattr(source, "aclose", None)
    if close is not None:
        await close()


class ClosingStream:
    """An async generator's chunks; `aclose()` closes the generator, then its source."""

    def __init__(self, chunks: AsyncIterator, source: Any) -> None:
        self._chunks, self._source = chunks, source

    def __aiter__(self) -> ClosingStream:
        return self

    async def __anext__(self) -> Any:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        try:
            await aclose(self._chunks)
        finally:
            await aclose(self._source)


def closes(source: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make an async generator function's streams close their argument `source` when closed
    (`ClosingStream`)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)
        if not inspect.isasyncgenfunction(fn):
            raise TypeError(f"closes: {fn.__qualname__} is not an async generator function")

        @functools.wraps(fn)
        def layer(*args: Any, **kw: Any) -> Any:
            return ClosingStream(fn(*args, **kw), signature.bind(*args, **kw).arguments[source])

        return layer

    return wrap
