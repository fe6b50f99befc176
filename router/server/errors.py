"""OpenAI-format errors: `{"error": {"message", "type", "param", "code"}}` with the right status.

Every failure the proxy can meet is turned into one of these; the catch-all handler answers 500
without internals (the traceback goes to the log, not to the client).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Collection

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from router.core.request import RequestError

log = logging.getLogger("router.server")

# status → OpenAI error type
TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    421: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


class APIError(Exception):
    """An error the proxy answers with; `headers` carry the receipt when there is one."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}


def error_body(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> dict:
    """The OpenAI error object."""
    return {
        "error": {
            "message": message,
            "type": TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


# Error bodies of the APIs that have their own shape, by path prefix (the Anthropic Messages API,
# router/server/messages.py); every other path answers OpenAI's.
SHAPES: dict[str, Callable[[int, str, str | None, str | None], dict]] = {}


def error_response(err: APIError, path: str = "") -> JSONResponse:
    shape = next((f for prefix, f in SHAPES.items() if path.startswith(prefix)), error_body)
    return JSONResponse(
        shape(err.status, err.message, err.param, err.code), err.status, headers=err.headers
    )


def upstream_error_line(e: BaseException, redact: Callable[[str], str], limit: int = 300) -> str:
    """The "Type: first line" of an upstream error, for the client and the log. Secrets are hidden
    before the line is cut to `limit` characters: cut first, a secret across the cut would keep
    its first part, which `redact` does not know."""
    text = str(e).strip()
    line = f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__
    return redact(line)[:limit]


def from_request_error(e: RequestError, headers: dict[str, str] | None = None) -> APIError:
    """A routing RequestError is a 400 naming the field (or 404 for an unknown policy)."""
    msg = str(e)
    status, code = e.status_code, e.code  # 404 for an unknown policy (model_not_found)
    if e.param and not msg.startswith(e.param):
        msg = f"{e.param}: {msg}"  # every 4xx message names its field first
    return APIError(status, msg, e.param, code or "invalid_request", headers)


# A list of quoted strings as Python prints one: `['a', 'b']` (how errors list names). No
# backslash inside a quote: each item's text is then the quote's inside, as written.
_QUOTED = r"'[^'\\\n]*'|\"[^\"\\\n]*\""
_NAME_LIST = re.compile(rf"\[(?:{_QUOTED})(?:, (?:{_QUOTED}))*\]")
_ITEM = re.compile(_QUOTED)
HIDDEN = "[hidden]"


def without_names(message: str, hidden: Collection[str]) -> str:
    """`message` without the names in `hidden`: left out of the lists it quotes, and
    `'[hidden]'` where one is quoted alone. For an API key limited to some models, which must
    not learn the rest of the catalogue from an error."""
    if not hidden:
        return message

    def filtered(match: re.Match[str]) -> str:
        items = [q[1:-1] for q in _ITEM.findall(match.group(0))]
        kept = [i for i in items if i not in hidden]
        return repr(kept) if len(kept) < len(items) else match.group(0)

    message = _NAME_LIST.sub(filtered, message)
    for name in hidden:
        for quoted in (f"'{name}'", f'"{name}"'):
            message = message.replace(quoted, f"'{HIDDEN}'")
    return message


def _loc(loc: tuple) -> str | None:
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or None


def install(
    app: FastAPI, hidden_names: Callable[[Request], Collection[str]] = lambda _: ()
) -> None:
    """Register the handlers that turn every exception into an OpenAI error. `hidden_names`:
    the model and policy names the request's caller may not learn (`without_names`)."""

    def _rid(request: Request) -> dict[str, str]:
        rid = getattr(request.state, "request_id", None)
        return {"x-request-id": rid} if rid else {}

    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError) -> JSONResponse:
        message = without_names(exc.message, hidden_names(request))
        headers = {**_rid(request), **exc.headers}
        return error_response(
            APIError(exc.status, message, exc.param, exc.code, headers), request.url.path
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
        param = _loc(tuple(err.get("loc", ())))
        msg = f"{param}: {err['msg']}" if param else str(err["msg"])
        return error_response(
            APIError(400, msg, param, "invalid_request", _rid(request)), request.url.path
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        msg = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        code = "not_found" if exc.status_code == 404 else None
        return error_response(
            APIError(exc.status_code, msg, None, code, _rid(request)), request.url.path
        )

    @app.exception_handler(Exception)
    async def _any(request: Request, exc: Exception) -> JSONResponse:
        log.exception(
            "unhandled error", extra={"request_id": getattr(request.state, "request_id", None)}
        )
        # Starlette raises the exception again once this answer is sent, and uvicorn then closes
        # the connection. Said here, so that a client keeping connections alive (the openai and
        # anthropic SDKs do) does not send its next request on one that is being closed.
        headers = {**_rid(request), "connection": "close"}
        return error_response(
            APIError(500, "internal error in the router proxy", None, "internal_error", headers),
            request.url.path,
        )
