"""POST /v1/completions and /v1/embeddings: passed through to the catalogue model the request
names, without routing (there is nothing to route: no conversation to score).

A client that also embeds, or still uses legacy completions, needs no second base URL. The model
must be a catalogue model the API key may use ("router" is refused: these are not routed);
its provider, base URL and key come from the catalogue as for chat. Answers, and upstream
failures, carry `x-router-model` and `x-router-reason: pass-through`; upstream failures are
OpenAI errors (502, 504 on a time-out, 429 passed on), and count for the model's circuit breaker.
Each request the upstream was asked is counted in `/metrics` (`router_passthrough_*`: status,
reported tokens, their cost), apart from the routed requests; it has no decision-log row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router.core.request import RequestError
from router.server import validate
from router.server.accounting import usage_of
from router.server.auth import Principal
from router.server.chat import ChatService
from router.server.endpoint import read_json
from router.server.errors import APIError, upstream_error_line
from router.server.receipts import header_value
from router.server.streaming import EndingStreamingResponse, event, stream_failure
from router.serving.closing import aclose
from router.serving.providers import (
    MODEL_UNAVAILABLE,
    ModelUnavailable,
    failure_status,
    load_litellm,
)

log = logging.getLogger("router.server")

_TOKENS = list[int]


class EmbeddingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] | _TOKENS | list[_TOKENS]
    encoding_format: str | None = Field(default=None, pattern="^(float|base64)$")
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


class CompletionsBody(BaseModel):
    """Common fields are type-checked; others pass through to the provider, as for chat."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1, max_length=256)
    prompt: str | list[str] | _TOKENS | list[_TOKENS]
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stream: bool | None = None
    stop: str | list[str] | None = None
    echo: bool | None = None
    seed: int | None = None
    user: str | None = None


