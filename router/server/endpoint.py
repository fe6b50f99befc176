"""What the agent-facing endpoints share with chat: reading the body, calling
`Router.achat` with the chat endpoint's error handling, and the per-request record."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from fastapi import Request

from router.core.request import Message, RequestError
from router.server.auth import Principal
from router.server.chat import ChatService, _Record
from router.server.errors import APIError, from_request_error
from router.server.schema import ChatRequest, check_content_type, loads, read_body
from router.server.targets import Target
from router.server.turns import session_header
from router.serving.providers import UpstreamError


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
    carries the receipt, and every outcome is recorded (durably, before the error answer)."""
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
        await record.durable()
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
        await record.durable()
        code = {504: "upstream_timeout", 429: "rate_limited", 503: "circuit_open"}.get(
            e.status_code, "upstream_error"
        )
        if e.status_code == 503:
            wait = min(svc.router.breakers.retry_after(a.model) for a in d.attempts)
            headers["retry-after"] = str(max(1, math.ceil(wait)))
        raise APIError(e.status_code, msg, None, code, headers) from None
    except Exception:
        record.end(500, None, None, "internal error")  # the handler logs the traceback
        await record.durable()
        raise


def bad_request(e: RequestError) -> APIError:
    """A body check's RequestError as a 400 (its message already starts with the field)."""
    msg = str(e) if not e.param or str(e).startswith(e.param) else f"{e.param}: {e}"
    return APIError(400, msg, e.param, "invalid_request")


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)
