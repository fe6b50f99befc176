"""The proxy's live features: hot reload (POST /admin/reload, SIGHUP), versions on /ready,
the budget controllers' sync, the shadow judge's workers, and their gauges on /metrics.

Hot reload builds a new Router (router/learning/reload.py) off the event loop and swaps it in with one
assignment (`svc.router`): a request reads the router once and keeps it, so requests in flight
finish on the old scorer, policies and catalogue; a config that does not load is answered with
its error and the old one keeps serving. With several workers or replicas, a reload bumps a
generation counter in the shared state and every other process reloads itself on its next sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from router.core.config import ServerSpec
from router.learning.reload import reload_router, versions_of
from router.learning.shadow import ShadowJudge, follow_reload
from router.server.auth import KeyRing, admin_secret
from router.server.errors import APIError
from router.server.ratelimit import FailedKeys, address_of
from router.serving.state import RedisStore

log = logging.getLogger("router.server")

GENERATION_KEY = "reload:generation"
# Wrong admin keys a client address may send, in the `limits` notation (a moving window).
ADMIN_FAILURES = "5/minute"
# A cache a reload replaced is closed this long after the swap: requests that hold the old
# router (a long stream among them) store their answers in it until they end.
OLD_CACHE_CLOSE_S = 60.0


class LiveFeatures:
    """What runs beside the request path: reloads, budget sync, shadow judging, gauges."""

    def __init__(
        self,
        app: FastAPI,
        svc: Any,
        spec: ServerSpec,
        keys: KeyRing,
        decisions: Any,
        key_failures: FailedKeys,
    ) -> None:
        self.app = app
        self.svc = svc
        self.spec = spec
        self.keys = keys
        self.loaded_at = time.time()
        self.versions: dict[str, Any] = versions_of(svc.router, self.loaded_at)
        self.reloads = 0
        self.reload_failures = 0
        self.last_error: str | None = None
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task] = set()  # old caches waiting to be closed
        self._generation = 0
        self._task: asyncio.Task | None = None
        self._hup = False
        self.decisions = decisions
        shadow = svc.router.config.shadow
        self.shadow = ShadowJudge(lambda: self.svc.router, shadow, decisions) if shadow else None
        svc.shadow = self.shadow
        # A hot reload keeps the state store, so the counts outlive it.
        self.failed_admin_keys = FailedKeys(svc.router.state, ADMIN_FAILURES, "admin-failures")
        # The wrong API keys' counts (app.py's): a key that is not the admin key is told a
        # valid API key (403) from a wrong one (401), so it is a guess at the API keys too.
        self.key_failures = key_failures

    @property
    def router(self) -> Any:
        return self.svc.router

    # ---- admin auth -------------------------------------------------------------------------

    def admin_key(self) -> str | None:
        return admin_secret(self.spec)

    async def admin_key_matches(self, request: Request, key: str) -> bool:
        """Whether `key` is the admin key; a wrong one is counted against the client's
        address, which past `ADMIN_FAILURES` gets a 429 whatever key it sends."""
        admin = self.admin_key()
        if admin is None:
            return False  # nothing to guess: no failure is counted
        return await self.failed_admin_keys.attempt(
            address_of(request), lambda: hmac.compare_digest(key.encode(), admin.encode())
        )

    async def check_admin(self, request: Request) -> None:
        """401 without a valid key, 403 with a key that is not the admin key, 429 after too
        many wrong keys from the client's address (wrong admin keys, or wrong API keys)."""
        auth = request.headers.get("authorization") or ""
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise APIError(
                401,
                "missing admin key: send 'Authorization: Bearer <admin key>'",
                None,
                "invalid_api_key",
                {"www-authenticate": "Bearer"},
            )
        if await self.admin_key_matches(request, token):
            return
        admin = self.admin_key()
        # A valid API key (any key with auth off): known, but not an admin.
        if self.keys.enabled and not await self.key_failures.attempt(
            address_of(request), lambda: self.keys.find(token)
        ):
            raise APIError(
                401, "invalid admin key", None, "invalid_api_key", {"www-authenticate": "Bearer"}
            )
        why = "this key is not the admin key"
        if admin is None:
            why += f" (none is configured: set server.admin_key_env, ${self.spec.admin_key_env})"
        raise APIError(403, why, None, "not_admin")

    # ---- reload -----------------------------------------------------------------------------

    async def reload(self, reason: str, announce: bool = True) -> dict[str, Any]:
        """Build a new router and swap it in; raises ValueError (the old one keeps serving)."""
        async with self._lock:
            old = self.svc.router
            t0 = time.perf_counter()
            try:
                new = await asyncio.to_thread(reload_router, old)
            except ValueError as e:
                self.reload_failures += 1
                self.last_error = str(e)
                log.warning(
                    "reload (%s) rejected, the old configuration keeps serving: %s", reason, e
                )
                raise
            if self.spec.batch_routing:
                from router.server import batching

                batching.install(new)
            before = self.versions
            self.svc.router = new  # the swap: requests that hold `old` finish on it
            self.app.state.router = new
            self._hide_secrets_of(new)
            self._close_later(old.response_cache, new.response_cache)
            # Before any await: the first request on `new` finds its `shadow:` section followed.
            self.shadow = follow_reload(self.shadow, lambda: self.svc.router, self.decisions)
            self.svc.shadow = self.shadow
            self.loaded_at = time.time()
            self.versions = await asyncio.to_thread(versions_of, new, self.loaded_at)
            self.reloads += 1
            self.last_error = None
            changed = {
                k: before[k]["hash"] != self.versions[k]["hash"] for k in ("scorer", "config")
            }
            log.info(
                "reloaded (%s) in %.0f ms: scorer %s, config %s",
                reason,
                (time.perf_counter() - t0) * 1000,
                self.versions["scorer"]["version"],
                self.versions["config"]["hash"],
                extra={"changed": changed},
            )
            if announce:
                with contextlib.suppress(Exception):  # other processes catch up on their own
                    self._generation = int(await new.state.incr(GENERATION_KEY))
            return {"status": "reloaded", "changed": changed, "versions": self.versions}

    def _close_later(self, old_cache: Any, new_cache: Any) -> None:
        """Close the cache a reload replaced (its Redis connections), once the requests that
        hold the old router have had `OLD_CACHE_CLOSE_S` to finish with it."""
        if old_cache is None or old_cache is new_cache:
            return

        async def close() -> None:
            await asyncio.sleep(OLD_CACHE_CLOSE_S)
            with contextlib.suppress(Exception):  # a connection already gone is closed enough
                await old_cache.close()

        task = asyncio.get_running_loop().create_task(close())
        self._closing.add(task)  # a reference, so the task is not collected mid-way
        task.add_done_callback(self._closing.discard)

    def _hide_secrets_of(self, new: Any) -> None:
        """Error texts hide the provider keys of the new catalogue too: a model added by the
        reload may have a key (its `api_key_env`) that no error was hiding until now. Keys of
        models it removed stay hidden (requests in flight still call them)."""
        self.svc.hide_secrets(list(new.calls.provider_keys()))

    async def _reload_quietly(self, reason: str, announce: bool = True) -> None:
        with contextlib.suppress(ValueError):  # logged by reload()
            await self.reload(reason, announce)

    def _on_hup(self) -> None:
        asyncio.get_running_loop().create_task(self._reload_quietly("SIGHUP"))

    # ---- the background loop ----------------------------------------------------------------

    async def start(self) -> None:
        with contextlib.suppress(Exception):
            self._generation = int(await self.router.state.get(GENERATION_KEY) or 0)
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_hup)
            self._hup = True
        except (NotImplementedError, RuntimeError, ValueError):
            self._hup = False  # not the main thread (tests), or no SIGHUP on this platform
        if self.shadow is not None:
            self.shadow.start()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._hup:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.shadow is not None:
            await self.shadow.stop()

    async def _run(self) -> None:
        while True:
            router = self.router
            await asyncio.sleep(router.budgets.sync_s if router.budgets else 1.0)
            try:
                # Through Redis alone: in-process state holds this worker's own counts, which
                # the controller has already; "synced" through it, every receipt said shared.
                if router.budgets and isinstance(router.state, RedisStore):
                    await router.budgets.sync(router.state)
                gen = await router.state.get(GENERATION_KEY)
                if gen is not None and int(gen) > self._generation:
                    self._generation = int(gen)
                    await self._reload_quietly("another process reloaded", announce=False)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must outlive any one failure
                log.exception("live features: background step failed")

    # ---- /ready -----------------------------------------------------------------------------

    def ready_versions(self) -> dict[str, Any]:
        out = {**self.versions, "reloads": self.reloads}
        if self.last_error:
            out["last_reload_error"] = self.last_error
        return out


