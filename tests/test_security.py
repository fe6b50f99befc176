"""Security: constant-time keys, no secret or prompt in logs / errors / headers / decision log,
a body size limit, artifacts that load without running code, no file ever read or served on
a request's say-so.

The bait: the `leaky` model's upstream answers 500 with a message quoting the provider key it
was sent and the prompt, so every path an upstream error takes (fallback reason header, error
body, log line, decision-log row) is exercised with a secret in it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import shutil
import socket
import sqlite3
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from router.core.config import APIKeySpec, ConfigError, ServerSpec, load_config
from router.core.scorer import Scorer, ScorerError, default_scorer_path
from router.sdk.router import Router
from router.server import auth, create_app
from router.server.auth import KeyRing
from router.server.logs import JsonFormatter
from router.serving.providers import UpstreamError
from tests.proxy import Proxy, router_from, write_fault_config

ALICE = "sk-alice-secret-0123456789"
PROVIDER = "sk-provider-TOPSECRET-123456"
PROMPT = "my confidential question about the merger"
SECRETS = (ALICE, PROVIDER, ALICE + "x")  # the last: a wrong key is not logged either


@pytest.fixture(scope="module")
def leaky_router(test_config, tmp_path_factory, upstream, router):
    mp = pytest.MonkeyPatch()
    mp.setenv("ROUTER_TEST_PROVIDER_KEY", PROVIDER)
    cfg = write_fault_config(test_config, tmp_path_factory.mktemp("sec") / "cfg", upstream.base_url)
    yield router_from(cfg, router)
    mp.undo()


def start(r: Router, tmp: Path, **server) -> Proxy:
    spec = ServerSpec(
        keys=(APIKeySpec(name="alice", key=ALICE),),
        keys_env=None,
        decision_log=str(tmp / "d.db"),
        **server,
    )
    return Proxy(create_app(r, spec)).start()


def dump(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


def exchange(p: Proxy) -> list[httpx.Response]:
    """Requests that take every path a secret could leak through."""
    out = []
    for model in ("router/fb-leaky", "router/only-leaky"):
        for stream in (False, True):
            out.append(
                httpx.post(
                    p.base_url + "/chat/completions",
                    json={
                        "model": model,
                        "stream": stream,
                        "messages": [{"role": "user", "content": PROMPT}],
                    },
                    headers={"authorization": f"Bearer {ALICE}"},
                    timeout=60,
                )
            )
    for bad in (f"Bearer {ALICE}x", f"Basic {ALICE}", ALICE):
        out.append(httpx.get(p.base_url + "/models", headers={"authorization": bad}, timeout=60))
    out.append(httpx.get(p.url + "/metrics", timeout=60))
    out.append(httpx.get(p.url + "/ready", timeout=60))
    return out


def test_no_secret_or_prompt_in_logs_errors_headers_or_decision_log(
    leaky_router, tmp_path, caplog, capfd
):
    caplog.set_level(logging.INFO)  # what the server logs at, every logger
    caplog.set_level(logging.DEBUG, logger="router")  # and all of our own
    p = start(leaky_router, tmp_path)
    try:
        responses = exchange(p)
        p.decision_log.flush()
    finally:
        p.stop()
    fallback, failed = responses[0], responses[2]
    assert fallback.status_code == 200 and failed.status_code == 502
    assert [r.status_code for r in responses[4:7]] == [401, 401, 401]
    # The bait was taken: the upstream's error reached the receipt and the error body, hidden.
    assert "***" in fallback.headers["x-router-reason"]
    assert "***" in failed.json()["error"]["message"]
    for r in responses:
        seen = r.text + json.dumps(dict(r.headers))
        for s in SECRETS:
            assert s not in seen, (s, r.request.url)
    logs = "\n".join(JsonFormatter().format(rec) for rec in caplog.records)
    out, err = capfd.readouterr()
    assert any(rec.msg == "chat" for rec in caplog.records)  # the logs were captured
    db = dump(tmp_path / "d.db")
    assert "alice" in db and "[prompt]" in db  # known by name; the quoted prompt was scrubbed
    for where, text in (("logs", logs), ("stdout", out), ("stderr", err), ("decision log", db)):
        for s in (*SECRETS, PROMPT):
            assert s not in text, (s, where)


def test_no_provider_key_or_prompt_in_the_sdks_receipts_decision_log_or_traces(
    leaky_router, tmp_path
):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    leaky_router.tracer = provider.get_tracer("test")
    log = leaky_router.open_decision_log(tmp_path / "sdk.db")
    try:
        answer = leaky_router.chat(PROMPT, policy="fb-leaky")
        streamed = leaky_router.chat(PROMPT, policy="fb-leaky", stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        # No model answers: the call still leaves its row, as a proxy request does.
        with pytest.raises(UpstreamError) as failed:
            leaky_router.chat(PROMPT, policy="only-leaky")
        with pytest.raises(UpstreamError) as afailed:
            asyncio.run(leaky_router.achat(PROMPT, policy="only-leaky", stream=True))
        log.flush()
    finally:
        log.close()
        leaky_router.decision_log = None
        leaky_router.tracer = None
    # The bait was taken: the cheap model's error is in the receipt, its key and the prompt
    # it quoted hidden.
    assert "bad credentials Bearer *** for [prompt]" in answer.decision.reason
    db = dump(tmp_path / "sdk.db")
    assert db.count("bad credentials Bearer ***") >= 2 and "[prompt]" in db
    con = sqlite3.connect(tmp_path / "sdk.db")
    try:
        ended = dict(con.execute("SELECT request_id, status FROM decisions").fetchall())
    finally:
        con.close()
    assert len(ended) == 4
    for e in (failed.value, afailed.value):
        assert ended[e.decision.request_id] == 502
    spans = exporter.get_finished_spans()
    traced = json.dumps(
        [(dict(s.attributes), s.status.description) for s in spans], ensure_ascii=False
    )
    assert "bad credentials Bearer ***" in traced
    for where, text in (
        ("decision log", db),
        ("traces", traced),
        ("reason", answer.decision.reason),
    ):
        for secret in (PROVIDER, PROMPT):
            assert secret not in text, (secret, where)


def test_prompt_is_in_the_decision_log_only_when_enabled(leaky_router, tmp_path):
    p = start(leaky_router, tmp_path, log_prompts=True)
    try:
        exchange(p)
        p.decision_log.flush()
    finally:
        p.stop()
    db = dump(tmp_path / "d.db")
    assert PROMPT in db  # the prompt column
    for s in SECRETS:
        assert s not in db


def test_keys_are_compared_in_constant_time(monkeypatch):
    """Every configured key is compared with hmac.compare_digest, whichever one matches."""
    calls: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def counting(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    keys = tuple(APIKeySpec(name=f"k{i}", key=f"sk-key-number-{i}") for i in range(3))
    ring = KeyRing(ServerSpec(keys=keys, keys_env=None))
    for token in ("sk-key-number-0", "sk-key-number-2", "sk-nope-00000"):
        calls.clear()
        ring.find(token)
        assert len(calls) == 3, token  # no early exit on the first match
    assert ring.find("sk-key-number-1").name == "k1"


def test_the_body_size_limit_is_on_by_default(leaky_router, tmp_path):
    assert ServerSpec().max_body_bytes == 4_000_000
    p = start(leaky_router, tmp_path, max_body_bytes=10_000)
    try:
        r = httpx.post(
            p.base_url + "/chat/completions",
            json={"model": "router", "messages": [{"role": "user", "content": "x" * 20_000}]},
            headers={"authorization": f"Bearer {ALICE}"},
            timeout=60,
        )
    finally:
        p.stop()
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


# ---- artifacts and configuration load without running code ---------------------------------


class _Payload:
    """Creates `marker` when unpickled: proof that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _evil_scorer(tmp: Path, marker: Path, as_npz: bool) -> Path:
    d = tmp / "evil-scorer"
    shutil.copytree(default_scorer_path(), d)
    if as_npz:  # an object array inside a real .npz
        np.savez(d / "weights.npz", domain_W=np.array([_Payload(marker)], dtype=object))
    else:  # a bare pickle under the .npz name
        (d / "weights.npz").write_bytes(pickle.dumps(_Payload(marker)))
    return d


