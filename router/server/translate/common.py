"""What both translations share: the chat call they produce, body validation with
field paths in each API's own style, the chat reply accumulated from a stream, SSE frames."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from router.core.request import Message, RequestError
from router.server import validate

# ---- shared -------------------------------------------------------------------------------


@dataclass
class ChatCall:
    """A chat request made from another API's body: messages and SDK keyword arguments."""

    messages: list[Message]
    params: dict[str, Any]
    new_messages: int = 0  # how many of the last messages this request added (the rest: history)


def field_error(message: str, param: str) -> RequestError:
    return RequestError(f"{param}: {message}", param)


def openai_path(loc: tuple) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def anthropic_path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def _in_body(data: Any, loc: tuple) -> tuple:
    """The part of a pydantic error location that exists in the body (union tags dropped)."""
    out: list = []
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        elif not out:
            out.append(part)
            break
        else:
            break
        out.append(part)
    return tuple(out)


def validated(model: type[BaseModel], data: Any, style) -> Any:
    if not isinstance(data, dict):
        raise RequestError("request body must be a JSON object", None)
    try:
        validate.check_values(data)
    except RequestError as e:
        # check_values names fields OpenAI-style; re-spell them for Anthropic's API.
        if style is anthropic_path and e.param:
            param = e.param.replace("][", ".").replace("[", ".").replace("]", "")
            raise field_error(str(e).split(": ", 1)[-1], param) from None
        raise
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        param = style(_in_body(data, err["loc"])) or None
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown parameter (not part of this API, or not supported by this router)"
        raise RequestError(f"{param}: {msg}" if param else msg, param) from None


def text_of(value: Any, param: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise field_error("must be a string", param)
    if not allow_empty and not value.strip():
        raise field_error("must not be empty", param)
    return value


def json_object_text(arguments: str) -> dict:
    """Tool-call arguments as an object (the Messages API's `input`); non-JSON kept as text."""
    try:
        value = json.loads(arguments) if arguments else {}
    except ValueError:
        return {"_arguments": arguments}
    return value if isinstance(value, dict) else {"_arguments": value}


def now_s() -> int:
    return int(time.time())


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


@dataclass
class Reply:
    """A chat answer reduced to what both APIs need: text, tool calls, finish reason, usage."""

    text: str = ""
    calls: list[dict] = field(default_factory=list)  # {"id", "name", "arguments"}
    finish: str | None = None
    usage: tuple[int, int] | None = None

    @classmethod
    def of(cls, response: Any) -> Reply:
        choices = _get(response, "choices") or []
        out = cls()
        if choices:
            msg = _get(choices[0], "message")
            out.text = _get(msg, "content") or ""
            out.finish = _get(choices[0], "finish_reason")
            for c in _get(msg, "tool_calls") or []:
                fn = _get(c, "function")
                out.calls.append(
                    {
                        "id": _get(c, "id") or new_id("call"),
                        "name": _get(fn, "name") or "",
                        "arguments": _get(fn, "arguments") or "",
                    }
                )
        usage = _get(response, "usage")
        if usage is not None:
            out.usage = (
                int(_get(usage, "prompt_tokens") or 0),
                int(_get(usage, "completion_tokens") or 0),
            )
        return out

    def message(self) -> Message:
        """The assistant chat message (what a later turn carries back)."""
        out: Message = {"role": "assistant", "content": self.text or None}
        if self.calls:
            out["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in self.calls
            ]
        return out


@dataclass
class StreamDelta:
    """One streamed chat chunk, reduced: text, tool-call pieces by index, finish, usage."""

    text: str = ""
    calls: list[tuple[int, str | None, str | None, str]] = field(default_factory=list)
    finish: str | None = None
    usage: tuple[int, int] | None = None

    @classmethod
    def of(cls, chunk: Any) -> StreamDelta:
        out = cls()
        usage = _get(chunk, "usage")
        if usage is not None and _get(usage, "completion_tokens") is not None:
            out.usage = (
                int(_get(usage, "prompt_tokens") or 0),
                int(_get(usage, "completion_tokens") or 0),
            )
        choices = _get(chunk, "choices") or []
        if not choices:
            return out
        out.finish = _get(choices[0], "finish_reason")
        d = _get(choices[0], "delta")
        if d is None:
            return out
        out.text = _get(d, "content") or ""
        for tc in _get(d, "tool_calls") or []:
            fn = _get(tc, "function")
            out.calls.append(
                (
                    _get(tc, "index") or 0,
                    _get(tc, "id"),
                    _get(fn, "name"),
                    _get(fn, "arguments") or "",
                )
            )
        return out


def sse_events(events: list[dict], named: bool = True) -> Iterator[bytes]:
    """Events as SSE frames, each with its `event:` line (both APIs name their events)."""
    for ev in events:
        data = json.dumps(ev, ensure_ascii=False, separators=(",", ":"))
        head = f"event: {ev['type']}\n" if named else ""
        yield f"{head}data: {data}\n\n".encode()


def nullable(schema: dict) -> dict:
    """An optional field's JSON schema: the parsers take null for "not given"."""
    return {"anyOf": [schema, {"type": "null"}]}
