"""POST /v1/messages: Anthropic's Messages API, routed like chat to any catalogue model.

An Anthropic client (base URL: the proxy's root, key in `x-api-key`) sends its usual body; it is
checked (errors name the field in Anthropic's path style, `messages.1.content.0.tool_use_id`),
turned into a chat request by litellm's Anthropic adapter, routed by `Router.achat` with the
same receipts and sessions as chat, and answered as an Anthropic Message, or with
`stream: true` as Anthropic's events (message_start, content_block_start,
content_block_delta, content_block_stop, message_delta, message_stop). Every error on this
path, auth and unknown model included, has Anthropic's shape:
`{"type": "error", "error": {"type": ..., "message": ...}}`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from router.core.request import CONTEXT_LENGTH_EXCEEDED, RequestError, estimate_tokens
from router.server.auth import Principal
from router.server.chat import ChatService
from router.server.endpoint import bad_request, read_json, record_for
from router.server.streaming import event_stream, typed_sse
from router.server.targets import resolve
from router.server.translate.common import Reply, new_id, nullable
from router.server.translate.messages import (
    MESSAGES_IGNORED,
    MessagesStream,
    chat_to_message,
    messages_to_chat,
    parse_messages,
)
from router.serving.providers import MODEL_UNAVAILABLE

# HTTP status → Anthropic error type.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_body(status: int, message: str, param: str | None, code: str | None) -> dict:
    """Anthropic's error object; the message starts with the field it is about, in Anthropic's
    dotted path style."""
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    if code == MODEL_UNAVAILABLE:
        kind = "api_error"  # the router's configuration, not load worth waiting out
    if code == CONTEXT_LENGTH_EXCEEDED:
        # Anthropic's words for it, which Claude clients look for before they compact.
        message = f"prompt is too long: {message}"
    if param and "[" in param:
        dotted = param.replace("][", ".").replace("[", ".").replace("]", "")
        message = message.replace(param, dotted, 1)
    return {"type": "error", "error": {"type": kind, "message": message}}


def _param(param: str | None) -> str | None:
    """A chat field named by routing, in Messages API terms (`messages[3]` → `messages`)."""
    if param and param.startswith("messages"):
        return "messages"
    if param and param.startswith("response_format"):
        return None
    return param


class MessagesService:
    def __init__(self, svc: ChatService) -> None:
        self.svc = svc

    async def count_tokens(self, request: Request, principal: Principal) -> Response:
        """POST /v1/messages/count_tokens: the router's own estimate of the prompt's tokens (4
        characters a token, as routing estimates them), for agents that size their context
        with it. The body is a Messages body without `max_tokens`; nothing is routed."""
        data = await read_json(self.svc, request)
        if isinstance(data, dict) and data.get("max_tokens") is None:
            data = {**data, "max_tokens": 1}
        try:
            body = parse_messages(data)
        except RequestError as e:
            raise bad_request(e) from None
        resolve(self.svc.router, principal, body.model)
        call = messages_to_chat(body, data)
        tools = json.dumps(call.params.get("tools") or [], ensure_ascii=False)
        tokens = estimate_tokens(call.messages) + (
            len(tools) // 4 if call.params.get("tools") else 0
        )
        return JSONResponse({"input_tokens": tokens})

    async def create(self, request: Request, principal: Principal) -> Response:
        svc = self.svc
        t0 = time.perf_counter()
        data = await read_json(svc, request)
        try:
            body = parse_messages(data)
        except RequestError as e:
            raise bad_request(e) from None
        target = resolve(svc.router, principal, body.model)
        try:
            call = messages_to_chat(body, data)
        except RequestError as e:
            raise bad_request(e) from None
        stream = bool(body.stream)
        record = record_for(svc, request, principal, body.model, call.messages, stream, t0)
        result = await svc.call_router(record, target, call.messages, call.params, _param)
        decision = result.decision
        mid = new_id("msg")
        headers = svc.headers(decision, request.state.request_id, _ms(t0))
        if not stream:
            reply = Reply.of(result)
            record.end(200, decision, reply.usage, None)
            await record.durable()  # the whole row, before the first byte
            out = chat_to_message(mid, decision.model, reply)
            return JSONResponse(out, headers=headers)

        writer = MessagesStream(mid, decision.model)
        on_end = record.stream_end(decision)
        await record.begin(decision)  # the write-ahead row, before the first byte
        return event_stream(typed_sse(result, writer, on_end, svc.redact), on_end, headers)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


# ---- OpenAPI documentation of the body (for docs and schema fuzzing; not used to parse) ------
# Exactly as permissive as parse_messages where fuzzing can reach: a body this schema refuses,
# the endpoint refuses too (schemathesis checks both ways).

_TEXT = {"type": "string", "minLength": 1, "pattern": "\\S"}
_TEXT_BLOCK = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
}
_USER = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"const": "user"},
        "content": {"anyOf": [_TEXT, {"type": "array", "items": _TEXT_BLOCK, "minItems": 1}]},
    },
    "additionalProperties": False,
}
_TOOL = {
    "type": "object",
    "required": ["name", "input_schema"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        "description": {"type": "string"},
        "input_schema": {"type": "object"},
    },
}


def openapi_messages() -> dict[str, Any]:
    props: dict[str, Any] = {
        "system": {"anyOf": [{"type": "string"}, {"type": "array", "items": _TEXT_BLOCK}]},
        "stop_sequences": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "stream": {"type": "boolean"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "top_k": {"type": "integer", "minimum": 0},
        "tools": {"type": "array", "items": _TOOL},
        "metadata": {"type": "object", "properties": {"user_id": {"type": "string"}}},
        "service_tier": {"type": "string"},
        "tool_choice": {"type": "object"},
        "output_config": {"type": "object"},
        "mcp_servers": {"type": "array", "maxItems": 0},
        **{k: {} for k in MESSAGES_IGNORED if k != "thinking"},
        "thinking": {"type": "object"},
    }
    schema = {
        "type": "object",
        "required": ["model", "max_tokens", "messages"],
        "properties": {
            "model": {"type": "string", "minLength": 1, "maxLength": 256, "examples": ["router"]},
            "max_tokens": {"type": "integer", "minimum": 1},
            "messages": {"type": "array", "items": _USER, "minItems": 1},
            **{k: nullable(v) for k, v in props.items()},
        },
        "additionalProperties": False,
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def openapi_count_tokens() -> dict[str, Any]:
    """The Messages body without `max_tokens` (it is not needed to count)."""
    body = openapi_messages()
    schema = body["requestBody"]["content"]["application/json"]["schema"]
    schema["required"] = ["model", "messages"]
    schema["properties"]["max_tokens"] = nullable(schema["properties"]["max_tokens"])
    return body
