"""The agent-facing endpoints and what they share with chat.

`install_agents(app, svc, caller)` adds the OpenAI Responses API (`/v1/responses`, responses.py),
Anthropic's Messages API (`/v1/messages`, messages.py) and the pass-through endpoints
(`/v1/completions`, `/v1/embeddings`, passthrough.py). Each is a thin face: its body is turned
into a chat request (translate.py) and routed by `Router.achat` exactly like chat, with the same
receipts, sessions, records and metrics.
"""

# No `from __future__ import annotations`: FastAPI must see the endpoints' `Caller` type (a
# local Annotated dependency) as an object, not as a string it cannot resolve.

import asyncio
import math
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

from ..request import Message, RequestError
from ..router import UpstreamError
from . import errors
from .auth import Principal
from .chat import ChatService, _Record
from .errors import APIError, from_request_error
from .schema import ChatRequest, check_content_type, loads, read_body
from .targets import Target
from .turns import session_header


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


async def call_router(
    svc: ChatService,
    request: Request,
    principal: Principal,
    target: Target,
    messages: list[Message],
    params: dict[str, Any],
    record: _Record,
    t0: float,
    param_of: Callable[[str | None], str | None] = lambda p: p,
) -> Any:
    """`Router.achat` with the chat endpoint's error handling: a routing error is a 400 naming
    the field (`param_of` spells a chat field in the calling API's terms), an upstream failure
    carries the receipt, and every outcome is recorded."""
    session = session_header(request)
    try:
        return await svc.router.achat(
            messages,
            policy=target.policy,
            model=target.pin,
            session=session,
            session_scope=principal.name,
            **params,
        )
    except asyncio.CancelledError:
        record.end(499, None, None, "cancelled before the answer")
        raise
    except RequestError as e:
        record.end(400, None, None, str(e))
        param = param_of(e.param)
        msg = str(e)
        if e.param and param != e.param:
            msg = msg.replace(e.param, param or "", 1)
        raise from_request_error(RequestError(msg, param)) from None
    except UpstreamError as e:
        d = e.decision
        msg = svc.redact(str(e))
        headers = svc.headers(d, request.state.request_id, _ms(t0))
        record.end(e.status_code, d, None, msg)
        code = {504: "upstream_timeout", 429: "rate_limited", 503: "circuit_open"}.get(
            e.status_code, "upstream_error"
        )
        if e.status_code == 503:
            wait = min(svc.router.breakers.retry_after(a.model) for a in d.attempts)
            headers["retry-after"] = str(max(1, math.ceil(wait)))
        raise APIError(e.status_code, msg, None, code, headers) from None
    except Exception:
        record.end(500, None, None, "internal error")  # the handler logs the traceback
        raise


def bad_request(e: RequestError) -> APIError:
    """A body check's RequestError as a 400 (its message already starts with the field)."""
    msg = str(e) if not e.param or str(e).startswith(e.param) else f"{e.param}: {e}"
    return APIError(400, msg, e.param, "invalid_request")


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


def install_agents(app: FastAPI, svc: ChatService, caller: Callable) -> None:
    """Register the agent-facing endpoints on the proxy app."""
    from .messages import (
        MessagesService,
        anthropic_error_body,
        openapi_count_tokens,
        openapi_messages,
    )
    from .passthrough import PassThrough, openapi_completions, openapi_embeddings
    from .responses import ResponsesService, openapi_responses

    Caller = Annotated[Principal, Depends(caller)]
    responses = ResponsesService(svc)
    messages = MessagesService(svc)
    passthrough = PassThrough(svc)
    errors.SHAPES["/v1/messages"] = anthropic_error_body

    @app.post("/v1/responses", openapi_extra=openapi_responses())
    async def create_response(request: Request, principal: Caller) -> Response:
        return await responses.create(request, principal)

    @app.get("/v1/responses/{response_id}")
    async def get_response(response_id: str, principal: Caller) -> Response:
        return await responses.get(response_id, principal)

    @app.delete("/v1/responses/{response_id}")
    async def delete_response(response_id: str, principal: Caller) -> Response:
        return await responses.delete(response_id, principal)

    @app.post("/v1/messages", openapi_extra=openapi_messages())
    async def create_message(request: Request, principal: Caller) -> Response:
        return await messages.create(request, principal)

    @app.post("/v1/messages/count_tokens", openapi_extra=openapi_count_tokens())
    async def count_tokens(request: Request, principal: Caller) -> Response:
        return await messages.count_tokens(request, principal)

    @app.post("/v1/completions", openapi_extra=openapi_completions())
    async def completions(request: Request, principal: Caller) -> Response:
        return await passthrough.completions(request, principal)

    @app.post("/v1/embeddings", openapi_extra=openapi_embeddings())
    async def embeddings(request: Request, principal: Caller) -> Response:
        return await passthrough.embeddings(request, principal)
