"""The OpenAI-compatible proxy, end to end: the official openai client against the app served on
127.0.0.1, with the test upstream behind it. Nothing here depends on timing."""

from __future__ import annotations

import json
import logging
import re
from unittest.mock import ANY

import httpx
import openai
import pytest

from router import Router
from router.server import create_app
from tests.proxy import Proxy, shared_server_router

PROMPT = "What is 17 * 23? Show the multiplication."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "look something up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
]
RECEIPT = [
    "x-router-model",
    "x-router-policy",
    "x-router-domain",
    "x-router-domain-confidence",
    "x-router-difficulty",
    "x-router-reason",
    "x-router-escalated",
    "x-router-fallbacks",
    "x-router-latency-ms",
    "x-request-id",
]


@pytest.fixture(scope="session")
def server_router(test_config, tmp_path_factory, upstream) -> Router:
    return shared_server_router(test_config, tmp_path_factory, upstream)


@pytest.fixture(scope="module")
def proxy(server_router, tmp_path_factory):
    spec = server_router.config.server.model_copy(
        update={
            "decision_log": str(tmp_path_factory.mktemp("log") / "decisions.db"),
            "max_body_bytes": 20_000,
            "keys_env": None,
        }
    )
    p = Proxy(create_app(server_router, spec)).start()
    yield p
    p.stop()


@pytest.fixture
def client(proxy):
    return openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)


@pytest.fixture
def aclient(proxy):
    return openai.AsyncOpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)


def rows(proxy, request_id: str | None = None) -> list[dict]:
    import sqlite3

    proxy.decision_log.flush()
    con = sqlite3.connect(proxy.decision_log.path)
    con.row_factory = sqlite3.Row
    try:
        if request_id:
            return [
                dict(r)
                for r in con.execute("SELECT * FROM decisions WHERE request_id=?", (request_id,))
            ]
        return [dict(r) for r in con.execute("SELECT * FROM decisions")]
    finally:
        con.close()


def assert_receipt(headers, model: str | None = None) -> None:
    for h in RECEIPT:
        assert h in headers, h
        assert headers[h].isascii()
    if model:
        assert headers["x-router-model"] == model


# ---- chat completions ---------------------------------------------------------------------


def test_non_streaming_with_receipt_and_decision_log(client, proxy, server_router):
    raw = client.chat.completions.with_raw_response.create(
        model="router", messages=[{"role": "user", "content": PROMPT}]
    )
    resp = raw.parse()
    assert resp.choices[0].message.content == "echo: " + PROMPT
    assert_receipt(raw.headers, resp.model)
    assert resp.model in {"small-math", "small-general", "large"}
    assert raw.headers["x-router-policy"] == "balanced"
    # The proxy adds no routing of its own: its receipt is the SDK's decision.
    sdk = server_router.route(PROMPT)
    assert raw.headers["x-router-domain"] == sdk.domain and resp.model == sdk.model
    assert raw.headers["x-router-escalated"] in {"true", "false"}
    float(raw.headers["x-router-domain-confidence"])
    float(raw.headers["x-router-latency-ms"])
    (row,) = rows(proxy, raw.headers["x-request-id"])
    assert row["model"] == resp.model and row["status"] == 200 and row["policy"] == "balanced"
    assert row["prompt_tokens"] == 10 and row["completion_tokens"] == 5
    assert row["large_cost_estimate"] >= row["cost_estimate"] > 0
    assert row["prompt"] is None  # prompt logging is off by default
    assert json.loads(row["decision"])["model"] == resp.model


def test_reason_header_is_ascii(client):
    raw = client.chat.completions.with_raw_response.create(
        model="router", messages=[{"role": "user", "content": "Write a haiku about autumn rain"}]
    )
    reason = raw.headers["x-router-reason"]
    assert reason.isascii() and "->" in reason and "→" not in reason


