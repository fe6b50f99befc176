"""What a request says about its conversation: the `x-session-id` header (router/serving/sessions.py)."""

from __future__ import annotations

from starlette.requests import Request

from router.server.errors import APIError
from router.serving.sessions import MAX_SESSION_ID

SESSION_HEADER = "x-session-id"


def session_header(request: Request) -> str | None:
    """The session id a client sends, checked (400 naming the header otherwise)."""
    value = request.headers.get(SESSION_HEADER)
    if value is None:
        return None
    try:  # HTTP headers arrive as latin-1: an id a client sent as UTF-8 is read as UTF-8
        value = value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        pass  # not UTF-8: judged as it came
    if not value.strip() or len(value) > MAX_SESSION_ID or not value.isprintable():
        raise APIError(
            400,
            f"{SESSION_HEADER}: a session id is 1-{MAX_SESSION_ID} printable characters",
            SESSION_HEADER,
            "invalid_request",
        )
    return value