@pytest.mark.parametrize("as_npz", [True, False], ids=["object-array-in-npz", "bare-pickle"])
def test_a_malicious_scorer_is_refused_without_running_it(tmp_path, as_npz, test_config, upstream):
    # tests/test_scorer.py checks a harmless object array is refused; this one carries a payload.
    marker = tmp_path / "pwned"
    d = _evil_scorer(tmp_path, marker, as_npz)
    with pytest.raises(ScorerError):
        Scorer.load(d)
    cfg = test_config.parent / "config.yaml"
    evil_cfg = tmp_path / "config.yaml"
    evil_cfg.write_text(cfg.read_text().replace("scorer: default", f"scorer: {d}"))
    shutil.copytree(cfg.parent / "policies", tmp_path / "policies")
    with pytest.raises(ScorerError):
        Router.from_config(evil_cfg)
    assert not marker.exists()


@pytest.mark.parametrize("where", ["config", "policy"])
def test_yaml_cannot_construct_python_objects(tmp_path, test_config, where):
    marker = tmp_path / "pwned"
    tag = f"!!python/object/apply:builtins.open [{str(marker)!r}, 'w']"
    shutil.copytree(test_config.parent, tmp_path / "cfg")
    cfg = tmp_path / "cfg" / "config.yaml"
    if where == "config":
        cfg.write_text(cfg.read_text() + f"\nevil: {tag}\n")
        with pytest.raises(ConfigError):
            load_config(cfg)
    else:
        (tmp_path / "cfg" / "policies" / "evil.yaml").write_text(
            f"default: {tag}\nlarge: [large]\n"
        )
        with pytest.raises(ConfigError):
            Router.from_config(cfg)
    assert not marker.exists()