def test_streaming_with_receipt_and_usage(client, proxy, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="router",
        messages=[{"role": "user", "content": "Tell me a story about a fox"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert_receipt(raw.headers)
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: Tell me a story about a fox"
    assert {c.model for c in chunks} == {raw.headers["x-router-model"]}
    assert chunks[-1].usage.total_tokens == 15
    assert upstream.requests[-1]["stream_options"] == {"include_usage": True}
    (row,) = rows(proxy, raw.headers["x-request-id"])
    assert row["stream"] == 1 and row["status"] == 200 and row["completion_tokens"] == 5


def test_a_stream_without_usage_asked_is_still_costed(client, proxy, upstream):
    """The proxy asks the upstream for a stream's usage (its cost is counted from it) but does
    not pass the usage chunk to a client that did not ask for it."""
    raw = client.chat.completions.with_raw_response.create(
        model="router",
        messages=[{"role": "user", "content": "Tell me a story about a fox"}],
        stream=True,
    )
    chunks = list(raw.parse())
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert upstream.requests[-1]["stream_options"] == {"include_usage": True}
    (row,) = rows(proxy, raw.headers["x-request-id"])
    assert row["prompt_tokens"] == 10 and row["completion_tokens"] == 5
    assert row["cost_estimate"] > 0


def test_stream_ends_with_done(proxy):
    body = {
        "model": "router",
        "stream": True,
        "messages": [{"role": "user", "content": "hi there"}],
    }
    with httpx.stream("POST", proxy.base_url + "/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-router-model"]
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    assert all(ln.startswith("data: ") for ln in lines)
    # As OpenAI's: every choice carries finish_reason, null until the choice ends.
    choices = [c for ln in lines[:-1] for c in json.loads(ln[6:])["choices"]]
    assert [c["finish_reason"] for c in choices] == [None] * (len(choices) - 1) + ["stop"]


async def test_async_client_streaming_and_concurrency(aclient):
    import asyncio

    async def one(i: int) -> str:
        resp = await aclient.chat.completions.create(
            model="router",
            messages=[{"role": "user", "content": f"Question number {i}: name a colour"}],
        )
        return resp.choices[0].message.content

    answers = await asyncio.gather(*(one(i) for i in range(8)))
    assert answers == [f"echo: Question number {i}: name a colour" for i in range(8)]
    stream = await aclient.chat.completions.create(
        model="router/flaky", messages=[{"role": "user", "content": "hello there"}], stream=True
    )
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts) == "echo: hello there"


def test_parameters_and_unknown_fields_pass_through(client, upstream):
    schema = {"type": "json_object"}
    client.chat.completions.create(
        model="router",
        messages=[{"role": "user", "content": "Give me a JSON object with a colour"}],
        temperature=0.3,
        max_tokens=50,
        stop=["END"],
        seed=42,
        n=1,
        response_format=schema,
        user="user-7",
        extra_body={"my_vendor_flag": {"a": 1}, "top_k": 3},
    )
    sent = upstream.requests[-1]
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 50 and sent["seed"] == 42
    assert sent["stop"] == ["END"] and sent["response_format"] == schema and sent["n"] == 1
    assert sent["my_vendor_flag"] == {"a": 1} and sent["top_k"] == 3


def test_a_parameter_the_model_does_not_take_is_a_400_naming_it_and_the_switch(client, upstream):
    """litellm refuses `verbosity` for this model; the client hears it in the router's terms
    (not "set litellm.drop_params"), as OpenAI's own unsupported_parameter, and no other model
    is tried: another one would not cure the request."""
    sent_before = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="small-general",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"verbosity": "low"},
        )
    err = e.value.body
    assert err["code"] == "unsupported_parameter" and err["param"] == "verbosity"
    assert "small-general does not take the parameter 'verbosity'" in err["message"]
    assert "drop_params: true on small-general" in err["message"]
    assert "litellm.drop_params" not in err["message"]
    assert len(upstream.requests) == sent_before  # nothing was sent


