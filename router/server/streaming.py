"""Server-sent events for a streamed answer, ending with `data: [DONE]`.

A failure after the first chunk cannot fall back (part of the answer is out): the stream then
ends with an OpenAI-style error event instead of `[DONE]`, so no client mistakes a cut answer
for a complete one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from router.server.accounting import usage_of
from router.server.errors import error_body

DONE = b"data: [DONE]\n\n"


def event(data: str | bytes) -> bytes:
    return b"data: " + (data.encode() if isinstance(data, str) else data) + b"\n\n"


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
    ended = False

    def end(status: int, error: str | None) -> None:
        nonlocal ended
        if not ended:
            ended = True
            on_end(status, usage, error)

    try:
        async for chunk in chunks:
            chunk.model = model  # the catalogue name, not the provider's
            usage = usage_of(chunk) or usage
            yield event(chunk.model_dump_json(exclude_none=True))
        usage = usage or usage_of(chunks)  # a routed stream counts the usage it did not pass on
        end(200, None)
        yield DONE
    except asyncio.CancelledError:
        end(499, "client disconnected")
        raise
    except Exception as e:  # noqa: BLE001 - any mid-stream failure becomes an error event
        status = 504 if "timeout" in type(e).__name__.lower() else 502
        error = redact(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300])
        end(status, error)
        body = error_body(status, f"upstream stream failed mid-way: {error}", None, "stream_error")
        yield event(json.dumps(body))
    finally:
        end(499, "stream closed early")  # e.g. the client went away between two chunks


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