# ---- nothing is read or served from disk on a request's say-so ----------------------------

_OPENED: list[str] = []
_WATCHING = False


def _audit(event: str, args: tuple) -> None:
    if _WATCHING and event == "open" and args and isinstance(args[0], str | bytes | Path):
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)  # hooks cannot be removed; this one only records while watching

API_PATHS = {
    "/health",
    "/ready",
    "/metrics",
    "/v1/models",
    "/v1/models/{model_id:path}",  # one model object, looked up by name
    "/v1/route",
    "/v1/chat/completions",
    # The agent endpoints (router/server/agents.py).
    "/v1/responses",
    "/v1/responses/{response_id}",
    "/v1/responses/{response_id}/input_items",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/feedback",  # router/server/feedback.py
    "/admin/reload",  # router/server/admin.py: admin key only
    # The dashboard (router/server/dashboard.py): admin key or its session cookie; its two
    # assets are fixed names read from the package, one route each.
    "/admin/stats",
    "/dashboard",
    "/dashboard/panel",
    "/dashboard/login",
    "/dashboard/logout",
    "/dashboard/static/dashboard.css",
    "/dashboard/static/dashboard.js",
}
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}  # FastAPI's, no files


def test_no_route_serves_files(leaky_router, tmp_path):
    from fastapi.routing import APIRoute
    from starlette.routing import Mount, Route

    app = create_app(leaky_router, ServerSpec(keys_env=None, decision_log=None))
    assert not any(isinstance(r, Mount) for r in app.routes)  # no StaticFiles, no sub-apps
    assert {r.path for r in app.routes} == API_PATHS | DOCS
    assert all(isinstance(r, APIRoute | Route) for r in app.routes)
    # The server section has no file-serving knob, and unknown keys are refused.
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "models: [{name: a, litellm_model: openai/a, input_price: 0, output_price: 0, context_window: 9}]\nserver: {static_dir: /}\n"
    )
    with pytest.raises(ConfigError, match="static_dir"):
        load_config(cfg)


