"""`GET /dashboard` and `GET /admin/stats`: what the proxy saved, at what quality, on which
traffic, and whether anything is drifting or broken.

Both read the figures from the decision log (`LogReader`, router/serving/decision_log/figures.py)
and the shared state, never one worker's counters, so every worker and replica shows the same.
A figure set is computed at most once per `CACHE_S` per window and worker, off the event loop,
one at a time: a dashboard left open costs the proxy a few ms every few seconds.

Access takes the admin key (`server.admin_key_env`), as `Authorization: Bearer <key>` or through
the login form, which trades it for an HttpOnly, SameSite=Strict session cookie: an HMAC of its
expiry under the admin key, so every worker checks it without shared state and changing the key
ends every session. The cookie opens the dashboard and `/admin/stats` (reads), never
`POST /admin/reload`. Pages carry a Content-Security-Policy that allows nothing but this proxy.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from router.server import panel
from router.server.errors import APIError
from router.serving.decision_log import LogReader, parse_since, safe_url
from router.serving.decision_log.schema import DecisionLogError, database_url
from router.serving.state import RedisStore

log = logging.getLogger("router.server")

COOKIE = "router_dashboard"
SESSION_S = 12 * 3600  # a login lasts this long
CACHE_S = 2.0  # figures are recomputed at most this often (per window, per worker)
REFRESH_S = 5.0  # how often an open dashboard asks again
MAX_FORM_BYTES = 4096
ASSETS = {"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript"}
PAGE_HEADERS = {
    # Nothing but this proxy: the page's own script and stylesheet, fetches to itself.
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


# ---- sessions ---------------------------------------------------------------------------------


def session_token(admin_key: str, expires: int) -> str:
    """`<expiry>.<HMAC-SHA256 of it under the admin key>`."""
    mac = hmac.new(admin_key.encode(), f"router-dashboard:{expires}".encode(), hashlib.sha256)
    return f"{expires}.{mac.hexdigest()}"


def valid_session(token: str | None, admin_key: str | None, now: float | None = None) -> bool:
    if not token or not admin_key:
        return False
    expires, _, _ = token.partition(".")
    # ASCII digits of a sane length only: str.isdigit() takes "²" and int() refuses it, as it
    # refuses 5,000 digits; a cookie anyone can send must never be a 500.
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
        return False
    if int(expires) < (time.time() if now is None else now):
        return False
    # As bytes: compare_digest raises TypeError on a str with a non-ASCII character, and a
    # cookie's value is whatever bytes its sender chose.
    expected = session_token(admin_key, int(expires))
    return hmac.compare_digest(token.encode("utf-8", "surrogateescape"), expected.encode())


# ---- the figures ------------------------------------------------------------------------------


class Dashboard:
    """The figures of the serving router's decision log plus the live shared state."""

    def __init__(self, svc: Any, live: Any, location: str | None) -> None:
        self.svc = svc
        self.live = live
        self.location = location
        self._reader: LogReader | None = None
        self._lock = asyncio.Lock()  # one computation at a time: the others take its result
        self._unreadable = False  # the log's database did not answer the last read

    def reader(self) -> LogReader | None:
        if self.location is None:
            return None
        if self._reader is None:
            self._reader = LogReader(self.location)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    async def stats(self, since_s: float) -> dict[str, Any]:
        """`GET /admin/stats`: the log's figures of the window, the live state, when."""
        router = self.svc.router  # the serving one: a hot reload may swap the scorer
        figures = None
        reader = self.reader()
        unreadable = False
        if reader is not None:
            drift = router.config.drift
            reader.drift_reference = getattr(router.scorer, "training_distributions_", None)
            reader.drift_window, reader.drift_threshold = drift.window, drift.threshold
            reader.drift_min_samples = drift.min_samples
            try:
                async with self._lock:
                    figures = await asyncio.to_thread(reader.figures, since_s, None, CACHE_S)
            except (SQLAlchemyError, DecisionLogError) as e:
                # A database outage (the rows wait in the spool): the live state still shows,
                # and /admin/stats says 503 rather than a 500. One warning per outage, naming
                # the error's kind (never the URL, which may hold a password).
                unreadable = True
                if not self._unreadable:
                    log.warning(
                        "dashboard: the decision log cannot be read (%s)",
                        type(getattr(e, "orig", None) or e).__name__,
                    )
            if unreadable != self._unreadable and not unreadable:
                log.info("dashboard: the decision log can be read again")
            self._unreadable = unreadable
        out = {
            **(figures or {}),
            "decision_log": safe_url(database_url(self.location)) if self.location else None,
            "live": self.live_state(),
            "generated_at": time.time(),
        }
        if unreadable:
            out["decision_log_unavailable"] = True
        return out

    def live_state(self) -> dict[str, Any]:
        """Circuits, budget controllers and the shared state, as this worker sees them (with
        `state: redis://...` that is every worker's: breakers and budgets sync through it)."""
        router = self.svc.router
        state = "memory"
        if isinstance(router.state, RedisStore):
            state = "degraded" if router.state.degraded else "redis"
        return {
            "breakers": router.breakers.enabled,
            "circuits": router.breakers.snapshot(),
            "budgets": {n: c.snapshot() for n, c in sorted(router.budgets.controllers.items())},
            "state": state,
        }


