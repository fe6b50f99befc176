"""OpenTelemetry traces: a span for each routed request, its routing, each upstream attempt and
the cascade's verdict, carrying the receipt's fields as attributes (`router.*`).

Off by default (`tracing:` absent): the router holds no tracer, every helper here returns at
once, and OpenTelemetry is not even imported. On, a `TracerProvider` of its own (not the global
one, so an application that embeds the SDK keeps its own) batches spans to an OTLP/HTTP
collector in a background thread; one provider per distinct `tracing:` section, so a hot reload
keeps exporting through the same one.

    request span  router.request   (the proxy; joins the caller's trace from `traceparent`)
      └ router.chat                (Router.chat / achat: the whole call, the final receipt)
          ├ router.route           (embedding, scoring, session, policy: the decision)
          ├ router.upstream × n    (one per call: model, attempt, outcome, HTTP status)
          └ router.cascade.verdict (the verifier's probability, threshold, escalated or not)
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router.core.config import TracingSpec
    from router.core.decision import Decision

REQUEST, CHAT, ROUTE, UPSTREAM, VERDICT = (
    "router.request",
    "router.chat",
    "router.route",
    "router.upstream",
    "router.cascade.verdict",
)
_OFF = contextlib.nullcontext()  # what span() returns when tracing is off: no work at all


def tracer_for(spec: TracingSpec | None) -> Any:
    """The tracer of a `tracing:` section, or None when it is off."""
    if spec is None:
        return None
    return _provider(spec).get_tracer("router")


@functools.cache
def _provider(spec: TracingSpec) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": spec.service_name}),
        sampler=ParentBased(TraceIdRatioBased(spec.sample_rate)),
    )
    headers = {k: os.path.expandvars(v) for k, v in spec.headers.items()}
    exporter = OTLPSpanExporter(endpoint=spec.endpoint, headers=headers, timeout=spec.timeout_s)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    atexit.register(provider.shutdown)  # the last batch goes out at exit
    return provider


def span(tracer: Any, name: str, attributes: Mapping[str, Any] | None = None):
    """`with span(tracer, name) as s:` — the current span for the block (None when off)."""
    if tracer is None:
        return _OFF
    return tracer.start_as_current_span(name, attributes=_clean(attributes or {}))


def annotate(s: Any, decision: Decision | None, **extra: Any) -> None:
    """Put the receipt's fields (and `extra`) on a span; a no-op for None."""
    if s is None:
        return
    attrs = receipt_attributes(decision) if decision is not None else {}
    attrs.update({f"router.{k}": v for k, v in extra.items()})
    s.set_attributes(_clean(attrs))


def record_verdict(tracer: Any, start_ns: int, cascade: Mapping[str, Any]) -> None:
    """A finished span for the cascade's verdict, from `start_ns` to now."""
    if tracer is None:
        return
    s = tracer.start_span(VERDICT, start_time=start_ns)
    s.set_attributes(_clean({f"router.cascade.{k}": v for k, v in cascade.items()}))
    s.end()


def now_ns() -> int:
    return time.time_ns()


# ---- upstream attempts --------------------------------------------------------------------------


def start_attempt(tracer: Any, model: str, number: int) -> Any:
    """A span for one upstream call (ended by `end_attempt`); None when off."""
    if tracer is None:
        return None
    from opentelemetry import trace

    s = tracer.start_span(
        UPSTREAM,
        kind=trace.SpanKind.CLIENT,
        attributes={"router.attempt.model": model, "router.attempt.number": number},
    )
    return s


def end_attempt(
    s: Any, error: BaseException | None = None, redact: Callable[[str], str] = lambda t: t
) -> None:
    """End an attempt's span; a failure's first line becomes its status, secrets hidden."""
    if s is None:
        return
    from opentelemetry.trace import Status, StatusCode

    s.set_attribute("router.attempt.ok", error is None)
    if error is not None:
        status = getattr(error, "status_code", None)
        if isinstance(status, int):
            s.set_attribute("http.response.status_code", status)
        s.set_attribute("error.type", type(error).__name__)
        s.set_status(
            Status(StatusCode.ERROR, redact(str(error).splitlines()[0])[:200] if str(error) else "")
        )
    s.end()


def use(s: Any):
    """Make `s` the current span for a block (its children nest under it); no-op for None."""
    if s is None:
        return _OFF
    from opentelemetry import trace

    return trace.use_span(s, end_on_exit=False)


# ---- the proxy's request span ---------------------------------------------------------------------


def start_request(tracer: Any, headers: Mapping[str, str], request_id: str, **attrs: Any) -> Any:
    """The proxy's span for one HTTP request, a child of the caller's `traceparent` if sent."""
    if tracer is None:
        return None
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract(carrier=dict(headers))
    return tracer.start_span(
        REQUEST,
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes=_clean({"router.request_id": request_id, **attrs}),
    )


def end_request(s: Any, status: int, decision: Decision | None, error: str | None) -> None:
    if s is None:
        return
    from opentelemetry.trace import Status, StatusCode

    annotate(s, decision)
    s.set_attribute("http.response.status_code", status)
    if status >= 400:
        s.set_status(Status(StatusCode.ERROR, (error or "")[:200]))
    s.end()


# ---- the receipt as attributes ------------------------------------------------------------------


def receipt_attributes(d: Decision) -> dict[str, Any]:
    """The receipt's fields as span attributes, `router.`-prefixed (the x-router-* headers)."""
    attrs: dict[str, Any] = {
        "router.model": d.model,
        "router.wanted": d.wanted or d.model,
        "router.tier": d.tier,
        "router.policy": d.policy,
        "router.domain": d.domain,
        "router.domain_confidence": d.domain_confidence,
        "router.difficulty": d.difficulty,
        "router.gain": d.gain,
        "router.reason": d.reason,
        "router.escalated": d.escalated,
        "router.fallbacks": list(d.fallbacks),
        "router.attempts": [f"{a.model}:{'ok' if a.ok else 'failed'}" for a in d.attempts],
        "router.routing_ms": d.routing_ms,
        "router.session": d.session,
        "router.sticky": d.sticky,
        "router.request_id": d.request_id,
        "router.cost_estimate": d.cost_estimate,
        "router.large_cost_estimate": d.large_cost_estimate,
    }
    for k, v in (d.cascade or {}).items():
        attrs[f"router.cascade.{k}"] = v
    for k, v in (d.budget or {}).items():
        if isinstance(v, dict):
            attrs.update({f"router.budget.{k}.{kk}": vv for kk, vv in v.items()})
        else:
            attrs[f"router.budget.{k}"] = v
    return attrs


def _clean(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute values OpenTelemetry takes: no None, lists of one primitive type, else text."""
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, bool | int | float | str):
            out[k] = v
        elif isinstance(v, list | tuple):
            items = [x for x in v if x is not None]
            out[k] = [str(x) for x in items] if len({type(x) for x in items}) > 1 else items
        else:
            out[k] = str(v)
    return out
