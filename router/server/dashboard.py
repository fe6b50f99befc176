"""`GET /dashboard` and `GET /admin/stats`: what the proxy saved, at what quality, on which
traffic, and whether anything is drifting or broken.

Both read the figures from the decision log (`LogReader`, router/serving/decision_log/figures.py)
and the shared state, never one worker's counters, so every worker and replica shows the same.
A figure set is computed at most once per `CACHE_S` per window and worker, off the event loop,
one at a time: a dashboard left open costs the proxy a few ms every few seconds.

Access takes the admin key (`server.admin_key_env`), as `Authorization: Bearer <key>` or through
the login form, which trades it for an HttpOnly, SameSite=Strict session cookie: an HMAC of its
expiry and a random session id under the admin key, so every worker checks it without asking
anyone and changing the key ends every session. Logging out records the session id as revoked
in the shared state until the cookie would have expired, so every worker refuses it from then
on; the log-out form carries a token only the dashboard's own page knows (CSRF). The cookie
opens the dashboard and `/admin/stats` (reads), never `POST /admin/reload`. Wrong keys sent to
the login form are throttled per address like those sent to `/admin/*` (auth.py). A log-in or
log-out POST a browser marks as coming from another site is refused before anything happens:
another page can neither spend the address's wrong keys (locking the admin out) nor clear the
session cookie. Pages carry a Content-Security-Policy that allows nothing but this proxy, and
may not be framed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from router.server import panel
from router.server.errors import APIError
from router.serving.decision_log import LogReader, parse_since, safe_url
from router.serving.decision_log.schema import DecisionLogError, database_url
from router.serving.state import RedisStore, StateStore

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
    "x-frame-options": "DENY",  # frame-ancestors, for browsers that predate it
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": "no-store",
}


# ---- sessions ---------------------------------------------------------------------------------

SESSION_ID = re.compile(r"[0-9a-f]{32}")
REVOKED = "dashboard:revoked:"  # + session id, in the shared state: a logged-out session


def _mac(admin_key: str, text: str) -> str:
    return hmac.new(admin_key.encode(), text.encode(), hashlib.sha256).hexdigest()


def session_token(admin_key: str, expires: int, session_id: str | None = None) -> str:
    """`<expiry>.<session id>.<HMAC-SHA256 of both under the admin key>`; a new random session
    id unless one is given."""
    session_id = session_id or secrets.token_hex(16)
    return f"{expires}.{session_id}.{_mac(admin_key, f'router-dashboard:{expires}:{session_id}')}"


def _parts(token: str) -> tuple[int, str] | None:
    """(expiry, session id) of a well-formed token, else None."""
    expires, _, rest = token.partition(".")
    session_id, _, _ = rest.partition(".")
    # ASCII digits of a sane length only: str.isdigit() takes "²" and int() refuses it, as it
    # refuses 5,000 digits; a cookie anyone can send must never be a 500.
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
        return None
    if not SESSION_ID.fullmatch(session_id):
        return None
    return int(expires), session_id


def valid_session(token: str | None, admin_key: str | None, now: float | None = None) -> bool:
    """Whether `token` was made with this admin key and has not expired (a logout's
    revocation is checked apart: `Sessions.admits`)."""
    if not token or not admin_key:
        return False
    parts = _parts(token)
    if parts is None or parts[0] < (time.time() if now is None else now):
        return False
    # As bytes: compare_digest raises TypeError on a str with a non-ASCII character, and a
    # cookie's value is whatever bytes its sender chose.
    expected = session_token(admin_key, *parts)
    return hmac.compare_digest(token.encode("utf-8", "surrogateescape"), expected.encode())


def logout_token(admin_key: str, token: str) -> str:
    """The CSRF token of a session's log-out form: only a page served to that session has it."""
    return _mac(admin_key, f"router-dashboard-logout:{token}")


class Sessions:
    """Dashboard sessions: a cookie's HMAC says the admin made it; the shared state says
    whether it was logged out since (every worker and replica reads the same, with Redis)."""

    def __init__(self, state: Callable[[], StateStore]) -> None:
        self.state = state  # the serving router's store (a hot reload keeps it)

    async def admits(self, token: str | None, admin_key: str | None) -> bool:
        parts = _parts(token) if valid_session(token, admin_key) else None
        return parts is not None and not await self.state().get(REVOKED + parts[1])

    async def revoke(self, token: str) -> None:
        """Log this session out everywhere, until the time its cookie would have expired."""
        parts = _parts(token)
        if parts is None:
            return
        expires, session_id = parts
        await self.state().set(REVOKED + session_id, True, ttl_s=max(1.0, expires - time.time()))


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


