"""POST /v1/feedback: a client scores the answer to one of its requests.

Body: `{"request_id": "req_...", "score": 0.8 | "up" | "down", "model": "name"?}`. The score
goes to the decision log as an outcome (source "feedback"); the last write per request and
model wins and is counted as a revision, so sending the same feedback twice is harmless.
Unknown ids answer 404, a bad body 400 naming the field, as every other endpoint does. A
request belongs to the API key that made it: only that key (or the admin key) may score it;
for any other key its id is unknown (404, not 403: an id reveals nothing).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from router.sdk.router import Router
from router.server.auth import Principal
from router.server.errors import APIError
from router.server.schema import check_content_type, loads, read_body
from router.serving.decision_log import DecisionLog, feedback_score

FIELDS = ("request_id", "score", "model")


def openapi_feedback() -> dict:
    """The feedback body for the OpenAPI schema (documentation and fuzzing)."""
    schema = {
        "type": "object",
        "required": ["request_id", "score"],
        "additionalProperties": False,
        "properties": {
            "request_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "description": "the x-request-id of the answer being scored",
            },
            "score": {
                "anyOf": [
                    {"type": "number", "minimum": 0, "maximum": 1},
                    {"type": "string", "enum": ["up", "down"]},
                ]
            },
            "model": {"type": "string", "description": "the model scored (default: it answered)"},
        },
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def parse_feedback(raw: bytes, router: Router) -> tuple[str, float, str | None]:
    """(request id, score, model) from a body, or a 400 naming the field."""
    # The proxy's one JSON reader: nesting too deep, a number too long or NaN is a 400, not a
    # 500 with a traceback.
    body: Any = loads(raw)
    if not isinstance(body, dict):
        raise APIError(400, "body: expected a JSON object", None, "invalid_type")
    for k in body:
        if k not in FIELDS:
            raise APIError(400, f"{k}: unknown field; expected {list(FIELDS)}", k, "unknown_field")
    rid = body.get("request_id")
    if (
        not isinstance(rid, str)
        or not rid.strip()
        or len(rid) > 200
        or any(ord(c) < 32 or ord(c) == 127 for c in rid)
    ):
        raise APIError(
            400,
            "request_id: required, the x-request-id of an answer",
            "request_id",
            "invalid_value",
        )
    if "score" not in body:
        raise APIError(400, 'score: required, a number in [0, 1], "up" or "down"', "score")
    try:
        score = feedback_score(body["score"])
    except ValueError as e:
        raise APIError(400, str(e), "score", "invalid_value") from None
    model = body.get("model")
    if model is not None:
        known = {m.name for m in router.config.models}
        if not isinstance(model, str) or model not in known:
            raise APIError(
                400, f"model: unknown model {model!r}; the catalogue has {sorted(known)}", "model"
            )
    return rid, score, model


async def feedback(
    request: Request,
    router: Router,
    decisions: DecisionLog | None,
    max_body: int,
    principal: Principal,
) -> JSONResponse:
    """Score a request made with the caller's key (any key's with the admin key); another
    key's request id is answered as unknown (404), so ids reveal nothing."""
    check_content_type(request)
    raw = await read_body(request, max_body)
    rid, score, model = parse_feedback(raw, router)
    if decisions is None:
        raise APIError(
            503,
            "feedback needs the decision log, which is off (decision_log: null)",
            None,
            "decision_log_off",
        )
    try:
        # Checking the id reads the database: off the event loop.
        await asyncio.to_thread(
            decisions.record_outcome,
            rid,
            score,
            "feedback",
            model,
            key_name=None if principal.admin else principal.name,
        )
    except KeyError:
        raise APIError(
            404, f"request_id: no request {rid!r} in the decision log", "request_id", "not_found"
        ) from None
    except SQLAlchemyError:
        raise APIError(
            503,
            "the decision log is unavailable; retry later",
            None,
            "decision_log_unavailable",
            {"retry-after": "5"},
        ) from None
    return JSONResponse(
        {
            "object": "feedback",
            "request_id": rid,
            "score": score,
            "model": model,
            "source": "feedback",
        }
    )
