"""Streamed answers of the SDK: chunks that carry the Decision of the model streaming them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from router.core.policy import Decision


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


async def prepend(first: Any, rest: AsyncIterator) -> AsyncIterator:
    yield first
    async for chunk in rest:
        yield chunk


class RoutedStream:
    """Chunks of a streamed answer, with the Decision of the model that is streaming."""

    def __init__(self, decision: Decision, chunks: Iterator) -> None:
        self.decision = decision
        self._chunks = chunks

    def __iter__(self) -> Iterator:
        return self._chunks


class AsyncRoutedStream:
    """The async twin of `RoutedStream`."""

    def __init__(self, decision: Decision, first: Any, rest: AsyncIterator) -> None:
        self.decision = decision
        self._first, self._rest = first, rest

    async def __aiter__(self):
        yield self._first
        async for chunk in self._rest:
            yield chunk