def test_drop_params_leaves_out_what_the_model_does_not_take_and_says_so(client, upstream, proxy):
    r = client.chat.completions.with_raw_response.create(
        model="router/lenient",
        messages=[{"role": "user", "content": "hi"}],
        temperature=0.5,
        extra_body={"verbosity": "low", "top_k": 3},
    )
    assert r.parse().choices[0].message.content == "echo: hi"
    assert r.headers["x-router-dropped-params"] == "verbosity"
    sent = upstream.requests[-1]
    # Only what it does not take is left out: a standard parameter it takes and a
    # provider's own field still go.
    assert "verbosity" not in sent and sent["temperature"] == 0.5 and sent["top_k"] == 3
    # The decision log keeps it too, on the attempt that left it out.
    (row,) = rows(proxy, r.headers["x-request-id"])
    assert json.loads(row["attempts"]) == [
        {"model": "lenient", "ok": True, "error": None, "ms": ANY, "dropped": ["verbosity"]}
    ]
    # A request with nothing to leave out says nothing.
    r = client.chat.completions.with_raw_response.create(
        model="router/lenient", messages=[{"role": "user", "content": "hi"}]
    )
    assert "x-router-dropped-params" not in r.headers


def test_max_completion_tokens_pass_through(client, upstream):
    client.chat.completions.create(
        model="large", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=33
    )
    assert upstream.requests[-1]["max_completion_tokens"] == 33


def test_tool_calls_non_streaming_and_streaming(client, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="router",
        messages=[{"role": "user", "content": "Find the weather in Paris"}],
        tools=TOOLS,
        tool_choice="auto",
    )
    resp = raw.parse()
    call = resp.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup" and json.loads(call.function.arguments)["q"]
    assert resp.choices[0].finish_reason == "tool_calls"
    # Only tool-capable models qualify (hard rule).
    assert raw.headers["x-router-model"] in {"small-math", "large"}
    assert (
        upstream.requests[-1]["tools"] == TOOLS and upstream.requests[-1]["tool_choice"] == "auto"
    )
    stream = client.chat.completions.create(
        model="router", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS, stream=True
    )
    assert list(stream)  # streamed through without error


def test_pinned_catalogue_model_bypasses_routing(client):
    raw = client.chat.completions.with_raw_response.create(
        model="small-general",
        messages=[{"role": "user", "content": "Prove Fermat's little theorem"}],
    )
    assert raw.parse().model == "small-general"
    assert raw.headers["x-router-model"] == "small-general"
    assert "pinned" in raw.headers["x-router-reason"]


def test_named_policy_and_fallback_receipt(client, proxy):
    raw = client.chat.completions.with_raw_response.create(
        model="router/flaky", messages=[{"role": "user", "content": "hello there"}]
    )
    assert raw.parse().model == "large"
    h = raw.headers
    assert h["x-router-policy"] == "flaky" and h["x-router-model"] == "large"
    assert h["x-router-fallbacks"] == "broken,large"
    assert h["x-router-attempts"] == "keyless:failed,broken:failed,large:ok"
    assert "fell back to large" in h["x-router-reason"]
    (row,) = rows(proxy, h["x-request-id"])
    assert row["fell_back"] == 1
    assert [a["model"] for a in json.loads(row["attempts"])] == ["keyless", "broken", "large"]


def test_streaming_falls_back_before_first_token(client):
    raw = client.chat.completions.with_raw_response.create(
        model="router/flaky", messages=[{"role": "user", "content": "hello there"}], stream=True
    )
    assert raw.headers["x-router-model"] == "large"
    assert (
        "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        == "echo: hello there"
    )


