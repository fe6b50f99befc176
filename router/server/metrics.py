"""Prometheus metrics of the proxy, on a registry of its own (one per app)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.routing import BaseRoute, Mount

from router.core.decision import Decision
from router.serving.breaker import Breakers

_BUCKETS_ROUTING = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
_BUCKETS_UPSTREAM = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BUCKETS_TPS = (1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500)


class Metrics:
    """Counters and histograms; `observe()` takes one finished request."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        breakers: Breakers | None = None,
        local_models: Iterable[str] = (),
        local_state: Callable[[], dict[str, dict]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        # Labels paths by the app's routes, which `create_app` hands over once the app exists
        # (until then every path is "other").
        self.endpoint_label = EndpointLabels()
        r = self.registry
        if breakers is not None:
            r.register(_BreakerCollector(breakers))
        self.local_models = frozenset(local_models)
        if local_state is not None and self.local_models:
            r.register(_LocalCollector(self.local_models, local_state))
        self.local_ttft = Histogram(
            "router_local_ttft_seconds",
            "Local models: time to the first streamed chunk (prompt processing included).",
            ["model"],
            buckets=_BUCKETS_UPSTREAM,
            registry=r,
        )
        self.local_tps = Histogram(
            "router_local_tokens_per_second",
            "Local models: completion tokens per second of generation (non-streamed: whole call).",
            ["model"],
            buckets=_BUCKETS_TPS,
            registry=r,
        )
        self.requests = Counter(
            "router_requests",
            "Chat requests by answering model, policy, domain and HTTP status.",
            ["model", "policy", "domain", "status"],
            registry=r,
        )
        self.escalations = Counter(
            "router_escalations", "Requests escalated to a large model.", ["policy"], registry=r
        )
        self.fallbacks = Counter(
            "router_fallbacks",
            "Requests answered by a fallback model after the chosen one failed.",
            ["model", "policy"],
            registry=r,
        )
        self.routing_seconds = Histogram(
            "router_routing_seconds",
            "Time to route a request.",
            buckets=_BUCKETS_ROUTING,
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "router_upstream_seconds",
            "Upstream time per request (to the first chunk when streaming), fallbacks included.",
            ["model"],
            buckets=_BUCKETS_UPSTREAM,
            registry=r,
        )
        self.tokens = Counter(
            "router_tokens", "Tokens reported by upstreams.", ["model", "kind"], registry=r
        )
        self.cost = Counter(
            "router_cost_usd", "Estimated cost of the answering models, USD.", ["model"], registry=r
        )
        # Cascades (router/serving/cascade.py): outcomes, and what escalation threw away.
        self.cascade = Counter(
            "router_cascade_requests",
            "Cascaded requests by outcome: accepted (cheap answer kept), escalated, unchecked "
            "(hybrid: sure-easy), large (hybrid: sure-hard), first_failed (cheap call failed).",
            ["policy", "outcome"],
            registry=r,
        )
        self.cascade_rate = Gauge(
            "router_cascade_escalation_rate",
            "Share of judged cheap answers that were escalated, since start.",
            ["policy"],
            registry=r,
        )
        self.cascade_wasted_tokens = Counter(
            "router_cascade_wasted_tokens",
            "Completion tokens of cheap answers that were judged wrong and discarded.",
            ["model"],
            registry=r,
        )
        self.cascade_wasted_cost = Counter(
            "router_cascade_wasted_cost_usd",
            "Cost of cheap answers that were discarded, USD (also in router_cost_usd).",
            ["model"],
            registry=r,
        )
        self._judged: dict[str, list[int]] = {}  # policy -> [judged, escalated]
        # Sessions (router/serving/sessions.py): how often a conversation's turn kept its model.
        self.session_turns = Counter(
            "router_session_turns",
            "Turns of a session by outcome: kept (the session's model), tool_loop (the model "
            "that made the tool call), routed (the fresh choice: a new or moved session).",
            ["policy", "outcome"],
            registry=r,
        )
        # The response cache (router/serving/cache.py) and the privacy rule (core/privacy.py).
        self.cache = Counter(
            "router_cache_requests",
            "Requests by cache outcome: hit (kind exact or semantic), miss, bypass (never "
            "cached: temperature > 0, tools, n > 1, private data).",
            ["policy", "outcome", "kind"],
            registry=r,
        )
        self.cache_saved = Counter(
            "router_cache_saved_usd",
            "What cache hits saved: the cost of the answers they served again, USD.",
            ["model"],
            registry=r,
        )
        self.privacy = Counter(
            "router_privacy_requests",
            "Requests carrying private data, by kind detected and action taken (never values).",
            ["kind", "action"],
            registry=r,
        )
        self.large_cost = Counter(
            "router_large_cost_usd",
            "Counterfactual: the same requests all on the policy's large model, USD.",
            ["policy"],
            registry=r,
        )
        # Every response, by endpoint and status: the refusals before routing (401, 403, 413,
        # 415, 429 ...) have no decision row and are counted nowhere else.
        self.http = Counter(
            "router_http_responses",
            "HTTP responses by endpoint and status, refusals before routing included.",
            ["path", "status"],
            registry=r,
        )
        # Pass-through /v1/completions and /v1/embeddings (passthrough.py): not routed, so
        # counted apart from the routed requests, their savings and the decision log's figures.
        self.passthrough = Counter(
            "router_passthrough_requests",
            "Pass-through requests (/v1/completions, /v1/embeddings) by endpoint, the catalogue "
            "model named and HTTP status.",
            ["endpoint", "model", "status"],
            registry=r,
        )
        self.passthrough_tokens = Counter(
            "router_passthrough_tokens",
            "Tokens reported by the upstreams of pass-through requests.",
            ["model", "kind"],
            registry=r,
        )
        self.passthrough_cost = Counter(
            "router_passthrough_cost_usd",
            "Estimated cost of pass-through requests, USD (not in router_cost_usd).",
            ["endpoint", "model"],
            registry=r,
        )

    def observe(
        self,
        status: int,
        decision: Decision | None,
        usage: tuple[int, int] | None = None,
        costs: tuple[float, float] | None = None,
        stream: bool = False,
        elapsed_s: float | None = None,
    ) -> None:
        """Count one chat request; `decision` is None when it failed before routing.

        `elapsed_s` (the whole request) lets a local model's stream be timed after its first
        chunk.
        """
        if decision is None:
            self.requests.labels("none", "none", "none", str(status)).inc()
            return
        d = decision
        self.requests.labels(d.model, d.policy, d.domain or "none", str(status)).inc()
        self.routing_seconds.observe(d.routing_ms / 1000)
        for kind in (d.privacy or {}).get("rules") or []:
            self.privacy.labels(kind, d.privacy.get("action", "")).inc()
        # What routing decided counts for a cache hit too, as its receipt and log row say.
        if d.escalated:
            self.escalations.labels(d.policy).inc()
        if d.sticky is not None and status < 400:
            outcome = "routed" if not d.sticky else "kept"
            if d.sticky and d.reason.startswith("tool loop"):
                outcome = "tool_loop"
            self.session_turns.labels(d.policy, outcome).inc()
        if d.cache and status < 400:
            outcome = d.cache.get("status", "miss")
            self.cache.labels(d.policy, outcome, d.cache.get("kind", "")).inc()
            if outcome == "hit":
                self.cache_saved.labels(d.model).inc(d.cache.get("saved_cost") or 0.0)
                if costs is not None:
                    self.large_cost.labels(d.policy).inc(costs[1])
                return  # no upstream call, no tokens: nothing else to count
        if d.attempts:
            self.upstream_seconds.labels(d.model).observe(sum(a.ms for a in d.attempts) / 1000)
        if any(not a.ok for a in d.attempts) and status < 400:
            self.fallbacks.labels(d.model, d.policy).inc()
        if usage is not None:
            self.tokens.labels(d.model, "prompt").inc(usage[0])
            self.tokens.labels(d.model, "completion").inc(usage[1])
        if costs is not None and status < 400:
            self.cost.labels(d.model).inc(costs[0])
            self.large_cost.labels(d.policy).inc(costs[1])
        if d.model in self.local_models and status < 400 and d.attempts and d.attempts[-1].ok:
            self._observe_local(d, usage, stream, elapsed_s)
        if d.cascade and status < 400:
            self._observe_cascade(d)

    def observe_http(self, path: str, status: int) -> None:
        """Count one response (`path` as the client sent it; unknown paths are one label)."""
        self.http.labels(self.endpoint_label(path), str(status)).inc()

    def observe_passthrough(
        self, endpoint: str, model: str, status: int, usage: tuple[int, int] | None, cost: float
    ) -> None:
        """Count one pass-through request to catalogue model `model` (usage: reported tokens,
        prompt and completion; cost: their price, counted for an answer only)."""
        self.passthrough.labels(endpoint, model, str(status)).inc()
        if usage is not None:
            self.passthrough_tokens.labels(model, "prompt").inc(usage[0])
            self.passthrough_tokens.labels(model, "completion").inc(usage[1])
        if status < 400:
            self.passthrough_cost.labels(endpoint, model).inc(cost)

    def _observe_cascade(self, d: Decision) -> None:
        c = d.cascade or {}
        mode = c.get("mode")
        if mode != "judged":
            self.cascade.labels(d.policy, "unchecked" if mode == "unchecked" else "large").inc()
            return
        if c.get("verdict") is None:  # the cheap model failed: nothing was judged
            self.cascade.labels(d.policy, "first_failed").inc()
            return
        escalated = bool(c.get("escalated"))
        self.cascade.labels(d.policy, "escalated" if escalated else "accepted").inc()
        counts = self._judged.setdefault(d.policy, [0, 0])
        counts[0] += 1
        counts[1] += escalated
        self.cascade_rate.labels(d.policy).set(counts[1] / counts[0])
        if c.get("cheap_tokens_wasted"):
            self.cascade_wasted_tokens.labels(c.get("first", "")).inc(c["cheap_tokens_wasted"])
            self.cascade_wasted_cost.labels(c.get("first", "")).inc(c.get("cheap_cost") or 0.0)

    def _observe_local(
        self, d: Decision, usage: tuple[int, int] | None, stream: bool, elapsed_s: float | None
    ) -> None:
        # The answering attempt's time: to the first chunk when streaming, else the whole call.
        first_s = d.attempts[-1].ms / 1000
        if stream:
            self.local_ttft.labels(d.model).observe(first_s)
        gen_s = first_s
        if stream:
            before = d.routing_ms / 1000 + sum(a.ms for a in d.attempts) / 1000
            gen_s = (elapsed_s - before) if elapsed_s is not None else 0.0
        if usage is not None and usage[1] > 0 and gen_s > 0:
            self.local_tps.labels(d.model).observe(usage[1] / gen_s)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self._all_workers())
        return generate_latest(self.registry)

    def _all_workers(self) -> CollectorRegistry:
        """Several worker processes (`router serve --workers N`): prometheus_client's
        multiprocess mode keeps every worker's counters and histograms in files under
        PROMETHEUS_MULTIPROC_DIR, summed here; state read at scrape time (breakers, local
        models) comes live from the worker that answers the scrape."""
        from prometheus_client import multiprocess
        from prometheus_client.metrics import MetricWrapperBase

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in list(self.registry._collector_to_names):
            if not isinstance(collector, MetricWrapperBase):
                registry.register(collector)
        return registry


