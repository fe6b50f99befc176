"""What the agent-facing endpoints share with chat: reading the body, the per-request record
(whose `ChatService.call_router` calls `Router.achat` with the chat endpoint's error handling),
and a body check's 400."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from router.core.request import Message, RequestError
from router.server.auth import Principal
from router.server.chat import ChatService, _Record
from router.server.errors import APIError
from router.server.schema import ChatRequest, check_content_type, loads, read_body


async def read_json(svc: ChatService, request: Request) -> Any:
    """The request body as JSON (content type, size limit and strict JSON checked)."""
    check_content_type(request)
    return loads(await read_body(request, svc.spec.max_body_bytes))


def record_for(
    svc: ChatService,
    request: Request,
    principal: Principal,
    model: str,
    messages: list[Message],
    stream: bool,
    t0: float,
) -> _Record:
    """The chat endpoint's per-request record (metrics, log line, decision-log row)."""
    req = ChatRequest.model_construct(model=model, messages=messages)
    return _Record(svc, request, principal, req, stream, t0)


def bad_request(e: RequestError) -> APIError:
    """A body check's RequestError as a 400 (its message already starts with the field)."""
    msg = str(e) if not e.param or str(e).startswith(e.param) else f"{e.param}: {e}"
    return APIError(400, msg, e.param, "invalid_request")
