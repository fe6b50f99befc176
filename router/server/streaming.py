"""Server-sent events for a streamed answer: chat's chunks ending with `data: [DONE]`, and the
Messages and Responses APIs' typed events, written by their stream writers.

A failure after the first chunk cannot fall back (part of the answer is out): the stream then
ends with an error event instead of its normal end, so no client mistakes a cut answer for a
complete one. However a stream ends, its request is recorded once, before its last event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from router.sdk.streams import stream_failure_status
from router.server.accounting import usage_of
from router.server.errors import error_body, upstream_error_line
from router.server.translate.common import sse_events
from router.serving.closing import aclose

DONE = b"data: [DONE]\n\n"


def event(data: str | bytes) -> bytes:
    return b"data: " + (data.encode() if isinstance(data, str) else data) + b"\n\n"


def _once(
    on_end: Callable[[int, tuple[int, int] | None, str | None], None],
) -> Callable[[int, tuple[int, int] | None, str | None], None]:
    """`on_end` that runs the first time only: a stream's end is the first one it reaches."""
    ended = False

    def end(status: int, usage: tuple[int, int] | None, error: str | None) -> None:
        nonlocal ended
        if not ended:
            ended = True
            on_end(status, usage, error)

    return end


def stream_failure(e: BaseException, redact: Callable[[str], str]) -> tuple[int, str]:
    """A mid-stream failure's status (504 for a timeout, else 502: the SDK's own rule, so its
    raised error and its decision-log row say the same) and its error line."""
    return stream_failure_status(e), upstream_error_line(e, redact)


def chunk_json(chunk: Any) -> str:
    """A chat chunk as JSON without litellm's empty fields, but with each choice's
    `finish_reason`, which OpenAI's chunks always carry (null until the last): clients test
    `finish_reason !== null` to see a choice end."""
    data = chunk.model_dump(mode="json", exclude_none=True)
    for choice in data.get("choices") or ():
        choice.setdefault("finish_reason", None)
    return json.dumps(data, ensure_ascii=False)


async def sse(
    chunks: AsyncIterator[Any],
    model: str,
    on_end: Callable[[int, tuple[int, int] | None, str | None], None],
    redact: Callable[[str], str],
) -> AsyncIterator[bytes]:
    """Chunks → SSE bytes; `on_end(status, usage, error)` runs once however the stream ends.

    It runs before the last event is sent, so whoever reads `[DONE]` finds the request recorded.
    """
    usage = None
    once = _once(on_end)

    def end(status: int, error: str | None) -> None:
        once(status, usage, error)

    try:
        async for chunk in chunks:
            chunk.model = model  # the catalogue name, not the provider's
            usage = usage_of(chunk) or usage
            yield event(chunk_json(chunk))
        usage = usage or usage_of(chunks)  # a routed stream counts the usage it did not pass on
        end(200, None)
        yield DONE
    except asyncio.CancelledError:
        end(499, "client disconnected")
        raise
    except Exception as e:  # noqa: BLE001 - any mid-stream failure becomes an error event
        status, error = stream_failure(e, redact)
        end(status, error)
        body = error_body(status, f"upstream stream failed mid-way: {error}", None, "stream_error")
        yield event(json.dumps(body))
    finally:
        end(499, "stream closed early")  # e.g. the client went away between two chunks
        await aclose(chunks)  # its upstream's connection: a model stops for nobody else


class EventWriter(Protocol):
    """A Messages or Responses stream writer: chat chunks in, the API's events out."""

    usage: tuple[int, int] | None

    def start(self) -> list[dict]: ...
    def feed(self, chunk: Any) -> list[dict]: ...
    def finish_events(self) -> list[dict]: ...
    def fail_events(self, message: str, status: int) -> list[dict]: ...


async def typed_sse(
    chunks: AsyncIterator[Any],
    writer: EventWriter,
    on_end: Callable[[int, tuple[int, int] | None, str | None], None],
    redact: Callable[[str], str],
    before_end: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[bytes]:
    """Chunks → the writer's typed events as SSE frames; `on_end(status, usage, error)` as in
    `sse`. `before_end` runs once the answer is whole, before the request is recorded (the
    Responses API stores the response there)."""
    on_end = _once(on_end)
    try:
        for frame in sse_events(writer.start()):
            yield frame
        async for chunk in chunks:
            for frame in sse_events(writer.feed(chunk)):
                yield frame
        closing = writer.finish_events()
        if before_end is not None:
            await before_end()
        on_end(200, writer.usage, None)
        for frame in sse_events(closing):
            yield frame
    except asyncio.CancelledError:
        on_end(499, writer.usage, "client disconnected")
        raise
    except Exception as e:  # noqa: BLE001 - a mid-stream failure becomes error events
        status, error = stream_failure(e, redact)
        on_end(status, writer.usage, error)
        for frame in sse_events(writer.fail_events(f"upstream stream failed: {error}", status)):
            yield frame
    finally:
        on_end(499, writer.usage, "stream closed early")
        await aclose(chunks)


def event_stream(
    body: AsyncIterator[bytes],
    on_end: Callable[[int, tuple[int, int] | None, str | None], None],
    headers: dict[str, str],
) -> EndingStreamingResponse:
    """The streamed answer's response: no caching or proxy buffering, and `on_end` called
    even when the client leaves before the body starts."""
    headers.update({"cache-control": "no-cache", "x-accel-buffering": "no"})
    return EndingStreamingResponse(
        body,
        lambda: on_end(499, None, "client left before the stream started"),
        media_type="text/event-stream",
        headers=headers,
    )


class EndingStreamingResponse(StreamingResponse):
    """A StreamingResponse that calls `on_exit()` however it ends, even when the body was
    never started (the client left before the headers went out): the request's row is
    then still written. `on_exit` must be idempotent (the body's own end usually came first).
    """

    def __init__(self, content: Any, on_exit: Callable[[], None], **kw: Any) -> None:
        super().__init__(content, **kw)
        self.on_exit = on_exit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_exit()
            await aclose(self.body_iterator)  # left mid-way when the client went between chunks