def test_stream_failing_midway_ends_with_an_error_event(client, proxy):
    stream = client.chat.completions.create(
        model="cut", messages=[{"role": "user", "content": "one two three four five"}], stream=True
    )
    got = []
    with pytest.raises(openai.APIError, match="mid-way"):
        for c in stream:
            got.append(c.choices[0].delta.content)
    assert got  # part of the answer arrived before the cut
    body = {"model": "cut", "stream": True, "messages": [{"role": "user", "content": "a b c d e"}]}
    with httpx.stream("POST", proxy.base_url + "/chat/completions", json=body, timeout=60) as r:
        lines = [ln for ln in r.iter_lines() if ln]
        rid = r.headers["x-request-id"]
    assert "[DONE]" not in lines[-1]
    err = json.loads(lines[-1].removeprefix("data: "))["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == "stream_error"
    (row,) = rows(proxy, rid)
    assert row["status"] == 502 and row["error"]


# ---- other endpoints ----------------------------------------------------------------------


def test_models_lists_router_models_and_catalogue(client, server_router):
    ids = [m.id for m in client.models.list()]
    assert ids[:1] == ["router"]
    assert {f"router/{p}" for p in server_router.policies} <= set(ids)
    assert {m.name for m in server_router.config.models} <= set(ids)


def test_a_model_can_be_retrieved_by_id(client, server_router):
    # The openai SDK sends "router/balanced" as router%2Fbalanced.
    for name in ("router", "router/balanced", "large"):
        m = client.models.retrieve(name)
        assert m.id == name and m.object == "model"
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("gpt-17")
    assert e.value.body["code"] == "model_not_found" and "gpt-17" in e.value.body["message"]


def test_route_endpoint_returns_the_decision_without_calling(proxy, upstream, server_router):
    before = len(upstream.requests)
    r = httpx.post(
        proxy.base_url + "/route",
        json={"model": "router", "messages": [{"role": "user", "content": PROMPT}]},
        timeout=60,
    )
    assert r.status_code == 200
    d = r.json()
    sdk = server_router.route(PROMPT)
    assert (d["domain"], d["model"], d["reason"]) == (sdk.domain, sdk.model, sdk.reason)
    assert d["policy"] == "balanced" and d["attempts"] == []
    assert {"model", "reason", "fallbacks", "large_cost_estimate", "routing_ms"} <= set(d)
    assert r.headers["x-router-model"] == d["model"]
    assert len(upstream.requests) == before


def test_health_and_ready(proxy):
    assert httpx.get(proxy.url + "/health").json() == {"status": "ok"}
    r = httpx.get(proxy.url + "/ready")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    # Load balancers' checks that send HEAD get the same status, and no body.
    for path in ("/health", "/ready"):
        r = httpx.head(proxy.url + path)
        assert r.status_code == 200 and r.content == b"", path


def test_metrics(client, proxy):
    client.chat.completions.create(model="router", messages=[{"role": "user", "content": PROMPT}])
    client.chat.completions.create(
        model="router/flaky", messages=[{"role": "user", "content": "hey"}]
    )
    r = httpx.get(proxy.url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert re.search(
        r'router_requests_total\{domain="[a-z]+",model="[^"]+",policy="balanced",status="200"\} \d',
        text,
    )
    assert 'router_fallbacks_total{model="large",policy="flaky"}' in text
    for name in (
        "router_escalations_total",
        "router_routing_seconds_bucket",
        "router_upstream_seconds_bucket",
        'router_tokens_total{kind="completion"',
        "router_cost_usd_total",
        "router_large_cost_usd_total",
    ):
        assert name in text, name

    def total(metric: str) -> float:
        return sum(float(v) for v in re.findall(rf"^{metric}\{{[^}}]*\}} (\S+)$", text, re.M))

    assert total("router_large_cost_usd_total") >= total("router_cost_usd_total") > 0


def test_refusals_before_routing_are_counted_by_endpoint_and_status(proxy):
    def count(path: str, status: str) -> float:
        text = httpx.get(proxy.url + "/metrics").text
        line = f'router_http_responses_total{{path="{path}",status="{status}"}} '
        return sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith(line))

    before = count("/v1/chat/completions", "400"), count("other", "404")
    bad = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "router"})
    assert bad.status_code == 400  # no messages: refused before routing, so no decision row
    for probe in ("/wp-login.php", "/.env", "/v2/anything"):  # one label for them all
        assert httpx.get(proxy.url + probe).status_code == 404
    assert count("/v1/chat/completions", "400") == before[0] + 1
    assert count("other", "404") == before[1] + 3
    httpx.get(proxy.url + "/v1/models/large")
    assert count("/v1/models/{id}", "200") >= 1


