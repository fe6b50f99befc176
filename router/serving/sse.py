"""A chat completion stream's server-sent events → the chunks litellm would yield (sans-I/O).

`ChunkDecoder` is fed the body's lines by whichever transport reads them (the direct path's
sync httpx stream or its async aiohttp stream) and hands back `ModelResponseStream` chunks
shaped as litellm's stream wrapper shapes them for an `openai/` model: the first chunk's delta
carries `role: assistant`, a stream that ends without a finish reason gets one made-up
`stop` chunk, `[DONE]` ends the stream, and an `{"error": ...}` event is raised as the openai
SDK raises it (tests/test_upstream.py compares both paths chunk by chunk).
"""

from __future__ import annotations

import json
from typing import Any

DONE = object()  # `[DONE]`: the stream is over


class StreamError(Exception):
    """An `{"error": ...}` event inside a stream (the upstream gave up after the headers)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        super().__init__(str(body.get("message") or body))


class ChunkDecoder:
    """Feed `line(raw)` each line of the body; it returns a chunk, `DONE` or None."""

    def __init__(self, model: str | None = None) -> None:
        self._data: list[str] = []
        self.chunks = 0  # chunks handed out
        self.finished = False  # a chunk carried a finish reason
        self.text = ""  # the content so far (a mid-stream error reports it)
        self.tool_calls = False  # a chunk carried tool calls (no plain continuation possible)
        self._id: str | None = None
        self._model = model  # the requested name until a chunk names its model
        self._created: int | None = None

    def line(self, raw: bytes | str) -> Any:
        """One line of the body, without its line break."""
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        text = text.rstrip("\r\n")
        if not text:  # a blank line ends an event
            return self._dispatch()
        if text.startswith(":"):  # a comment (keep-alive)
            return None
        field, _, value = text.partition(":")
        if field == "data":
            self._data.append(value.removeprefix(" "))
        return None

    def end(self) -> Any:
        """The body ended: the last event (if unterminated), else the made-up finish chunk."""
        out = self._dispatch()
        if out is not None and out is not DONE:
            return out
        return self._closing_chunk()

    def closing(self) -> Any:
        """After `DONE`: the made-up finish chunk when no chunk carried a finish reason."""
        return self._closing_chunk()

    # ---- internals --------------------------------------------------------------------------

    def _dispatch(self) -> Any:
        if not self._data:
            return None
        data, self._data = "\n".join(self._data), []
        if data.startswith("[DONE]"):
            return DONE
        obj = json.loads(data)  # not JSON: raised, and mapped as litellm maps it
        if isinstance(obj, dict) and obj.get("error"):
            err = obj["error"]
            raise StreamError(err if isinstance(err, dict) else {"message": str(err)})
        return self._chunk(obj)

    def _chunk(self, obj: dict[str, Any]) -> Any:
        from litellm.types.utils import ModelResponseStream

        self._id = obj.get("id") or self._id
        self._model = obj.get("model") or self._model
        self._created = obj.get("created") or self._created
        choices = obj.get("choices") or []
        for c in choices:
            delta = c.get("delta")
            if delta is None:
                c["delta"] = delta = {}
            if self.chunks == 0 and not delta.get("role"):
                delta["role"] = "assistant"  # as litellm marks the first chunk
            if delta.get("content"):
                self.text += delta["content"]
            if delta.get("tool_calls") or delta.get("function_call"):
                self.tool_calls = True
            if c.get("finish_reason"):
                self.finished = True
        if isinstance(obj.get("usage"), dict):
            obj["usage"] = _usage(obj["usage"])
        self.chunks += 1
        return ModelResponseStream(**obj)

    def _closing_chunk(self) -> Any:
        if self.finished:
            return None
        from litellm.types.utils import ModelResponseStream

        self.finished = True
        chunk = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        if self._id:
            chunk["id"] = self._id
        if self._model:
            chunk["model"] = self._model
        if self._created:
            chunk["created"] = self._created
        self.chunks += 1
        return ModelResponseStream(**chunk)


def _usage(raw: dict[str, Any]) -> Any:
    """A stream's usage as litellm's stream wrapper reports it: with the completion tokens
    split into reasoning (none unless the upstream says) and text tokens."""
    from litellm.types.utils import CompletionTokensDetailsWrapper, Usage

    usage = Usage(**raw)
    completion = usage.completion_tokens or 0
    details = usage.completion_tokens_details
    if details is None:
        usage.completion_tokens_details = CompletionTokensDetailsWrapper(
            reasoning_tokens=0, text_tokens=completion
        )
    elif details.reasoning_tokens is None:
        details.reasoning_tokens = 0
        if details.text_tokens is None:
            details.text_tokens = completion
    return usage