TRAVERSALS = [
    "/etc/passwd",
    "/../../etc/passwd",
    "/v1/../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/static/../../etc/passwd",
    "/v1/models/..%2f..%2fetc%2fpasswd",
    "/docs/../../etc/passwd",
]
NAMES = [
    "router/../../etc/passwd",
    "router/../policies/balanced",
    "../../etc/passwd",
    "/etc/passwd",
    "router//etc/passwd",
    "file:///etc/passwd",
]


def raw_get(port: int, target: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """GET `target` exactly as written (no client-side normalisation); (status, body)."""
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_raw_get_sends_the_target_as_written():
    """The helper above really puts "/../" on the wire (checked with a listening socket)."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        seen: list[bytes] = []

        def serve() -> None:
            conn, _ = srv.accept()
            with conn:
                seen.append(conn.recv(65536))
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

        t = threading.Thread(target=serve)
        t.start()
        status, _ = raw_get(port, "/v1/../../../etc/passwd", {})
        t.join(timeout=30)
    assert status == 404
    assert seen[0].startswith(b"GET /v1/../../../etc/passwd HTTP/1.1\r\n")


def test_path_like_urls_and_names_read_no_file(leaky_router, tmp_path):
    global _WATCHING
    p = start(leaky_router, tmp_path)
    auth_h = {"authorization": f"Bearer {ALICE}"}
    try:
        _OPENED.clear()
        _WATCHING = True
        for path in TRAVERSALS:
            # Raw bytes over a socket: httpx would normalise "/../" away before sending.
            status, body = raw_get(p.port, path, auth_h)
            assert status == 404, path
            assert b"root:" not in body
        for name in NAMES:
            for endpoint in ("/chat/completions", "/route"):
                r = httpx.post(
                    p.base_url + endpoint,
                    json={"model": name, "messages": [{"role": "user", "content": "hi"}]},
                    headers=auth_h,
                    timeout=60,
                )
                assert r.status_code == 404 and r.json()["error"]["param"] == "model", name
    finally:
        _WATCHING = False
        p.stop()
    assert not [f for f in _OPENED if "passwd" in f or "policies" in f], _OPENED


def test_a_client_cannot_redirect_or_reconfigure_the_upstream_call(leaky_router, tmp_path):
    """Fields litellm takes as settings of the call are refused, naming the field: else a client
    could send the provider's key to its own server (`base_url`, `api_base`), fake an answer
    into the decision log (`mock_response`) or trip every circuit breaker (`timeout`)."""
    from tests.upstream import Upstream

    thief = Upstream().start()
    p = start(leaky_router, tmp_path)
    settings = {
        "base_url": thief.base_url,
        "api_base": thief.base_url,
        "api_key": "sk-other",
        "mock_response": "a faked answer",
        "timeout": 0.001,
        "extra_headers": {"x-a": "b"},
        "custom_llm_provider": "anthropic",
        "langfuse_host": thief.base_url,
        "success_callback": ["langfuse"],
        "mock_tool_calls": [{}],
        "_is_litellm_internal_call": True,
    }
    message = [{"role": "user", "content": PROMPT}]
    auth = {"authorization": f"Bearer {ALICE}"}
    try:
        for field, value in settings.items():
            for path, body in (
                ("/chat/completions", {"model": "leaky", "messages": message}),
                ("/route", {"model": "leaky", "messages": message}),
                ("/completions", {"model": "leaky", "prompt": PROMPT}),
            ):
                r = httpx.post(p.base_url + path, json={**body, field: value}, headers=auth)
                assert r.status_code == 400, (field, path, r.text)
                assert r.json()["error"]["param"] == field
                assert r.json()["error"]["message"].startswith(f"{field}: ")
        # A provider's own field is still passed on, and `metadata` must be an object.
        ok = httpx.post(
            p.base_url + "/chat/completions",
            json={"model": "router/fb-leaky", "messages": message, "top_k": 3},
            headers=auth,
        )
        assert ok.status_code == 200, ok.text
        bad = httpx.post(
            p.base_url + "/chat/completions",
            json={"model": "router/fb-leaky", "messages": message, "metadata": "x"},
            headers=auth,
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "metadata"
        # Its values are strings, as OpenAI's are (litellm failed on a number: a 502).
        bad = httpx.post(
            p.base_url + "/chat/completions",
            json={"model": "router/fb-leaky", "messages": message, "metadata": {"session_id": 7}},
            headers=auth,
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "metadata.session_id"
    finally:
        p.stop()
        thief.stop()
    assert thief.requests == []


# ---- a provider's own call settings, browsers, cookies -------------------------------------


class _Catcher:
    """A loopback HTTP server that records every request's line and headers (a thief)."""

    def __init__(self) -> None:
        import http.server

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                seen.append((self.path, dict(self.headers)))
                self.send_response(500)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_PUT = do_POST

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


PROVIDER_SETTINGS = [
    "aws_bedrock_runtime_endpoint",  # Bedrock: the signed request, session token and all
    "aws_sts_endpoint",
    "aws_region_name",
    "aws_access_key_id",
    "aws_session_token",
    "aws_role_name",
    "vertex_credentials",  # a credentials object may name files and URLs to read
    "vertex_project",
    "vertex_location",
    "sagemaker_base_url",
    "oci_key_file",
    "azure_endpoint",
    "gemini_api_key",
    "watsonx_region",
    "deployment_url",
    "custom_endpoint",
    "model_id",  # Bedrock: which model (or provisioned ARN) is billed
    "models",  # OpenRouter: the models that may answer instead
    "litellm_params",
    "credentials",
    "url",
]


@pytest.mark.parametrize("field", PROVIDER_SETTINGS)
def test_a_client_cannot_set_a_providers_endpoint_credentials_or_models(
    leaky_router, tmp_path, field
):
    """litellm reads a provider's own settings (`aws_bedrock_runtime_endpoint`, `vertex_*`,
    OpenRouter's `models` ...) from the same keyword arguments as its body fields (`top_k`):
    each is refused, naming it, as `base_url` is."""
    p = start(leaky_router, tmp_path)
    message = [{"role": "user", "content": PROMPT}]
    auth_h = {"authorization": f"Bearer {ALICE}"}
    try:
        for path, body in (
            ("/chat/completions", {"model": "leaky", "messages": message}),
            ("/route", {"model": "leaky", "messages": message}),
            ("/completions", {"model": "leaky", "prompt": PROMPT}),
        ):
            r = httpx.post(p.base_url + path, json={**body, field: "x"}, headers=auth_h)
            assert r.status_code == 400, (field, path, r.text)
            assert r.json()["error"]["param"] == field
    finally:
        p.stop()


def test_a_client_cannot_send_a_signed_bedrock_call_to_its_own_server(
    test_config, router, tmp_path, monkeypatch
):
    """The exploit end to end: a Bedrock model in the catalogue, and a client that names its
    own server as the runtime endpoint would receive the proxy's AWS-signed request."""
    pytest.importorskip("botocore")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOPERATOR00000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-secret-access-key")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "OPERATOR-SESSION-TOKEN")
    monkeypatch.setenv("AWS_REGION_NAME", "us-east-1")
    import yaml

    shutil.copytree(test_config.parent, tmp_path / "cfg")
    cfg_path = tmp_path / "cfg" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["models"].append(
        {
            "name": "claude-bedrock",
            "litellm_model": "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
            "input_price": 0.25,
            "output_price": 1.25,
            "context_window": 200000,
            "timeout": 10,
            "retries": 0,
        }
    )
    cfg_path.write_text(yaml.safe_dump(cfg))
    (tmp_path / "cfg" / "policies" / "bedrock.yaml").write_text(
        "default: [claude-bedrock]\nlarge: [claude-bedrock]\n"
    )
    thief = _Catcher()
    p = start(router_from(cfg_path, router), tmp_path)
    try:
        r = httpx.post(
            p.base_url + "/chat/completions",
            json={
                "model": "router/bedrock",
                "messages": [{"role": "user", "content": "hi"}],
                "aws_bedrock_runtime_endpoint": thief.url,
            },
            headers={"authorization": f"Bearer {ALICE}"},
            timeout=60,
        )
    finally:
        p.stop()
        thief.stop()
    assert thief.seen == [], thief.seen  # the operator's signature and session token
    assert r.status_code == 400 and r.json()["error"]["param"] == "aws_bedrock_runtime_endpoint"


def test_a_web_page_cannot_post_a_body_without_a_content_type(leaky_router, tmp_path, upstream):
    """A browser sends a body with no content type (a Blob) from any site without a CORS
    preflight; with auth off, any page its user opens could spend the provider keys through a
    proxy on 127.0.0.1. Such a request (it names its Origin) is a 415; without an Origin (a
    client outside a browser) the body is still taken, as is a JSON one from a page."""
    spec = ServerSpec(keys_env=None, decision_log=str(tmp_path / "d.db"))  # auth off
    p = Proxy(create_app(leaky_router, spec)).start()
    body = json.dumps(
        {"model": "large", "messages": [{"role": "user", "content": "spend it"}]}
    ).encode()
    page = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    try:
        before = len(upstream.requests)
        for path in ("/chat/completions", "/completions", "/embeddings", "/responses", "/route"):
            r = httpx.post(p.base_url + path, content=body, headers=page, timeout=60)
            assert r.status_code == 415, (path, r.text)
            assert r.json()["error"]["param"] == "content-type"
            assert "x-request-id" in r.headers
        r = httpx.post(p.base_url + "/messages", content=body, headers=page, timeout=60)
        assert r.status_code == 415 and r.json()["type"] == "error"  # Anthropic's shape
        assert len(upstream.requests) == before
        assert httpx.post(p.base_url + "/chat/completions", content=body).status_code == 200
        json_page = {**page, "content-type": "application/json"}
        r = httpx.post(p.base_url + "/chat/completions", content=body, headers=json_page)
        assert r.status_code == 200
    finally:
        p.stop()


def test_a_session_cookie_of_any_bytes_is_no_500(leaky_router, tmp_path):
    """`hmac.compare_digest` raises TypeError on a non-ASCII str: a cookie anyone can send
    must be refused like any bad one, not answered 500 with a traceback in the log."""
    p = start(leaky_router, tmp_path, admin_key="adm-0123456789abcdef")
    try:
        for value in ("9999999999.\u00e9abc", "9999999999.\u00ff" * 3, "1." + "é" * 64):
            cookie = {"cookie": f"router_dashboard={value}"}
            status, body = raw_get(p.port, "/dashboard", cookie)
            assert status == 401 and b"log in" in body, value
            status, _ = raw_get(p.port, "/admin/stats", cookie)
            assert status == 401, value
    finally:
        p.stop()


def test_every_answer_tells_a_browser_not_to_sniff_it(leaky_router, tmp_path, upstream):
    """An error that quotes a client's text (an unknown model, a bad field) is JSON; served
    without `nosniff`, an old browser could read it as HTML. Every answer carries it: JSON,
    errors, a stream, the metrics page."""
    spec = ServerSpec(keys_env=None, decision_log=str(tmp_path / "d.db"))
    p = Proxy(create_app(leaky_router, spec)).start()
    chat = {"model": "large", "messages": [{"role": "user", "content": "hi"}]}
    try:
        answers = [
            httpx.get(p.base_url + "/models"),
            httpx.get(p.base_url + "/models/<b>nope</b>"),
            httpx.post(p.base_url + "/chat/completions", json=chat, timeout=60),
            httpx.post(p.base_url + "/chat/completions", json={**chat, "model": "<b>x</b>"}),
            httpx.post(p.base_url + "/chat/completions", json={**chat, "stream": True}, timeout=60),
            httpx.get(p.url + "/metrics"),
            httpx.get(p.url + "/nowhere"),
        ]
        for r in answers:
            assert r.headers.get("x-content-type-options") == "nosniff", (r.url, r.status_code)
        assert {r.status_code for r in answers} >= {200, 404}
    finally:
        p.stop()