def test_every_route_is_counted_under_its_own_label(proxy):
    """`router_http_responses_total` takes its labels from the app's routes: no endpoint falls
    into "other" for want of a hand-kept list; an id is folded into its route's template, the
    dashboard's files are one label."""
    from collections import Counter

    def counts() -> dict[tuple[str, str], float]:
        text = httpx.get(proxy.url + "/metrics").text
        pattern = r'^router_http_responses_total\{path="([^"]*)",status="(\d+)"\} (\S+)$'
        return {(p, s): float(n) for p, s, n in re.findall(pattern, text, re.MULTILINE)}

    labels: dict[str, str] = {}  # a path to send -> its label
    for route in proxy.app.routes:
        label = re.sub(r"\{[^}]*\}", "{id}", route.path)
        if label.startswith("/dashboard/static/"):
            label = "/dashboard/static"
        labels[re.sub(r"\{[^}]*\}", "some-id", route.path)] = label
    assert "/v1/messages/count_tokens" in labels  # the one a hand-kept list had left out
    before = counts()
    for path in labels:  # a method no route takes: a 405 by path, with no side effect
        assert httpx.request("PATCH", proxy.url + path).status_code == 405, path
    after = counts()  # (the scrapes count themselves too: 200s)
    gained = {k[0]: n - before.get(k, 0.0) for k, n in after.items() if k[1] == "405"}
    assert {k: n for k, n in gained.items() if n} == Counter(labels.values())


def test_a_cache_hit_counts_its_routing_in_metrics_as_its_receipt_and_row_say():
    """A hit served a large model's answer the policy escalated to, on a session's turn: its
    receipt and its decision-log row say escalated (and the turn); /metrics must agree, or
    the escalation rate from the metrics differs from the dashboard's (from the log)."""
    from router.core.decision import Decision
    from router.server.metrics import Metrics
    from router.server.receipts import receipt_headers
    from router.serving.decision_log import decision_row

    hit = Decision(
        model="large",
        tier="large",
        policy="balanced",
        domain="math",
        domain_confidence=0.9,
        difficulty=0.8,
        gain=None,
        success={},
        reason="difficulty 0.80 > max_difficulty 0.6 -> escalated to large",
        fallbacks=[],
        cost_estimate=1e-4,
        large_cost_estimate=1e-4,
        escalated=True,
        session="c-abc",
        sticky=False,
        cache={"status": "hit", "kind": "exact", "saved_cost": 1e-4},
    )
    assert receipt_headers(hit, "req_x", 1.0)["x-router-escalated"] == "true"
    assert decision_row(hit, "req_x")["escalated"] is True
    m = Metrics()
    m.observe(200, hit, (10, 5), (0.0, 1e-4))
    value = m.registry.get_sample_value
    assert value("router_escalations_total", {"policy": "balanced"}) == 1
    assert value("router_session_turns_total", {"policy": "balanced", "outcome": "routed"}) == 1
    # Still no upstream call: no tokens, no cost, no upstream time.
    assert value("router_cost_usd_total", {"model": "large"}) is None
    assert value("router_tokens_total", {"model": "large", "kind": "prompt"}) is None
    assert (
        value(
            "router_cache_requests_total", {"policy": "balanced", "outcome": "hit", "kind": "exact"}
        )
        == 1
    )


def test_access_log_is_json_ready_and_has_no_prompt(client, caplog):
    secret_prompt = "my very private question about zebras"
    with caplog.at_level(logging.INFO, logger="router.server"):
        client.chat.completions.create(
            model="router", messages=[{"role": "user", "content": secret_prompt}]
        )
    recs = [r for r in caplog.records if r.name == "router.server" and r.msg == "chat"]
    assert recs and recs[-1].model and recs[-1].status == 200 and recs[-1].key_name
    from router.server.logs import JsonFormatter

    for r in caplog.records:
        line = JsonFormatter().format(r)
        json.loads(line)
        assert "zebras" not in line


# ---- errors -------------------------------------------------------------------------------