def _since(request: Request, default: str = "1h") -> tuple[str, float]:
    text = request.query_params.get("since", default)
    try:
        return text, parse_since(text)
    except ValueError as e:
        raise APIError(400, str(e), "since", "invalid_since") from None


def _secure(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto.split(",")[0].strip().lower() == "https"


def _with_session(response: Response, request: Request, admin_key: str) -> Response:
    expires = int(time.time()) + SESSION_S
    response.set_cookie(
        COOKIE,
        session_token(admin_key, expires),
        max_age=SESSION_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


def install_dashboard(app: FastAPI, svc: Any, live: Any, location: str | None) -> Dashboard:
    """Add the dashboard's pages and `GET /admin/stats` to the app."""
    board = Dashboard(svc, live, location)
    app.state.dashboard = board
    assets = {name: panel.asset(name) for name in ASSETS}  # package data, read once

    def admitted(request: Request) -> bool:
        """A valid session cookie, or a valid admin Bearer key (raises 401/403 for a bad one)."""
        if valid_session(request.cookies.get(COOKIE), live.admin_key()):
            return True
        if request.headers.get("authorization"):
            live.check_admin(request)
            return True
        return False

    def login(message: str, status: int = 401, since: str = "") -> HTMLResponse:
        configured = live.admin_key() is not None
        if not configured:
            message = "The dashboard is closed: no admin key is configured."
        headers = {**PAGE_HEADERS, "www-authenticate": "Bearer"}
        page = panel.login_page(message, configured, since)
        return HTMLResponse(page, status, headers=headers)

    @app.get(
        "/admin/stats",
        summary="The dashboard's figures as JSON",
        description="Requests, spend against the all-large counterfactual, escalations, model "
        "mix, domains, latency, cascades, quality, drift (from the decision log, every worker "
        "and replica) and live circuits and budgets. `since`: the window, e.g. 15m, 1h, 7d. "
        "Takes the admin key.",
    )
    async def admin_stats(
        request: Request,
        since: Annotated[str, Query(description="the window: 90s, 15m, 1h, 24h, 7d")] = "1h",
    ) -> JSONResponse:
        if not admitted(request):
            live.check_admin(request)  # raises the 401 that names what is missing
        _, seconds = _since(request)
        body = await board.stats(seconds)
        if body.get("decision_log_unavailable"):
            raise APIError(
                503,
                "the decision log cannot be read just now; retry later",
                None,
                "decision_log_unavailable",
                {"retry-after": "5"},
            )
        return JSONResponse(body, headers={"cache-control": "no-store"})

    async def panel_of(seconds: float) -> str:
        """The panel of a window: its figures (none when the log is off or unreadable), the
        live state, and whether the log could be read."""
        stats = await board.stats(seconds)
        figures = stats if "window" in stats else None
        return panel.panel(figures, stats["live"], bool(stats.get("decision_log_unavailable")))

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard(request: Request) -> Response:
        if not admitted(request):
            return login("Log in with the admin key.", since=request.query_params.get("since", ""))
        since, seconds = _since(request)
        page = panel.dashboard_page(await panel_of(seconds), since, REFRESH_S)
        response = HTMLResponse(page, headers=PAGE_HEADERS)
        if request.headers.get("authorization"):  # the page's own fetches need the cookie
            _with_session(response, request, live.admin_key())
        return response

    @app.get("/dashboard/panel", include_in_schema=False)
    async def dashboard_panel(request: Request) -> Response:
        if not admitted(request):
            return HTMLResponse("", 401, headers={**PAGE_HEADERS, "www-authenticate": "Bearer"})
        _, seconds = _since(request)
        return HTMLResponse(await panel_of(seconds), headers=PAGE_HEADERS)

    @app.post("/dashboard/login", include_in_schema=False)
    async def dashboard_login(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return login("That form was too large.", 413)
        key = (parse_qs(body.decode("utf-8", "replace")).get("key") or [""])[0].strip()
        admin = live.admin_key()
        if admin is None or not key or not hmac.compare_digest(key.encode(), admin.encode()):
            return login("That is not the admin key.")
        since = request.query_params.get("since", "")
        target = "/dashboard" + (f"?since={quote(since)}" if since else "")
        return _with_session(RedirectResponse(target, 303, headers=PAGE_HEADERS), request, admin)

    @app.post("/dashboard/logout", include_in_schema=False)
    async def dashboard_logout(request: Request) -> Response:
        response = RedirectResponse("/dashboard", 303, headers=PAGE_HEADERS)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    def serve_asset(name: str):
        async def handler() -> Response:
            return Response(
                assets[name],
                media_type=ASSETS[name],
                headers={"x-content-type-options": "nosniff", "cache-control": "no-cache"},
            )

        return handler

    # One route per file, each a fixed name: nothing here maps a path onto the disk.
    for name in ASSETS:
        app.add_api_route(
            f"/dashboard/static/{name}", serve_asset(name), methods=["GET"], include_in_schema=False
        )
    return board