def install_live(
    app: FastAPI,
    svc: Any,
    spec: ServerSpec,
    keys: KeyRing,
    metrics: Any,
    decisions,
    key_failures: FailedKeys,
) -> LiveFeatures:
    """Add /admin/reload and the live gauges to the app; the app's lifespan starts and stops
    the returned LiveFeatures. `key_failures`: the wrong API keys' counts (app.py's)."""
    live = LiveFeatures(app, svc, spec, keys, decisions, key_failures)
    app.state.live = live
    metrics.registry.register(LiveCollector(live))

    # Out of /openapi.json: the admin's endpoints are documented in docs/learning.md and
    # docs/dashboard.md, not advertised to every caller.
    @app.post("/admin/reload", include_in_schema=False)
    async def admin_reload(request: Request) -> JSONResponse:
        await live.check_admin(request)
        try:
            body = await live.reload("POST /admin/reload")
        except ValueError as e:
            raise APIError(
                422,
                f"reload rejected, the old configuration keeps serving: {e}",
                None,
                "invalid_config",
            ) from None
        return JSONResponse(body)

    return live


class LiveCollector:
    """Budget, drift and shadow gauges, read from the current router at scrape time."""

    def __init__(self, live: LiveFeatures) -> None:
        self.live = live

    def collect(self):
        router = self.live.router
        yield from _budget_metrics(router)
        yield from _drift_metrics(router)
        if self.live.shadow is not None:
            yield from _shadow_metrics(self.live.shadow)
        reloads = CounterMetricFamily(
            "router_reloads", "Hot reloads of scorer, policies and catalogue.", labels=["result"]
        )
        reloads.add_metric(["ok"], self.live.reloads)
        reloads.add_metric(["rejected"], self.live.reload_failures)
        yield reloads


