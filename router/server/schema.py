"""The chat request body: read with a size limit, parse, check the fields the proxy relies on.

Only the common OpenAI fields are type-checked (strictly: "3" is not a number, 1 is not true);
any other field is kept and passed on to the provider untouched (providers add their own, and
OpenAI adds new ones often). Every value is still checked for NUL, invalid Unicode and depth
(`validate.py`): a bad body is a 4xx naming the field, never a 5xx.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

from router.core.request import RequestError, check_response_format, check_tools
from router.server import validate
from router.server.errors import APIError


class ChatRequest(BaseModel):
    """POST /v1/chat/completions; extra fields are allowed and forwarded."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1, max_length=256)
    messages: list[Any]
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    # OpenAI's metadata: string keys and values (litellm reads it too, and fails on others)
    metadata: dict[str, str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None

    def params(self) -> dict[str, Any]:
        """Everything but model and messages, as the client sent it (unset fields left out)."""
        out = self.model_dump(exclude_unset=True)
        out.pop("model", None)
        out.pop("messages", None)
        return out


def check_content_type(request: Request) -> None:
    """A body must be sent as JSON; no header at all is tolerated (some clients omit it)."""
    ctype = request.headers.get("content-type")
    if ctype is None:
        return
    media = ctype.split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise APIError(
            415,
            f"content-type: expected application/json, got {media[:100]!r}",
            "content-type",
            "unsupported_media_type",
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes (413) before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(
            413, f"request body over the limit of {limit} bytes", None, "request_too_large"
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(
                413, f"request body over the limit of {limit} bytes", None, "request_too_large"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _loc(loc: tuple) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _in_body(data: Any, loc: tuple) -> tuple:
    """The part of a pydantic error location that exists in the body: union members add
    tags such as 'str' or 'list[str]' that name no field."""
    out: list = []
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        elif not out:
            out.append(part)  # a missing top-level field: name it
            break
        else:
            break
        out.append(part)
    return tuple(out)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def loads(raw: bytes) -> Any:
    """Standard JSON only: no NaN / Infinity, no number that overflows; a 400 otherwise."""
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise APIError(400, "request body is nested too deeply", None, "invalid_json") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        # ValueError also covers an integer with more digits than Python converts.
        msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise APIError(
            400, f"request body is not valid JSON: {msg}", None, "invalid_json"
        ) from None


def parse_chat(raw: bytes, audio_ok: bool = False) -> ChatRequest:
    """JSON → ChatRequest, fully checked; a 400 naming the field otherwise."""
    data = loads(raw)
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object", None, "invalid_request")
    try:
        validate.check_values(data)
        validate.check_passed_fields(data)
        validate.check_router_arguments(data)
        req = ChatRequest.model_validate(data)
    except RequestError as e:
        raise APIError(400, str(e), e.param, "invalid_request") from None
    except ValidationError as e:
        err = e.errors()[0]
        field = _loc(_in_body(data, err["loc"]))
        raise APIError(400, f"{field}: {err['msg']}", field, "invalid_request") from None
    try:
        validate.check_messages(req.messages, audio_ok)
        check_tools(req.tools, req.tool_choice)
        check_response_format(req.response_format)
    except RequestError as e:
        msg = str(e) if e.param and str(e).startswith(e.param) else f"{e.param}: {e}"
        raise APIError(400, msg, e.param, "invalid_request") from None
    req.messages = _blank_results_said(req.messages)
    return req


def _blank_results_said(messages: list[Any]) -> list[Any]:
    """The messages, each blank tool result sent as "(empty)": OpenAI takes an empty result,
    chat upstreams that refuse empty content would fail the call (the Responses and Messages
    endpoints send theirs the same way)."""

    def blank_result(m: Any) -> bool:
        content = m.get("content")
        return m.get("role") == "tool" and isinstance(content, str) and not content.strip()

    return [
        {**m, "content": validate.EMPTY_TOOL_RESULT} if blank_result(m) else m for m in messages
    ]


_TEXT = {"type": "string", "minLength": 1, "pattern": "\\S"}
_PART = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": _TEXT},
}
_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]},
        "content": {"anyOf": [_TEXT, {"type": "array", "items": _PART, "minItems": 1}]},
        "name": {"type": "string"},
    },
}
_SCHEMA = {"type": "object"}  # any JSON schema object (checked structurally)
_TOOL = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                "description": {"type": "string"},
                "parameters": _SCHEMA,
            },
        },
    },
}
_DOCUMENTED = {
    "messages": {"type": "array", "items": _MESSAGE, "minItems": 1},
    "tools": {"anyOf": [{"type": "array", "items": _TOOL}, {"type": "null"}]},
    "tool_choice": {"anyOf": [{"enum": ["none", "auto", "required"]}, {"type": "null"}]},
    "response_format": {
        "anyOf": [
            {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": ["text", "json_object"]}},
            },
            {"type": "null"},
        ]
    },
}


def openapi_body() -> dict:
    """The chat body for the OpenAPI schema (documentation and fuzzing; not used to parse).

    Fields the proxy checks beyond their type (messages, tools ...) are described in full, so
    a schema-valid body is one the proxy takes; other fields pass through to the provider.
    """
    schema = ChatRequest.model_json_schema()
    schema["properties"].update(_DOCUMENTED)
    schema["properties"]["model"]["examples"] = ["router", "router/balanced"]
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
