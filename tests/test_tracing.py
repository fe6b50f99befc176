"""OpenTelemetry traces (router/serving/tracing.py): spans for routing, each upstream attempt and
the cascade's verdict with the receipt's fields, checked with the SDK's in-memory exporter; the
proxy joins a caller's traceparent; the OTLP exporter of `tracing:` really sends to a
collector (a loopback one here); off by default."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
import yaml
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from router.core.config import ConfigError, load_config
from router.serving import tracing
from tests.learning import ADMIN_KEY, model, router_for, serve, write_config

POLICIES = {
    "balanced": {"default": ["cheap"], "large": ["large"]},
    # The cheap model fails (500): the chain falls back to the large one.
    "fallback": {"default": ["broken"], "large": ["large"], "fallbacks": ["large"]},
    # The cheap answer is judged and always found wanting (threshold 1): escalated.
    "strict": {"default": ["cheap"], "large": ["large"], "cascade": {"threshold": 1.0}},
    "lenient": {"default": ["cheap"], "large": ["large"], "cascade": {"threshold": 0.0}},
}


def models(api_base: str) -> list[dict]:
    return [
        model("cheap", "cheap", api_base),
        model("broken", "fail-500", api_base),
        model("large", "large", api_base, tier="large", input_price=5, output_price=15),
    ]


@pytest.fixture
def traced(tmp_path, upstream, router):
    """A router over the loopback upstream whose spans go to an in-memory exporter."""
    cfg = write_config(
        tmp_path,
        upstream.base_url,
        models=models(upstream.base_url),
        policies=POLICIES,
        server={"keys_env": None, "admin_key": ADMIN_KEY},
    )
    r = router_for(cfg, like=router)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    r.tracer = provider.get_tracer("test")
    return r, exporter


def by_name(spans, name):
    return [s for s in spans if s.name == name]


def test_spans_for_routing_and_each_attempt_carry_the_receipt(traced):
    r, exporter = traced
    resp = asyncio.run(r.achat("What is 2 + 2?", policy="fallback"))
    d = resp.decision
    spans = exporter.get_finished_spans()
    (chat,) = by_name(spans, tracing.CHAT)
    (route,) = by_name(spans, tracing.ROUTE)
    attempts = by_name(spans, tracing.UPSTREAM)
    # One trace: routing and both attempts are children of the request's span.
    assert {s.context.trace_id for s in spans} == {chat.context.trace_id}
    assert route.parent.span_id == chat.context.span_id
    assert all(a.parent.span_id == chat.context.span_id for a in attempts)
    # The route span holds the decision as the policy made it.
    assert route.attributes["router.model"] == "broken"
    assert route.attributes["router.policy"] == "fallback"
    assert route.attributes["router.domain"] == d.domain
    assert route.attributes["router.difficulty"] == pytest.approx(d.difficulty)
    # One span per upstream call: the failed cheap one, then the large one.
    assert [a.attributes["router.attempt.model"] for a in attempts] == ["broken", "large"]
    assert [a.attributes["router.attempt.ok"] for a in attempts] == [False, True]
    assert attempts[0].attributes["http.response.status_code"] == 500
    assert attempts[0].status.status_code.name == "ERROR"
    # The request's span ends with the whole receipt.
    a = chat.attributes
    assert a["router.model"] == "large" and a["router.wanted"] == "broken"
    assert a["router.attempts"] == ("broken:failed", "large:ok")
    assert a["router.reason"] == d.reason and a["router.tier"] == "large"
    assert a["router.cost_estimate"] == pytest.approx(d.cost_estimate)
    assert a["router.large_cost_estimate"] == pytest.approx(d.large_cost_estimate)
    assert a["router.routing_ms"] == pytest.approx(d.routing_ms)


def test_the_sync_sdk_traces_the_same(traced):
    r, exporter = traced
    r.chat("What is 3 + 3?", policy="fallback")
    names = [s.name for s in exporter.get_finished_spans()]
    assert names.count(tracing.UPSTREAM) == 2 and names[-1] == tracing.CHAT
    assert tracing.ROUTE in names


def test_the_sync_sdk_nests_its_spans_in_the_callers_trace(traced):
    """`chat()` runs on the SDK's background loop: the caller's current span goes with it."""
    r, exporter = traced
    with r.tracer.start_as_current_span("the application") as outer:
        r.chat("What is 3 + 3?", policy="fallback")
    spans = {s.name: s for s in exporter.get_finished_spans()}
    chat, route = spans[tracing.CHAT], spans[tracing.ROUTE]
    assert chat.parent is not None
    assert chat.parent.span_id == outer.get_span_context().span_id
    assert chat.context.trace_id == outer.get_span_context().trace_id
    assert route.parent.span_id == chat.context.span_id


@pytest.mark.parametrize("policy, escalated", [("strict", True), ("lenient", False)])
def test_the_cascade_verdict_has_a_span(traced, policy, escalated):
    r, exporter = traced
    resp = asyncio.run(r.achat("What is 17 * 23?", policy=policy))
    spans = exporter.get_finished_spans()
    (verdict,) = by_name(spans, tracing.VERDICT)
    (chat,) = by_name(spans, tracing.CHAT)
    v = verdict.attributes
    assert verdict.parent.span_id == chat.context.span_id
    assert v["router.cascade.escalated"] is escalated
    assert v["router.cascade.threshold"] == POLICIES[policy]["cascade"]["threshold"]
    assert 0.0 <= v["router.cascade.probability"] <= 1.0
    assert v["router.cascade.mode"] == "judged" and v["router.cascade.model"] == "cheap"
    assert chat.attributes["router.cascade.escalated"] is escalated
    assert resp.decision.model == ("large" if escalated else "cheap")
    calls = [s.attributes["router.attempt.model"] for s in by_name(spans, tracing.UPSTREAM)]
    assert calls == (["cheap", "large"] if escalated else ["cheap"])


CHAT_BODY = {"model": "router/fallback", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", CHAT_BODY),
        ("/v1/messages", {**CHAT_BODY, "max_tokens": 16}),
        ("/v1/responses", {"model": "router/fallback", "input": "hi"}),
    ],
)
def test_the_proxy_joins_the_callers_trace(traced, path, body):
    r, exporter = traced
    proxy = serve(r)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = f"00-{trace_id}-00f067aa0ba902b7-01"
    try:
        resp = httpx.post(
            f"{proxy.url}{path}", json=body, headers={"traceparent": parent}, timeout=60
        )
        assert resp.status_code == 200, resp.text
    finally:
        proxy.stop()
    spans = exporter.get_finished_spans()
    (request,) = by_name(spans, tracing.REQUEST)
    assert f"{request.context.trace_id:032x}" == trace_id
    assert f"{request.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert {f"{s.context.trace_id:032x}" for s in spans} == {trace_id}
    a = request.attributes
    assert a["router.request_id"] == resp.headers["x-request-id"]
    assert a["router.model"] == resp.headers["x-router-model"] == "large"
    assert a["http.response.status_code"] == 200
    (chat,) = by_name(spans, tracing.CHAT)
    assert chat.parent.span_id == request.context.span_id


def test_tracing_is_off_by_default(router):
    assert router.config.tracing is None and router.tracer is None
    assert tracing.span(None, tracing.CHAT) is tracing.span(None, tracing.ROUTE)  # one no-op
    assert tracing.start_attempt(None, "m", 1) is None


class _Collector(BaseHTTPRequestHandler):
    bodies: list[tuple[str, str, bytes]] = []

    def do_POST(self):  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["content-length"]))
        self.bodies.append((self.path, self.headers["content-type"], body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_otlp_exporter_sends_to_the_configured_collector(tmp_path, upstream, router):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_port}/v1/traces"
    try:
        cfg = write_config(
            tmp_path,
            upstream.base_url,
            models=models(upstream.base_url),
            policies=POLICIES,
            tracing={"endpoint": endpoint, "service_name": "router-under-test"},
        )
        r = router_for(cfg, like=router)
        assert r.tracer is not None
        asyncio.run(r.achat("What is 5 + 5?", policy="fallback"))
        assert tracing._provider(r.config.tracing).force_flush(30_000)
    finally:
        server.shutdown()
    path, ctype, body = _Collector.bodies[-1]
    assert path == "/v1/traces" and ctype == "application/x-protobuf"
    sent = ExportTraceServiceRequest.FromString(body)
    (resource,) = sent.resource_spans
    service = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert service["service.name"] == "router-under-test"
    names = [s.name for ss in resource.scope_spans for s in ss.spans]
    assert sorted(names) == sorted(
        [tracing.ROUTE, tracing.UPSTREAM, tracing.UPSTREAM, tracing.CHAT]
    )


@pytest.mark.parametrize(
    "section, field",
    [
        ({"endpoint": "127.0.0.1:4318"}, "tracing.endpoint"),
        ({"sample_rate": 2}, "tracing.sample_rate"),
        ({"exporter": "zipkin"}, "tracing.exporter"),
        ({"endpoint": "http://127.0.0.1:4318/v1/traces", "colour": "blue"}, "tracing.colour"),
    ],
)
def test_a_bad_tracing_section_names_the_field(tmp_path, section, field):
    cfg = tmp_path / "config.yaml"
    base = {
        "models": [
            {
                "name": "a",
                "litellm_model": "openai/a",
                "input_price": 0,
                "output_price": 0,
                "context_window": 9,
            }
        ]
    }
    cfg.write_text(yaml.safe_dump({**base, "tracing": section}))
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert e.value.field == field