_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class _LocalCollector:
    """Local model servers: up or not, and restarts, read at scrape time."""

    def __init__(self, models: frozenset[str], state: Callable[[], dict[str, dict]]) -> None:
        self.models, self.state = models, state

    def collect(self):
        up = GaugeMetricFamily(
            "router_local_model_up",
            "Local model server answering: 1 ready, 0 not.",
            labels=["model"],
        )
        restarts = CounterMetricFamily(
            "router_local_model_restarts", "Restarts of a local model's server.", labels=["model"]
        )
        snap = self.state()
        for m in sorted(self.models):
            s = snap.get(m, {})
            up.add_metric([m], 1 if s.get("state") == "ready" else 0)
            restarts.add_metric([m], s.get("restarts", 0))
        yield up
        yield restarts


class _BreakerCollector:
    """Circuit-breaker state, read from the SDK's breakers at scrape time."""

    def __init__(self, breakers: Breakers) -> None:
        self.breakers = breakers

    def collect(self):
        state = GaugeMetricFamily(
            "router_circuit_state",
            "Circuit breaker per model: 0 closed, 1 half-open, 2 open.",
            labels=["model"],
        )
        trips = CounterMetricFamily(
            "router_circuit_opened", "Times a model's circuit breaker opened.", labels=["model"]
        )
        for model, s in self.breakers.snapshot().items():
            state.add_metric([model], _STATE_VALUE[s["state"]])
            trips.add_metric([model], s["trips"])
        yield state
        yield trips