def _budget_metrics(router):
    threshold = GaugeMetricFamily(
        "router_budget_threshold",
        "The escalation threshold the budget controller has the policy use now.",
        labels=["policy", "field"],
    )
    share = GaugeMetricFamily(
        "router_budget_large_share",
        "Share of the window's requests routed to a large model (every replica).",
        labels=["policy"],
    )
    spend = GaugeMetricFamily(
        "router_budget_usd_per_hour",
        "Estimated spend rate over the window, USD per hour.",
        labels=["policy"],
    )
    target = GaugeMetricFamily(
        "router_budget_target", "The budget's target.", labels=["policy", "kind"]
    )
    moves = CounterMetricFamily(
        "router_budget_adjustments", "Times the controller moved the threshold.", labels=["policy"]
    )
    for name, c in sorted(router.budgets.controllers.items()):
        snap = c.snapshot()
        threshold.add_metric([name, c.field], snap["threshold"])
        if snap["large_share"] is not None:
            share.add_metric([name], snap["large_share"])
        if snap["usd_per_hour"] is not None:
            spend.add_metric([name], snap["usd_per_hour"])
        for kind, value in snap["target"].items():
            target.add_metric([name, kind], value)
        moves.add_metric([name], snap["adjustments"])
    yield from (threshold, share, spend, target, moves)


def _drift_metrics(router):
    mon = router.drift
    psi = GaugeMetricFamily(
        "router_drift_psi",
        "Population stability index of live scores vs the scorer's training data.",
        labels=["signal"],
    )
    alarm = GaugeMetricFamily(
        "router_drift_alarm", "1 while a signal's PSI is past the threshold.", labels=["signal"]
    )
    samples = GaugeMetricFamily(
        "router_drift_samples", "Live decisions in the drift window.", labels=["signal"]
    )
    threshold = GaugeMetricFamily("router_drift_threshold", "PSI past which a warning is logged.")
    if mon.enabled:
        scores = mon.check()  # at most a few ms on a 1,000-request window
        alarms = mon.alarms()
        for sig, n in mon.samples().items():
            samples.add_metric([sig], n)
            if scores.get(sig) is not None:
                psi.add_metric([sig], scores[sig])
            alarm.add_metric([sig], 1 if alarms.get(sig) else 0)
        threshold.add_metric([], mon.threshold)
    yield from (psi, alarm, samples, threshold)


def _shadow_metrics(shadow: ShadowJudge):
    st = shadow.stats()
    samples = CounterMetricFamily(
        "router_shadow_samples", "Shadow samples by outcome.", labels=["outcome"]
    )
    for outcome in ("judged", "failed"):
        samples.add_metric([outcome], st[outcome])
    dropped = CounterMetricFamily(
        "router_shadow_dropped", "Shadow samples not taken, by reason.", labels=["reason"]
    )
    for reason, n in sorted(st["dropped"].items()):
        dropped.add_metric([reason], n)
    spend = CounterMetricFamily(
        "router_shadow_spend_usd", "Estimated spend of shadow answers and judge calls, USD."
    )
    spend.add_metric([], st["spend_usd"])
    today = GaugeMetricFamily(
        "router_shadow_spend_today_usd", "Shadow spend this UTC day (all replicas), USD."
    )
    today.add_metric([], st["spend_today_usd"])
    cap = GaugeMetricFamily("router_shadow_budget_usd_per_day", "The shadow judge's daily budget.")
    cap.add_metric([], st["max_usd_per_day"])
    agree = GaugeMetricFamily(
        "router_shadow_agreement",
        "Share of judged samples where the judge agrees with the routing decision.",
    )
    if st["judged"]:
        agree.add_metric([], st["agreement"])
    queue = GaugeMetricFamily("router_shadow_queue", "Shadow samples waiting.")
    queue.add_metric([], st["queued"])
    yield from (samples, dropped, spend, today, cap, agree, queue)