def _with_session(response: Response, request: Request, token: str) -> Response:
    response.set_cookie(
        COOKIE,
        token,
        max_age=SESSION_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


def _new_session(admin_key: str) -> str:
    return session_token(admin_key, int(time.time()) + SESSION_S)


def _cross_site(request: Request) -> bool:
    """A request a browser says came from another site, or from another origin of this one
    (Fetch Metadata). Older browsers send none: for them the log-out form's token stands, and
    the SameSite=Strict cookie they keep home from another site's POST is never cleared."""
    return request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")


async def _form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form's fields (the first value of each); None past MAX_FORM_BYTES."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    fields = parse_qs(body.decode("utf-8", "replace"))
    return {name: values[0] for name, values in fields.items()}


def install_dashboard(app: FastAPI, svc: Any, live: Any, location: str | None) -> Dashboard:
    """Add the dashboard's pages and `GET /admin/stats` to the app."""
    board = Dashboard(svc, live, location)
    sessions = Sessions(lambda: svc.router.state)
    app.state.dashboard = board
    assets = {name: panel.asset(name) for name in ASSETS}  # package data, read once

    async def admitted(request: Request) -> bool:
        """A live session cookie, or a valid admin Bearer key (raises 401/403 for a bad one,
        429 after too many from the client's address)."""
        if await sessions.admits(request.cookies.get(COOKIE), live.admin_key()):
            return True
        if request.headers.get("authorization"):
            await live.check_admin(request)
            return True
        return False

    def login(
        message: str, status: int = 401, since: str = "", headers: dict[str, str] | None = None
    ) -> HTMLResponse:
        configured = live.admin_key() is not None
        if not configured:
            message = "The dashboard is closed: no admin key is configured."
        headers = {**PAGE_HEADERS, "www-authenticate": "Bearer", **(headers or {})}
        page = panel.login_page(message, configured, since)
        return HTMLResponse(page, status, headers=headers)

    # Out of /openapi.json, as every admin endpoint: documented in docs/dashboard.md.
    @app.get("/admin/stats", include_in_schema=False)
    async def admin_stats(
        request: Request,
        since: Annotated[str, Query(description="the window: 90s, 15m, 1h, 24h, 7d")] = "1h",
    ) -> JSONResponse:
        """The dashboard's figures as JSON, for the window `since` (admin key or session)."""
        if not await admitted(request):
            await live.check_admin(request)  # raises the 401 that names what is missing
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
        return JSONResponse(
            body, headers={"cache-control": "no-store", "x-content-type-options": "nosniff"}
        )

    async def panel_of(seconds: float) -> str:
        """The panel of a window: its figures (none when the log is off or unreadable), the
        live state, and whether the log could be read."""
        stats = await board.stats(seconds)
        figures = stats if "window" in stats else None
        return panel.panel(figures, stats["live"], bool(stats.get("decision_log_unavailable")))

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard(request: Request) -> Response:
        admin, token = live.admin_key(), request.cookies.get(COOKIE)
        fresh = not await sessions.admits(token, admin)
        if fresh:
            if not request.headers.get("authorization"):
                since = request.query_params.get("since", "")
                return login("Log in with the admin key.", since=since)
            await live.check_admin(request)
            token = _new_session(admin)  # the page's own fetches need a session cookie
        try:
            since, seconds = _since(request)
        except APIError as e:  # a page, for a browser: the same 400 naming `since`
            return HTMLResponse(panel.notice_page(e.message), 400, headers=PAGE_HEADERS)
        csrf = logout_token(admin, token)
        page = panel.dashboard_page(await panel_of(seconds), since, REFRESH_S, csrf)
        response = HTMLResponse(page, headers=PAGE_HEADERS)
        return _with_session(response, request, token) if fresh else response

    @app.get("/dashboard/panel", include_in_schema=False)
    async def dashboard_panel(request: Request) -> Response:
        if not await admitted(request):
            return HTMLResponse("", 401, headers={**PAGE_HEADERS, "www-authenticate": "Bearer"})
        _, seconds = _since(request)
        return HTMLResponse(await panel_of(seconds), headers=PAGE_HEADERS)

    @app.post("/dashboard/login", include_in_schema=False)
    async def dashboard_login(request: Request) -> Response:
        if _cross_site(request):
            # Not read, not counted: else any page the admin opens could post wrong keys
            # from the admin's own address and have it refused (429) for a minute, again
            # and again, here and on every `/admin/*` endpoint.
            return login("That log-in did not come from the dashboard's own page.", 403)
        form = await _form(request)
        if form is None:
            return login("That form was too large.", 413)
        key = form.get("key", "").strip()
        admin = live.admin_key()
        if admin is None or not key:
            return login("That is not the admin key.")
        try:
            matches = await live.admin_key_matches(request, key)
        except APIError as e:  # too many wrong keys from this address
            return login(e.message[:1].upper() + e.message[1:] + ".", 429, headers=e.headers)
        if not matches:
            return login("That is not the admin key.")
        since = request.query_params.get("since", "")
        target = "/dashboard" + (f"?since={quote(since)}" if since else "")
        response = RedirectResponse(target, 303, headers=PAGE_HEADERS)
        return _with_session(response, request, _new_session(admin))

    @app.post("/dashboard/logout", include_in_schema=False)
    async def dashboard_logout(request: Request) -> Response:
        """End the session server-side, for a POST from the dashboard's own page only: a page
        elsewhere cannot log its visitor out (it has neither the token nor the site)."""
        refused = HTMLResponse(
            panel.notice_page(
                "That log-out did not come from the dashboard's own page: you are still logged in."
            ),
            403,
            headers=PAGE_HEADERS,
        )
        if _cross_site(request):
            return refused
        form = await _form(request)
        token, admin = request.cookies.get(COOKIE), live.admin_key()
        if await sessions.admits(token, admin):
            sent = (form or {}).get("csrf", "")
            expected = logout_token(admin, token)
            if not hmac.compare_digest(sent.encode("utf-8", "surrogateescape"), expected.encode()):
                return refused
            await sessions.revoke(token)
        response = RedirectResponse("/dashboard", 303, headers=PAGE_HEADERS)
        if token is not None:
            # Only a cookie that came with the POST is cleared: the SameSite=Strict cookie
            # stays home from another site's POST, whose answer must not clear it either.
            response.delete_cookie(
                COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request)
            )
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
