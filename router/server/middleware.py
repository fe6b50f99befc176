"""A request id for every request (headers `x-request-id` and `request-id`), `nosniff` on every
answer, and one access-log line; a browser's body sent without a content type refused; with auth off, a Host this proxy is
not known by refused; model requests cancelled when their client goes."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import uuid
from collections.abc import Callable, Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.server.errors import APIError, error_response

log = logging.getLogger("router.server.access")


def cross_site_simple_post(scope: Scope) -> bool:
    """A POST with a body and no content type, from a web page (it names its `Origin`).

    The proxy tolerates a body without a content type (some clients send none), and such a
    request is one a browser sends from any site without asking the server first (no CORS
    preflight): `fetch("http://127.0.0.1:8000/v1/chat/completions", {method: "POST", body:
    new Blob([json])})`. With auth off (no keys, the default), any page its user opens could
    then spend the provider keys. A JSON content type makes the browser ask first, which this
    proxy (no CORS) refuses; clients outside a browser send no Origin and are not affected.
    """
    if scope.get("method") != "POST":
        return False
    headers = {k.lower(): v for k, v in scope.get("headers", ())}
    body = headers.get(b"content-length", b"0").strip() not in (b"", b"0")
    body = body or b"transfer-encoding" in headers
    return body and b"origin" in headers and b"content-type" not in headers


class RequestIdMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware) so streamed bodies pass straight through."""

    def __init__(self, app: ASGIApp, on_response: Callable[[str, int], None] | None = None) -> None:
        self.app = app
        self.on_response = on_response  # (path, status) of every response: the metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Generated, never taken from the client: it is the decision log's primary key.
        rid = "req_" + uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        t0 = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                if "x-request-id" not in headers:
                    headers.append("x-request-id", rid)
                # Anthropic's name for it, which its SDK reads (`message._request_id`, an
                # error's `request_id`): the id feedback and the decision log know.
                if "request-id" not in headers:
                    headers.append("request-id", headers["x-request-id"])
                # Every answer is JSON, an event stream or the dashboard's own page: a browser
                # must never sniff one into HTML (an error that echoes a client's text).
                if "x-content-type-options" not in headers:
                    headers.append("x-content-type-options", "nosniff")
            await send(message)

        try:
            if cross_site_simple_post(scope):
                refused = APIError(
                    415,
                    "content-type: a request from a web page must be sent as application/json",
                    "content-type",
                    "unsupported_media_type",
                )
                await error_response(refused, scope.get("path", ""))(scope, receive, send_with_id)
                return
            await self.app(scope, receive, send_with_id)
        finally:
            if self.on_response is not None:
                self.on_response(scope.get("path", ""), status)
            log.info(
                "request",
                extra={
                    "request_id": rid,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "ms": round((time.perf_counter() - t0) * 1000, 2),
                },
            )


def host_name(header: str) -> str:
    """The host of a Host header, lowercased, without its port, an IPv6 address's brackets or a
    final dot."""
    host = header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class HostGuard:
    """With auth off, a request is answered only when its Host is this machine by a loopback
    name or address, the address the request came in on, the host the server is bound to
    (`server.host`), or one of `server.allowed_hosts`; any other is a 421.

    DNS rebinding: a web page at http://evil.example:8000 has its name re-resolved to
    127.0.0.1, and its scripts then read this proxy as their own origin, with no key needed
    and the operator's provider keys to spend. The browser still sends `Host: evil.example`,
    which no one addresses this proxy by. An address as the Host needs no DNS to rebind, so
    the one the connection came in on is answered (a proxy on 0.0.0.0 reached by its LAN
    address); names other than `localhost` must be listed. A request without a Host (not
    from a browser: they always send one) is answered.
    """

    def __init__(self, app: ASGIApp, bound_host: str, allowed: Iterable[str] = ()) -> None:
        self.app = app
        allowed = {h.lower() for h in allowed}
        self.any_host = "*" in allowed
        self.names = {h for h in allowed if not h.startswith("*.")} | {host_name(bound_host)}
        self.suffixes = tuple(h[1:] for h in allowed if h.startswith("*."))  # ".example.com"

    def allows(self, host: str, local_address: str | None) -> bool:
        """Whether a request naming `host` that came in on `local_address` is answered."""
        if self.any_host or host in self.names or host.endswith(self.suffixes):
            return True
        if host == "localhost" or host.endswith(".localhost"):  # loopback by RFC 6761
            return True
        ip = _ip(host)
        if ip is None:
            return False
        mapped = getattr(ip, "ipv4_mapped", None)
        return (
            ip.is_loopback
            or (mapped is not None and mapped.is_loopback)
            or (local_address is not None and ip == _ip(local_address))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the proxy has no websocket route
            await self.app(scope, receive, send)
            return
        raw = next((v for k, v in scope.get("headers", ()) if k.lower() == b"host"), None)
        server = scope.get("server")
        local = server[0] if server else None
        host = host_name(raw.decode("latin-1")) if raw is not None else None
        if host is None or self.allows(host, local):
            await self.app(scope, receive, send)
            return
        refused = APIError(
            421,
            f"host {host[:100]!r} is not one this proxy answers with auth off (a web page "
            "rebinding its name to this machine would send it): use 127.0.0.1 or localhost, "
            "list the name in server.allowed_hosts, or turn auth on (server.keys)",
            "host",
            "host_not_allowed",
        )
        await error_response(refused, scope.get("path", ""))(scope, receive, send)


# The endpoints that call a model: their work is for the client alone, so it stops with it.
MODEL_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/completions", "/v1/embeddings"}
)


class CancelOnDisconnect:
    """A model request whose client has gone before its answer started is cancelled, upstream
    call and all.

    Starlette stops a streamed answer when its client leaves, but a whole answer's handler runs
    on: the model (a local one answers one request at a time) generated for nobody while the
    next request waited, and a client that gives up and retries (the OpenAI SDK retries a
    time-out twice) queued its retries behind it. Once the app has the whole body, this reads
    the connection for the disconnect, hands it on to the app (a stream's own listener hears
    it) and, while no answer has started, cancels the request; the handler records the 499.
    """

    def __init__(self, app: ASGIApp, on_response: Callable[[str, int], None] | None = None) -> None:
        self.app = app
        self.on_response = on_response  # (path, status) of every response: the metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in MODEL_PATHS:
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        gone, body_read = asyncio.Event(), asyncio.Event()
        state = {"started": False, "over": False, "cancelled": False}

        async def app_receive() -> Message:
            if body_read.is_set():
                await gone.wait()  # only the watcher reads the connection now
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            elif not message.get("more_body", False):
                body_read.set()
            return message

        async def app_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        async def watch() -> None:
            await body_read.wait()
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            if task is not None and not state["started"] and not state["over"]:
                state["cancelled"] = True
                task.cancel()

        watcher = asyncio.create_task(watch())
        try:
            await self.app(scope, app_receive, app_send)
        except asyncio.CancelledError:
            if not state["cancelled"]:
                raise  # the server's own cancellation (a shutdown): not ours to swallow
        finally:
            state["over"] = True
            watcher.cancel()
            if state["cancelled"] and task is not None and task.cancelling():
                task.uncancel()  # ours is handled: the request ends as a normal (499) one
