"""The app factory: `create_app(router, config)` → a FastAPI app, a thin face over the SDK."""

import asyncio
import gc
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from router.core.config import ServerSpec
from router.sdk.router import Router
from router.server import batching, errors, feedback
from router.server.admin import install_live
from router.server.agents import install_agents
from router.server.auth import (
    ADMIN,
    ANONYMOUS,
    API_KEY_FAILURES,
    KeyRing,
    Principal,
    bearer_token,
    invalid_key,
    is_admin,
    missing_key,
)
from router.server.chat import ChatService
from router.server.dashboard import install_dashboard
from router.server.metrics import EndpointLabels, Metrics
from router.server.middleware import CancelOnDisconnect, HostGuard, RequestIdMiddleware
from router.server.ratelimit import FailedKeys, RateLimits, address_of
from router.server.schema import openapi_body
from router.server.targets import router_model_names
from router.serving import upstream
from router.serving.breaker import BreakerSync
from router.serving.decision_log import DecisionLogCollector, open_decision_log
from router.serving.state import RedisStore, StateCollector

EPOCH = "1970-01-01T00:00:00Z"  # the `created_at` of a model to Anthropic's clients


def settle() -> None:
    """Collect start-up's garbage, then freeze what is left (gc.freeze): the full collections
    to come skip it. A server process holds ~460,000 objects once started (litellm, FastAPI,
    the router); left to the collector, the first full collection came within the first few
    hundred requests and held the GIL for 250-360 ms, every request in flight waiting behind
    it: the first burst after each start had a tail two to three times the next ones'
    (docs/performance.md). The cost: an object frozen here that later becomes cyclic garbage
    is not collected; only start-up's objects are frozen, so that is bounded by them, once
    (the router loaded at start-up is held by this app for good anyway, reloaded or not)."""
    gc.collect()
    gc.freeze()