def _parse(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object", None, "invalid_request")
    try:
        validate.check_values(data)
        if model.model_config.get("extra") == "allow":  # unknown fields go to the provider
            validate.check_passed_fields(data)
        body = model.model_validate(data)
    except RequestError as e:
        raise APIError(400, str(e), e.param, "invalid_request") from None
    except ValidationError as e:
        err = e.errors()[0]
        loc = err["loc"][:1] if err["loc"] else ()
        field = str(loc[0]) if loc else None
        msg = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
        raise APIError(400, f"{field}: {msg}" if field else msg, field, "invalid_request") from None
    for key in ("input", "prompt"):
        value = getattr(body, key, None)
        if value is not None and (value == "" or value == []):
            raise APIError(400, f"{key}: must not be empty", key, "invalid_request")
    return body


class PassThrough:
    def __init__(self, svc: ChatService) -> None:
        self.svc = svc

    def _target(self, name: str, principal: Principal) -> str:
        router = self.svc.router
        if name == "router" or name.startswith("router/"):
            raise APIError(
                400,
                f"model: {name!r} routes chat requests; this endpoint is not routed, name a "
                "catalogue model (GET /v1/models)",
                "model",
                "invalid_request",
            )
        if not any(m.name == name for m in router.config.models):
            raise APIError(
                404,
                f"model {name[:256]!r} does not exist; GET /v1/models lists the catalogue",
                "model",
                "model_not_found",
            )
        if not principal.may_use(name):
            raise APIError(
                403, f"this API key may not use model {name!r}", "model", "model_not_allowed"
            )
        return name

    def _headers(self, request: Request, name: str, t0: float) -> dict[str, str]:
        return {
            "x-request-id": request.state.request_id,
            "x-router-model": name,
            "x-router-reason": "pass-through: the model the request names, not routed",
            "x-router-latency-ms": f"{(time.perf_counter() - t0) * 1000:.1f}",
        }

    def _count(self, endpoint: str, name: str, status: int, usage: tuple[int, int] | None) -> None:
        """`/metrics` for one pass-through request: its status, the tokens its upstream
        reported and what they cost at the catalogue's prices."""
        try:
            spec = self.svc.router.config.model(name)
        except KeyError:  # a hot reload took it out of the catalogue meanwhile
            spec = None
        cost = spec.cost(*usage) if spec is not None and usage is not None else 0.0
        self.svc.metrics.observe_passthrough(endpoint, name, status, usage, cost)

    async def _call(
        self, request: Request, endpoint: str, name: str, fn: str, params: dict[str, Any], t0: float
    ) -> Any:
        """The upstream call; a failure is counted and answered with the pass-through receipt."""
        try:
            return await self._upstream(name, fn, params)
        except asyncio.CancelledError:
            self._count(endpoint, name, 499, None)  # the client left before the answer
            raise
        except APIError as e:
            self._count(endpoint, name, e.status, None)
            e.headers = {**self._headers(request, name, t0), **e.headers}
            raise

    async def _upstream(self, name: str, fn: str, params: dict[str, Any]) -> Any:
        router, litellm = self.svc.router, load_litellm()
        if not router.breakers.allow(name):
            raise APIError(503, f"model {name!r}: circuit open", None, "circuit_open")
        try:
            kw = router.calls.kwargs(name, params)
            kw.setdefault("max_retries", router.config.model(name).retries)
            result = await getattr(litellm, fn)(**kw)
        except ModelUnavailable as e:
            router.breakers.release(name)
            raise APIError(
                503, f"model {name!r} is unavailable: {e}", "model", MODEL_UNAVAILABLE
            ) from None
        except Exception as e:  # noqa: BLE001 - every upstream failure becomes an OpenAI error
            router.calls.breaker_failure(name, e)
            code = failure_status(e)
            msg = f"{name}: {upstream_error_line(e, self.svc.redact)}"
            kind = {504: "upstream_timeout", 429: "rate_limited"}.get(code, "upstream_error")
            raise APIError(code, msg, None, kind) from None
        router.breakers.success(name)
        return result

    async def embeddings(self, request: Request, principal: Principal) -> Response:
        t0 = time.perf_counter()
        body: EmbeddingsBody = _parse(EmbeddingsBody, await read_json(self.svc, request))
        name = self._target(body.model, principal)
        params = body.model_dump(exclude_unset=True, exclude={"model"})
        result = await self._call(request, "embeddings", name, "aembedding", params, t0)
        self._count("embeddings", name, 200, usage_of(result))
        out = result.model_dump() if hasattr(result, "model_dump") else dict(result)
        out["model"] = name
        log.info("embeddings", extra={"request_id": request.state.request_id, "model": name})
        return JSONResponse(out, headers=self._headers(request, name, t0))

    async def completions(self, request: Request, principal: Principal) -> Response:
        t0 = time.perf_counter()
        body: CompletionsBody = _parse(CompletionsBody, await read_json(self.svc, request))
        name = self._target(body.model, principal)
        params = body.model_dump(exclude_unset=True, exclude={"model"})
        result = await self._call(request, "completions", name, "atext_completion", params, t0)
        headers = self._headers(request, name, t0)
        log.info("completions", extra={"request_id": request.state.request_id, "model": name})
        if not body.stream:
            self._count("completions", name, 200, usage_of(result))
            out = result.model_dump() if hasattr(result, "model_dump") else dict(result)
            out["model"] = name
            return JSONResponse(out, headers=headers)

        usage: tuple[int, int] | None = None
        counted = False

        def count(status: int) -> None:  # once, however the stream ends
            nonlocal counted
            if not counted:
                counted = True
                self._count("completions", name, status, usage)

        async def frames():
            nonlocal usage
            try:
                async for chunk in result:
                    usage = usage_of(chunk) or usage  # when the stream reports it
                    data = chunk.model_dump() if hasattr(chunk, "model_dump") else dict(chunk)
                    data["model"] = name
                    for choice in data.get("choices") or []:
                        if choice.get("text") is None:
                            choice["text"] = ""  # litellm's closing chunk; OpenAI's is a string
                    yield event(_json(data))
                count(200)
                yield b"data: [DONE]\n\n"
            except Exception as e:  # noqa: BLE001 - the stream ends with an error event
                status, msg = stream_failure(e, self.svc.redact)
                count(status)
                err = {
                    "error": {
                        "message": f"upstream stream failed mid-way: {msg}",
                        "type": "upstream_error",
                        "param": None,
                        "code": "stream_error",
                    }
                }
                yield event(_json(err))
            finally:
                count(499)  # the client left mid-way
                await aclose(result)  # the client left: the upstream's connection goes too

        headers.update({"cache-control": "no-cache", "x-accel-buffering": "no"})
        return EndingStreamingResponse(
            frames(),
            lambda: count(499),  # the client left before the stream started
            media_type="text/event-stream",
            headers={k: header_value(v) for k, v in headers.items()},
        )


def _json(data: Any) -> str:
    import json

    return json.dumps(data, ensure_ascii=False, default=str)


_INPUTS = [
    {"type": "string", "minLength": 1},
    {"type": "array", "items": {"type": "string"}, "minItems": 1},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1},
    {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}, "minItems": 1},
]


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def openapi_embeddings() -> dict[str, Any]:
    """Documented as permissive as the parser (fuzzing checks both ways)."""
    schema = {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "minLength": 1, "maxLength": 256, "examples": ["large"]},
            "input": {"anyOf": _INPUTS},
            "encoding_format": _nullable({"enum": ["float", "base64"]}),
            "dimensions": _nullable({"type": "integer", "minimum": 1}),
            "user": _nullable({"type": "string"}),
        },
        "additionalProperties": False,
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def openapi_completions() -> dict[str, Any]:
    """Common fields typed; others pass through to the provider (as for chat)."""
    props = {
        "max_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "n": {"type": "integer", "minimum": 1, "maximum": 128},
        "stream": {"type": "boolean"},
        "stop": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "echo": {"type": "boolean"},
        "seed": {"type": "integer"},
        "user": {"type": "string"},
    }
    schema = {
        "type": "object",
        "required": ["model", "prompt"],
        "properties": {
            "model": {"type": "string", "minLength": 1, "maxLength": 256, "examples": ["large"]},
            "prompt": {"anyOf": _INPUTS},
            **{k: _nullable(v) for k, v in props.items()},
        },
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
