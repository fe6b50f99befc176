"""POST /v1/chat/completions and /v1/route: parse, call the SDK, answer with a receipt.

No routing here: `Router.achat` / `Router.route` decide; this module translates HTTP to SDK
calls and SDK results (and errors) back to OpenAI-shaped HTTP, and records each request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from router.core import privacy
from router.core.config import ServerSpec
from router.core.decision import Decision
from router.core.request import Message, RequestError, message_text
from router.sdk.router import Router
from router.server.accounting import costs, usage_of
from router.server.auth import Principal
from router.server.errors import APIError, from_request_error
from router.server.metrics import Metrics
from router.server.receipts import receipt_headers
from router.server.schema import ChatRequest, check_content_type, parse_chat, read_body
from router.server.streaming import event_stream, sse
from router.server.targets import Target, resolve
from router.server.turns import session_header
from router.serving import tracing
from router.serving.decision_log import DecisionLog, decision_row
from router.serving.providers import UpstreamError
from router.serving.scrub import quotes_of, scrubber

log = logging.getLogger("router.server")


class ChatService:
    """What the chat endpoints share: the router, settings, metrics, decision log, redaction."""

    def __init__(
        self,
        router: Router,
        spec: ServerSpec,
        metrics: Metrics,
        decisions: DecisionLog | None,
        secrets: list[str],
    ) -> None:
        self.router = router
        self.spec = spec
        self.metrics = metrics
        self.decisions = decisions
        # Longest first so a key that contains another is fully hidden.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._audio_ok = any("audio" in m.capabilities for m in router.config.models)
        self.in_flight: set[_Record] = set()  # requests whose row is not written yet
        self.shadow = (
            None  # the shadow judge (router/learning/shadow.py), set by admin.install_live
        )

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) until every started request has recorded its end: at shutdown,
        requests cut past the grace period record theirs once they see the cancellation."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def routing_text(self, messages: list, decision: Decision | None = None) -> str | None:
        """The text the router embedded for these messages (for the log's embedding), with
        any detected private value replaced by its placeholder."""
        try:
            return self.router.loggable_text(messages, decision) or None
        except (RequestError, ValueError, TypeError):
            return None

    def hide_secrets(self, secrets: list[str]) -> None:
        """Hide these values in errors too (a hot reload's new provider keys). The list is
        replaced whole, in one assignment: a request redacting now reads the old list or the
        new one, never half of one."""
        known = set(self._secrets) | {s for s in secrets if s}
        self._secrets = sorted(known, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """Hide every known secret (API keys, provider keys) in text meant for the outside."""
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def headers(self, d: Decision, request_id: str, latency_ms: float) -> dict[str, str]:
        """The receipt headers, with secrets hidden (a fallback reason quotes provider errors)."""
        return {k: self.redact(v) for k, v in receipt_headers(d, request_id, latency_ms).items()}

    async def _parse(
        self, request: Request, principal: Principal, router: Router | None = None
    ) -> tuple[ChatRequest, Any]:
        check_content_type(request)
        raw = await read_body(request, self.spec.max_body_bytes)
        req = parse_chat(raw, self._audio_ok)
        return req, resolve(router or self.router, principal, req.model)

    # ---- POST /v1/route ---------------------------------------------------------------------

    async def route(self, request: Request, principal: Principal) -> Response:
        """The Decision for a chat body, its session applied as chat would (read only); no
        model is called."""
        req, target = await self._parse(request, principal)
        session = session_header(request)
        try:
            turn = await self.router.sessions.open(
                req.messages, target.policy, target.pin, req.params(), session, principal.name
            )
            d = turn.decision
        except RequestError as e:
            raise from_request_error(_in_body_terms(e)) from None
        rid = request.state.request_id
        if self.decisions is not None:
            d.request_id = rid  # the client may send feedback on a routing decision too
            seq = self.decisions.record(
                decision_row(
                    d,
                    rid,
                    kind="route",
                    routing_text=self.routing_text(req.messages, d),
                    scrub=self.redact,
                    requested_model=req.model,
                    key_name=principal.name,
                    latency_ms=d.routing_ms,
                )
            )
            await self.decisions.adurable(seq)  # on disk before the answer, per the policy
        body = json.loads(self.redact(d.to_json()))
        return JSONResponse(body, headers=self.headers(d, rid, d.routing_ms))

    # ---- POST /v1/chat/completions ----------------------------------------------------------

    async def chat(self, request: Request, principal: Principal) -> Response:
        t0 = time.perf_counter()
        rid: str = request.state.request_id
        router = self.router  # one router for the whole request: a hot reload swaps self.router
        req, target = await self._parse(request, principal, router)
        params = req.params()
        stream = bool(params.get("stream"))
        record = _Record(self, request, principal, req, stream, t0, router)
        result = await self.call_router(record, target, req.messages, params)
        decision: Decision = result.decision
        headers = self.headers(decision, rid, _ms(t0))
        if stream:
            await record.begin(decision)  # the write-ahead row, before the first byte
            on_end = record.stream_end(decision)
            return event_stream(sse(result, decision.model, on_end, self.redact), on_end, headers)
        result.model = decision.model
        record.end(200, decision, usage_of(result), None)
        await record.durable()  # the whole row, before the first byte
        # Not shadowed: tool calls, a private prompt (the other tier may not be trusted with
        # it) and a cache hit (no model answered).
        shadowed = "tools" not in params and not decision.privacy
        if self.shadow is not None and shadowed and (decision.cache or {}).get("status") != "hit":
            self.shadow.offer(rid, req.messages, decision, result)  # never waits (shadow.py)
        content = result.model_dump_json(exclude={"decision"})
        return Response(content, media_type="application/json", headers=headers)

    async def call_router(
        self,
        record: _Record,
        target: Target,
        messages: list[Message],
        params: dict[str, Any],
        param_of: Callable[[str | None], str | None] = lambda p: p,
    ) -> Any:
        """`Router.achat` on the request's router, with every outcome recorded (durably, before
        an error answer): a routing error is a 400 naming the field (`param_of` spells a chat
        field in the calling API's terms), an upstream failure carries the receipt."""
        request = record.request
        try:
            with tracing.use(record.span):
                return await record.router.achat(
                    messages,
                    policy=target.policy,
                    model=target.pin,
                    session=session_header(request),
                    session_scope=record.principal.name,  # one key's sessions are not another's
                    body_checked=True,  # schema.py checked the body: the SDK's checks are done
                    **params,
                )
        except asyncio.CancelledError as e:
            # The decision, when routing had made one (Router.achat leaves it on the error).
            record.end(499, getattr(e, "decision", None), None, "cancelled before the answer")
            raise
        except RequestError as e:
            e = _in_body_terms(e)
            param = param_of(e.param)
            msg = str(e)
            if e.param and param != e.param:
                msg = msg.replace(e.param, param or "", 1)
            err = from_request_error(RequestError(msg, param, e.code))
            record.end(err.status, None, None, str(e))
            await record.durable()
            raise err from None
        except UpstreamError as e:
            d = e.decision
            msg = self.redact(str(e))
            headers = self.headers(d, request.state.request_id, _ms(record.t0))
            record.end(e.status_code, d, None, msg)
            await record.durable()
            code = e.code or {
                504: "upstream_timeout",
                429: "rate_limited",
                503: "circuit_open",
            }.get(e.status_code, "upstream_error")
            if code == "circuit_open":  # a model that cannot be called has no time to wait
                wait = min(record.router.breakers.retry_after(a.model) for a in d.attempts)
                headers["retry-after"] = str(max(1, math.ceil(wait)))
            elif e.retry_after is not None:
                # The upstream's own wait, passed on: a client's SDK then waits as long instead
                # of retrying at once on its short backoff (the proxy retried already).
                headers["retry-after"] = str(max(1, math.ceil(e.retry_after)))
            raise APIError(e.status_code, msg, param_of(e.param), code, headers) from None
        except Exception:
            record.end(500, None, None, "internal error")  # the handler logs the traceback
            await record.durable()
            raise


class _Record:
    """Metrics, decision-log row and log fields for one request.

    The row is in the decision log's spool before the answer's first byte leaves: a stream's
    write-ahead row (`begin`, its decision) before its headers, a whole answer's row (`end`)
    before it is sent; `end` completes a begun row with the outcome. The proxy awaits
    `durable()` (or `begin`) before it answers: a no-op unless the spool fsyncs always.
    """

    def __init__(
        self,
        svc: ChatService,
        request: Request,
        principal: Principal,
        req: ChatRequest,
        stream: bool,
        t0: float,
        router: Router | None = None,
    ) -> None:
        self.svc, self.request, self.principal = svc, request, principal
        # The one the request runs on, should a hot reload swap svc.router meanwhile.
        self.router = router or svc.router
        self.req, self.stream, self.t0 = req, stream, t0
        self.ts = time.time()  # the row's time, the same in its write-ahead and whole forms
        self.done = False
        self.started = False  # a write-ahead row was spooled
        self.seq: int | None = None  # the spool item of the last row
        svc.in_flight.add(self)
        # The request's trace span (router/serving/tracing.py; None with tracing off): a child
        # of the caller's traceparent, if any; ended by end(), after a stream's last byte.
        self.span = tracing.start_request(
            self.router.tracer,
            request.headers,
            request.state.request_id,
            **{"router.key_name": principal.name},
        )
        # Upstream errors may quote the prompt; logs and the decision log must not carry it
        # unless prompt logging is on. Longest first, as for secrets.
        texts = [] if svc.spec.log_prompts else [message_text(m) for m in req.messages]
        self._prompts = quotes_of(texts)
        self._scrub = scrubber(svc.redact, self._prompts)  # built again when _prompts grows

    def stream_end(self, d: Decision) -> Callable[[int, tuple[int, int] | None, str | None], None]:
        """`end` for the stream that answers with decision `d`: (status, usage, error), as the
        streaming helpers call it; idempotent, the first end counts."""
        return lambda status, usage, error: self.end(status, d, usage, error)

    def scrub(self, text: str | None) -> str | None:
        """Secrets and (unless prompt logging is on) prompt texts hidden."""
        return self._scrub(text)

    def _hide_private(self, d: Decision | None) -> None:
        """Detected private values never reach a log line or the decision log."""
        if d is not None and d.privacy:
            detected = self.router.policy(d.policy).privacy.detect
            found = privacy.values(self.req.messages, detected)
            self._prompts = quotes_of([*self._prompts, *found])
            self._scrub = scrubber(self.svc.redact, self._prompts)

    def _prompt(self, d: Decision | None) -> str:
        """The messages for the `prompt` column (log_prompts), private values redacted."""
        messages = self.req.messages
        if d is None:
            # Refused before a decision (privacy.action: refuse among the reasons): which
            # detectors the policy runs is not known here, so every kind is hidden.
            messages = privacy.redact_messages(messages)
        elif d.privacy:
            detected = self.router.policy(d.policy).privacy.detect
            messages = privacy.redact_messages(messages, detected)
        return json.dumps(messages, ensure_ascii=False)

    async def begin(self, d: Decision) -> None:
        """Spool the write-ahead row (the decision, phase "started"), durable per the policy."""
        svc = self.svc
        if svc.decisions is None or self.done:
            return
        self._hide_private(d)
        row = decision_row(
            d,
            self.request.state.request_id,
            kind="chat",
            ts=self.ts,
            status=None,
            routing_text=svc.routing_text(self.req.messages, d),
            scrub=self.scrub,
            requested_model=self.req.model,
            key_name=self.principal.name,
            stream=self.stream,
        )
        if svc.spec.log_prompts:
            row["prompt"] = self._prompt(d)
        self.seq = svc.decisions.start(row)
        self.started = True
        try:
            await svc.decisions.adurable(self.seq)
        except asyncio.CancelledError:
            self.end(499, d, None, "client left before the answer started")
            raise

    async def durable(self) -> None:
        """Wait until the last row is on disk, if the spool's policy is to fsync always."""
        if self.svc.decisions is not None:
            await self.svc.decisions.adurable(self.seq)

    def end(
        self, status: int, d: Decision | None, usage: tuple[int, int] | None, error: str | None
    ) -> None:
        if self.done:
            return
        self.done = True
        svc = self.svc
        svc.in_flight.discard(self)
        cost = costs(self.router, d, usage) if d is not None else None
        svc.metrics.observe(status, d, usage, cost, self.stream, time.perf_counter() - self.t0)
        self._hide_private(d)
        error = self.scrub(error)
        tracing.end_request(self.span, status, d, error)
        fields = {
            "requested_model": self.req.model,
            "key_name": self.principal.name,
            "status": status,
            "stream": self.stream,
        }
        if d is not None:
            fields.update(
                policy=d.policy,
                model=d.model,
                domain=d.domain,
                escalated=d.escalated,
                routing_ms=d.routing_ms,
                fell_back=any(not a.ok for a in d.attempts),
            )
        # Logged before the response goes out, so the line exists once the client has an answer.
        log.info(
            "chat",
            extra={
                "request_id": self.request.state.request_id,
                **fields,
                "latency_ms": _ms(self.t0),
                "error": error,
            },
        )
        if svc.decisions is None:
            return
        row = decision_row(
            d,
            self.request.state.request_id,
            kind="chat",
            ts=self.ts,
            status=status,
            # Embedded by the log's writer thread (from the write-ahead row's text when there
            # was one); kept as text only with store_text.
            routing_text=(
                svc.routing_text(self.req.messages, d)
                if d is not None and not self.started
                else None
            ),
            usage=usage,
            cost=cost if cost else (None, None),
            scrub=self.scrub,
            requested_model=self.req.model,
            key_name=self.principal.name,
            stream=self.stream,
            error=error,
            latency_ms=_ms(self.t0),
        )
        if svc.spec.log_prompts:
            row["prompt"] = self._prompt(d)
        self.seq = svc.decisions.record(row)


def _in_body_terms(e: RequestError) -> RequestError:
    """A routing error named in the body's terms: the body has no `policy` field, its `model`
    chose the policy ("router/<policy>", or "router" with the API key's own)."""
    if e.param == "policy":
        return RequestError(str(e), "model", e.code)
    return e


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)