class EndpointLabels:
    """The `path` label of `router_http_responses_total`: a request's route, read from the app's
    own routes (a new endpoint is labelled as itself, no list here to keep up to date)."""

    # One label for the dashboard's files, as for one endpoint.
    FOLDED = ("/dashboard/static",)

    def __init__(self, routes: Sequence[BaseRoute] = ()) -> None:
        self.routes = routes  # the app's own list: routes added later are seen too
        self._seen = -1
        self._paths: dict[str, str] = {}
        self._templates: list[tuple[re.Pattern[str], str]] = []

    def __call__(self, path: str) -> str:
        """`path` itself when a route has it, the route's template for a path with an id
        (`/v1/models/{id}`), "other" for any other path: a scanner's thousand probes must not
        make a thousand label sets."""
        if len(self.routes) != self._seen:
            self._learn()
        if (label := self._paths.get(path)) is not None:
            return label
        for pattern, template in self._templates:
            if pattern.match(path):
                return template
        return "other"

    def _learn(self) -> None:
        paths: dict[str, str] = {}
        templates: list[tuple[re.Pattern[str], str]] = []
        for route in self.routes:
            template = getattr(route, "path", None)
            if not isinstance(template, str):
                continue
            label = next((f for f in self.FOLDED if template.startswith(f + "/")), template)
            # Ids read the same, whatever the route calls them (`/v1/responses/{response_id}`).
            label = re.sub(r"\{[^}]*\}", "{id}", label)
            if "{" in template or isinstance(route, Mount):
                templates.append((route.path_regex, label))
            else:
                paths[template] = label
        self._paths, self._templates, self._seen = paths, templates, len(self.routes)