def _error(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in resp.text
    assert resp.headers["x-request-id"]
    return body["error"]


def post(proxy, body, **kw) -> httpx.Response:
    return httpx.post(proxy.base_url + "/chat/completions", timeout=60, **({"json": body} | kw))


def test_400_names_the_field(proxy, client):
    e = _error(
        post(proxy, {"model": "router", "messages": [{"role": "robot", "content": "x"}]}), 400
    )
    assert e["param"] == "messages[0].role" and e["type"] == "invalid_request_error"
    e = _error(post(proxy, {"model": "router"}), 400)
    assert e["param"] == "messages"
    e = _error(post(proxy, {"model": "router", "messages": [], "temperature": "hot"}), 400)
    assert e["param"] == "temperature"
    e = _error(post(proxy, {"model": "router", "messages": []}), 400)
    assert e["param"] == "messages"
    e = _error(
        post(proxy, None, content=b"{not json", headers={"content-type": "application/json"}), 400
    )
    assert e["code"] == "invalid_json"
    e = _error(post(proxy, [1, 2]), 400)
    # A hard rule that nothing satisfies names the field too.
    img = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]
    e = _error(post(proxy, {"model": "router/slowonly", "messages": img}), 400)
    assert e["param"] == "messages" and "images" in e["message"]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="router", messages=[{"role": "robot", "content": "x"}])


def test_404_unknown_model_and_policy(proxy, client):
    e = _error(
        post(proxy, {"model": "gpt-17", "messages": [{"role": "user", "content": "x"}]}), 404
    )
    assert e["param"] == "model" and e["code"] == "model_not_found"
    _error(
        post(proxy, {"model": "router/nope", "messages": [{"role": "user", "content": "x"}]}), 404
    )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "x"}])
    _error(httpx.get(proxy.url + "/no/such/path"), 404)


def test_413_body_too_large(proxy):
    big = {"model": "router", "messages": [{"role": "user", "content": "x" * 30_000}]}
    e = _error(post(proxy, big), 413)
    assert e["code"] == "request_too_large"


def test_502_when_every_model_fails_with_receipt(proxy, client):
    r = post(proxy, {"model": "router/allbroken", "messages": [{"role": "user", "content": "hi"}]})
    e = _error(r, 502)
    assert e["type"] == "upstream_error" and "broken" in e["message"]
    assert_receipt(r.headers, "broken")
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="router/allbroken", messages=[{"role": "user", "content": "hi"}]
        )


def test_504_on_upstream_timeout(proxy):
    r = post(proxy, {"model": "slow", "messages": [{"role": "user", "content": "hi"}]})
    e = _error(r, 504)
    assert e["type"] == "timeout_error"
    assert r.headers["x-router-model"] == "slow" and r.headers["x-router-policy"] == "slowonly"


def test_429_after_retries_honouring_retry_after(proxy, upstream):
    before = sum(1 for b in upstream.requests if b.get("model") == "fail-429")
    r = post(proxy, {"model": "limited", "messages": [{"role": "user", "content": "hi"}]})
    e = _error(r, 429)
    assert e["type"] == "rate_limit_error"
    # retries: 2 → three tries, no hidden client retries on top.
    assert sum(1 for b in upstream.requests if b.get("model") == "fail-429") - before == 3


def test_unexpected_exception_is_an_openai_500_without_internals(
    server_router, tmp_path, monkeypatch
):
    async def boom(*a, **k):
        raise RuntimeError("secret internal detail /etc/passwd")

    spec = server_router.config.server.model_copy(update={"decision_log": None, "keys_env": None})
    app = create_app(server_router, spec)
    p = Proxy(app).start()
    try:
        monkeypatch.setattr(server_router, "achat", boom)
        r = post(p, {"model": "router", "messages": [{"role": "user", "content": "hi"}]})
        e = _error(r, 500)
        assert "secret" not in r.text and e["type"] == "server_error"
    finally:
        p.stop()


def test_prompt_logging_when_enabled(server_router, tmp_path):
    spec = server_router.config.server.model_copy(
        update={"decision_log": str(tmp_path / "d.db"), "log_prompts": True, "keys_env": None}
    )
    p = Proxy(create_app(server_router, spec)).start()
    try:
        r = post(p, {"model": "router", "messages": [{"role": "user", "content": "log me please"}]})
        assert r.status_code == 200
        (row,) = rows(p, r.headers["x-request-id"])
        assert "log me please" in row["prompt"]
    finally:
        p.stop()