def create_app(
    router: Router, config: ServerSpec | None = None, *, settle_heap: bool = False
) -> FastAPI:
    """Build the proxy for a loaded Router; `config` defaults to the router's `server:` section.

    A relative `decision_log` path is taken as is (relative to the working directory); the
    `router serve` command resolves it against the config file first.

    `settle_heap` (`router serve` sets it; a server process, not a test's app): once started,
    before the first request, collect and freeze what start-up built (`settle`).
    """
    spec = config or router.config.server
    keys = KeyRing(spec)
    metrics = Metrics(
        router.breakers,
        router.local_models,
        lambda: router.local.snapshot() if router.local is not None else {},
    )
    svc = ChatService(router, spec, metrics, None, keys.secrets() + router.calls.provider_keys())
    # Opened once `svc` exists: its writer may embed rows (a replayed spool's) at once, with
    # the encoder of the router serving now (a hot reload swaps svc.router).
    decisions = (
        open_decision_log(
            spec.decision_log,
            router.config.decision_log,
            lambda: svc.router.encoder,
            base_dir=router.base_dir,  # the config's folder: where a relative spool dir starts
        )
        if spec.decision_log
        else None
    )
    svc.decisions = decisions
    if decisions is not None:
        metrics.registry.register(DecisionLogCollector(decisions))
    metrics.registry.register(StateCollector(router.state))

    if spec.batch_routing:
        batching.install(router)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if spec.batch_routing:
            # Routing threads mostly wait for the batch leader; room for a burst to join it.
            loop = asyncio.get_running_loop()
            loop.set_default_executor(ThreadPoolExecutor(64, thread_name_prefix="route"))
        # litellm takes seconds to import: pay it at start-up, not on the first request.
        await upstream.litellm_ready()
        # Local GGUF models: started here unless the caller started them (then theirs to stop).
        # Not strict: a model that does not come up is retried while its fallbacks answer.
        owns_local = router.local is None and bool(router.local_models)
        if owns_local:
            await asyncio.to_thread(router.start_local, strict=False)
        # Breakers shared with the other workers and replicas through Redis (in the
        # background: the request path reads local state only).
        breaker_sync = None
        if isinstance(router.state, RedisStore) and router.breakers.enabled:
            # The catalogue of the router serving now (a hot reload keeps the breakers).
            def catalogue() -> list[str]:
                return [m.name for m in app.state.router.config.models]

            breaker_sync = BreakerSync(router.breakers, router.state, catalogue)
            breaker_sync.start()
        app.state.breaker_sync = breaker_sync
        await live.start()  # hot reload (SIGHUP), budget sync, shadow judge workers
        if settle_heap:
            settle()
            app.state.heap_frozen = True
        yield
        if app.state.heap_frozen:
            gc.unfreeze()
            app.state.heap_frozen = False
        await live.stop()
        if breaker_sync is not None:
            await breaker_sync.stop()
        # Requests cut past the grace period are cancelled just before this point: let them
        # record their end first. Closing off the loop keeps late rows flowing meanwhile.
        await svc.drain(5.0)
        dashboard.close()
        if decisions is not None:
            await asyncio.to_thread(decisions.close)  # flushes queued rows
        if owns_local:
            await asyncio.to_thread(router.stop_local)
        if isinstance(router.state, RedisStore):
            await router.state.close()  # its connections belong to this event loop
        await upstream.aclose()  # the pooled upstream connections of this event loop

    app = FastAPI(title="router", summary="OpenAI-compatible model router", lifespan=lifespan)
    app.state.heap_frozen = False
    app.state.router, app.state.metrics, app.state.decision_log = router, metrics, decisions
    # `router_http_responses_total` labels a path by its route: the app's own list, read as the
    # routes below are added (there is no hand-kept list of endpoints to forget one in).
    metrics.endpoint_label = EndpointLabels(app.routes)

    def hidden_names(request: Request) -> frozenset[str]:
        """What an error to this request's key must not name: the models it may not use."""
        principal = getattr(request.state, "principal", None)
        if principal is None:
            return frozenset()
        serving = svc.router  # the serving one: POST /admin/reload swaps it
        return principal.hidden_names(
            (m.name for m in serving.config.models),
            serving.policies,
            serving.config.default_policy,
        )

    errors.install(app, hidden_names)
    app.add_middleware(CancelOnDisconnect)
    if not keys.enabled:
        # Auth off: whoever reaches the port may call. A web page can reach 127.0.0.1 by
        # rebinding its own name to it; its requests name that host, and are refused.
        app.add_middleware(HostGuard, bound_host=spec.host, allowed=spec.allowed_hosts)
    # Added last: outermost, so every line has an id and every response is counted.
    app.add_middleware(RequestIdMiddleware, on_response=metrics.observe_http)

    # Wrong API keys, counted per client address (ratelimit.py, `FailedKeys`): past
    # API_KEY_FAILURES, every key from that address is a 429, the right one included. Kept in
    # the state store (Redis: every worker and replica counts together), which a hot reload
    # keeps. With auth off nothing is counted: any key is let in.
    key_failures = FailedKeys(router.state, API_KEY_FAILURES, "key-failures")

    async def api_key(
        request: Request, or_else: Callable[[str], Awaitable[Principal | None]] | None = None
    ) -> Principal:
        """The caller of an API key (or of what `or_else` makes of a key that is none); a 401
        without a key or with a wrong one, the wrong one counted; a 429 past the limit."""
        if not keys.enabled:
            return ANONYMOUS
        token = bearer_token(request.headers.get("authorization"), request.headers.get("x-api-key"))
        if token is None:
            raise missing_key()  # no guess: not counted

        async def match() -> Principal | None:
            found = keys.find(token)
            if found is None and or_else is not None:
                found = await or_else(token)
            return found

        found = await key_failures.attempt(address_of(request), match)
        if found is None:
            raise invalid_key()
        return found

    # async: a plain def dependency would cost a thread-pool hop on every request.
    async def caller(request: Request) -> Principal:
        principal = await api_key(request)
        request.state.principal = principal  # for the error handlers (hidden_names)
        return principal

    # Per-key rate limits (ratelimit.py): a 429 before any work; no extra step when none is set.
    rate_limits = RateLimits(spec, router.state)
    authenticated = caller

    async def limited_caller(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        await rate_limits.check(principal)
        return principal

    if rate_limits.enabled:
        caller = limited_caller  # every endpoint below (agents.py's too) counts against it

    # Where a key's data is read, deleted or scored (feedback, stored responses), the admin
    # key is a caller too, and may do so for every key's data (it makes no requests itself).
    async def owner_or_admin(request: Request) -> Principal:
        headers = request.headers

        async def admin_key(token: str) -> Principal | None:
            # Not an API key: the admin key, or a guess at it, counted against the client's
            # address as on /admin/* (a 429 once too many were wrong), and as a wrong API key.
            return ADMIN if await live.admin_key_matches(request, token) else None

        principal = await api_key(request, admin_key)
        if principal is ANONYMOUS and is_admin(
            spec, headers.get("authorization"), headers.get("x-api-key")
        ):
            # Auth off: any key is let in, so a wrong one is no failure to count.
            principal = ADMIN
        request.state.principal = principal
        if principal is not ADMIN and rate_limits.enabled:
            await rate_limits.check(principal)
        return principal

    Caller = Annotated[Principal, Depends(caller)]
    Owner = Annotated[Principal, Depends(owner_or_admin)]

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        router = svc.router  # the serving one: POST /admin/reload swaps it
        writing = decisions is None or decisions.failed is None
        # With a spool, a database outage loses no row (they wait on disk): still ready, as
        # during a Redis outage. Without one, rows wait in memory and may be dropped: unready.
        ok = writing or decisions.spool is not None
        body = {"status": "ready" if writing else "degraded", "policies": sorted(router.policies)}
        body["pid"] = os.getpid()  # which worker process answered (`router serve --workers N`)
        # How the encoder runs in this process, as measured at start-up (core/autotune.py).
        plan = getattr(router.encoder, "plan", None)
        if plan is not None:
            body["encoder"] = plan.to_json()
        # Scorer version and hash, config hash, when they were loaded (hot reload).
        body["versions"] = live.ready_versions()
        if not writing:
            body["detail"] = "decision log writes are failing" + (
                f"; rows wait in the spool ({decisions.queued} so far)"
                if decisions.spool is not None
                else ""
            )
        # Open circuits do not make the proxy unready: fallbacks still answer. Shown for ops.
        body["circuits"] = {m: s["state"] for m, s in router.breakers.snapshot().items()}
        # Shared state: "memory", "redis", or "degraded" (Redis out: per process; still ready).
        shared = isinstance(router.state, RedisStore)
        body["state"] = ("degraded" if router.state.degraded else "redis") if shared else "memory"
        # Local models' servers: starting, ready, restarting, failed (their fallbacks answer).
        if router.local_models:
            snap = router.local.snapshot() if router.local is not None else {}
            body["local_models"] = {
                n: snap.get(n, {"state": "not started"}) for n in router.local_models
            }
        return JSONResponse(body, 200 if ok else 503)

    # HEAD too, for load balancers' and uptime monitors' checks; left out of the schema, which
    # documents the GETs.
    for path, probe in (("/health", health), ("/ready", ready)):
        app.add_api_route(path, probe, methods=["HEAD"], include_in_schema=False)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    def anthropic_client(request: Request) -> bool:
        """An Anthropic client: its SDKs send `anthropic-version` with every request, and read
        the Models API's own objects (`type`, `display_name`, `created_at`; `has_more`)."""
        return "anthropic-version" in request.headers

    def anthropic_model(d: dict) -> dict:
        # Anthropic's ModelInfo; `created_at` is the epoch, as for a release date unknown.
        return {"type": "model", "id": d["id"], "display_name": d["id"], "created_at": EPOCH}

    def model_objects(principal: Principal) -> list[dict]:
        router = svc.router  # the serving one: POST /admin/reload swaps it
        data = [
            {"id": n, "object": "model", "created": 0, "owned_by": "router"}
            for n in router_model_names(router)
        ]
        data += [
            {
                "id": m.name,
                "object": "model",
                "created": 0,
                "owned_by": m.litellm_model.split("/")[0] if "/" in m.litellm_model else "router",
            }
            for m in router.config.models
        ]
        return [d for d in data if principal.may_use(d["id"])]

    @app.get("/v1/models")
    async def models(request: Request, principal: Caller) -> dict:
        data = model_objects(principal)
        if not anthropic_client(request):
            return {"object": "list", "data": data}
        ids = [d["id"] for d in data]  # one page: Anthropic's list object
        first, last = (ids[0], ids[-1]) if ids else (None, None)
        out = [anthropic_model(d) for d in data]
        return {"data": out, "has_more": False, "first_id": first, "last_id": last}

    # `:path`: policy models have a slash ("router/balanced"; clients send it as %2F).
    @app.get("/v1/models/{model_id:path}")
    async def model(request: Request, model_id: str, principal: Caller) -> dict:
        found = [d for d in model_objects(principal) if d["id"] == model_id]
        if found and anthropic_client(request):
            return anthropic_model(found[0])
        if not found:  # not allowed for this key reads as unknown, as in the list
            raise errors.APIError(
                404,
                f"model {model_id[:256]!r} does not exist; GET /v1/models lists the router "
                "models and the catalogue",
                "model",
                "model_not_found",
            )
        return found[0]

    # The body is read and checked by hand (schema.py); the schema only documents it.
    @app.post("/v1/route", openapi_extra=openapi_body())
    async def route(request: Request, principal: Caller) -> Response:
        return await svc.route(request, principal)

    @app.post("/v1/chat/completions", openapi_extra=openapi_body())
    async def chat(request: Request, principal: Caller) -> Response:
        return await svc.chat(request, principal)

    # Agent-facing APIs (agents.py): Responses, Anthropic Messages, completions, embeddings.
    install_agents(app, svc, caller, owner_or_admin)

    # POST /admin/reload, versions, budget and drift gauges, the shadow judge (admin.py).
    live = install_live(app, svc, spec, keys, metrics, decisions, key_failures)
    # GET /dashboard and GET /admin/stats: the figures of the decision log (dashboard.py).
    dashboard = install_dashboard(app, svc, live, spec.decision_log)

    @app.post("/v1/feedback", openapi_extra=feedback.openapi_feedback())
    async def give_feedback(request: Request, principal: Owner) -> Response:
        return await feedback.feedback(
            request, svc.router, decisions, spec.max_body_bytes, principal
        )

    return app
