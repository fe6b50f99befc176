"""Upstream faults, injected by the test upstream on 127.0.0.1 (see tests/upstream.py).

For every fault the client gets either a correct answer from a fallback model or a clean
OpenAI-format error, within the configured time-out (2 s per call here, with generous slack for
a busy machine), and the decision log records what happened. Then the circuit breaker, through
the proxy. Only lower bounds on time are asserted exactly (a wait that must happen); upper bounds
are generous and only catch hangs.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time

import httpx
import openai
import pytest

from router import UpstreamError
from router.server import create_app
from tests.learning import wait_for
from tests.proxy import FAULT_TIMEOUT_S, Proxy, router_from, write_fault_config

HANG_BOUND_S = 45.0  # far above any honest path here (≤ 2 time-outs + waits), far below a hang


@pytest.fixture(scope="module")
def fault_router(test_config, tmp_path_factory, upstream, router):
    cfg = write_fault_config(
        test_config, tmp_path_factory.mktemp("faults") / "cfg", upstream.base_url
    )
    return router_from(cfg, router)


@pytest.fixture(scope="module")
def proxy(fault_router, tmp_path_factory):
    spec = fault_router.config.server.model_copy(
        update={"decision_log": str(tmp_path_factory.mktemp("flog") / "d.db"), "keys_env": None}
    )
    p = Proxy(create_app(fault_router, spec)).start()
    yield p
    p.stop()


def row(proxy, request_id: str) -> dict:
    proxy.decision_log.flush()
    con = sqlite3.connect(proxy.decision_log.path)
    con.row_factory = sqlite3.Row
    try:
        (r,) = con.execute("SELECT * FROM decisions WHERE request_id=?", (request_id,))
        return dict(r)
    finally:
        con.close()


def chat(proxy, model: str, text: str, stream: bool = False) -> tuple[httpx.Response, float, list]:
    """POST one chat request; returns the response, seconds taken and (streamed) data lines."""
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
    t0 = time.monotonic()
    lines: list[str] = []
    with httpx.stream(
        "POST", proxy.base_url + "/chat/completions", json=body, timeout=HANG_BOUND_S
    ) as r:
        if stream and r.status_code == 200:
            lines = [ln for ln in r.iter_lines() if ln]
        else:
            r.read()
    return r, time.monotonic() - t0, lines


def openai_error(r: httpx.Response) -> dict:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in r.text
    return body["error"]


def streamed_text(lines: list[str]) -> str:
    assert lines[-1] == "data: [DONE]", lines[-3:]
    chunks = [json.loads(ln.removeprefix("data: ")) for ln in lines[:-1]]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


# fault → (what the client sees when it has no fallback, non-streaming)
BEFORE_ANSWER = {
    "f500": 502,
    "f502": 502,
    "f503": 502,
    "f429": 429,
    "refused": 502,
    "timeout": 504,
    "hang": 504,
    "stallbody": 504,
    "malformed": 502,
}
SLOW = {"timeout", "hang", "stallbody"}  # each costs one full time-out


@pytest.mark.parametrize("fault", sorted(BEFORE_ANSWER))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_fault_falls_back_to_a_correct_answer(proxy, fault, stream):
    text = f"fallback please {fault} {stream}"
    r, took, lines = chat(proxy, f"router/fb-{fault}", text, stream)
    assert r.status_code == 200, r.text
    answer = streamed_text(lines) if stream else r.json()["choices"][0]["message"]["content"]
    assert answer == "echo: " + text
    assert r.headers["x-router-model"] == "large"
    assert r.headers["x-router-attempts"] == f"{fault}:failed,large:ok"
    assert took < HANG_BOUND_S
    if fault in SLOW:
        assert took >= FAULT_TIMEOUT_S * 0.9  # it did wait for the time-out, no longer is checked
    rec = row(proxy, r.headers["x-request-id"])
    attempts = json.loads(rec["attempts"])
    assert rec["status"] == 200 and rec["fell_back"] == 1 and rec["model"] == "large"
    assert [a["model"] for a in attempts] == [fault, "large"]
    assert attempts[0]["ok"] is False and attempts[0]["error"]
    assert f"fell back to large after {fault}" in rec["reason"]


@pytest.mark.parametrize("fault", sorted(BEFORE_ANSWER))
def test_fault_without_fallback_is_a_clean_error(proxy, fault):
    r, took, _ = chat(proxy, f"router/only-{fault}", f"no way out {fault}")
    assert r.status_code == BEFORE_ANSWER[fault], r.text
    err = openai_error(r)
    assert fault in err["message"]
    assert r.headers["x-router-model"] == fault  # the receipt comes with the error
    assert took < HANG_BOUND_S
    rec = row(proxy, r.headers["x-request-id"])
    assert rec["status"] == BEFORE_ANSWER[fault] and rec["error"]
    assert json.loads(rec["attempts"])[0]["model"] == fault


def test_timeout_errors_name_the_timeout(proxy):
    r, _, _ = chat(proxy, "router/only-hang", "are you there")
    err = openai_error(r)
    assert err["type"] == "timeout_error" and err["code"] == "upstream_timeout"
    assert re.search(r"time(d)? ?out", err["message"], re.I)


def test_retry_after_is_honoured_then_the_same_model_answers(proxy, upstream):
    before = upstream.calls["retry-after-1"]
    r, took, _ = chat(proxy, "router/only-f429wait", "wait one second please")
    assert r.status_code == 200 and r.headers["x-router-model"] == "f429wait"
    assert took >= 0.9  # Retry-After: 1 was waited for
    assert upstream.calls["retry-after-1"] - before == 2


def test_a_long_retry_after_moves_on_instead_of_waiting(proxy):
    r, took, _ = chat(proxy, "router/fb-f429long", "do not wait an hour")
    assert r.status_code == 200 and r.headers["x-router-model"] == "large"
    assert took < HANG_BOUND_S


def test_an_upstream_rate_limit_passes_its_retry_after_on(proxy):
    """Every model of the chain rate limited: the 429 tells the client how long the upstream
    asked for, so its SDK waits as long instead of retrying at once (the proxy retried)."""
    r, took, _ = chat(proxy, "router/only-f429long", "rate limited for an hour")
    assert r.status_code == 429 and took < HANG_BOUND_S
    assert openai_error(r)["code"] == "rate_limited"
    assert r.headers["retry-after"] == "3600"


# ---- faults after the first token: no fallback is possible (part of the answer is out) ------

MID_STREAM = {"cut": 502, "garbage": 502, "stall": 504}


@pytest.mark.parametrize("fault", sorted(MID_STREAM))
def test_mid_stream_fault_ends_with_an_error_event_and_is_logged(proxy, fault):
    r, took, lines = chat(proxy, f"router/fb-{fault}", f"one two three four five {fault}", True)
    assert r.status_code == 200  # headers were sent with the first chunk
    assert took < HANG_BOUND_S
    assert lines[0].startswith("data: {") and "[DONE]" not in lines[-1]
    first = json.loads(lines[0].removeprefix("data: "))
    assert first["choices"][0]["delta"]["content"]  # part of the answer arrived
    err = json.loads(lines[-1].removeprefix("data: "))["error"]
    assert err["code"] == "stream_error" and "mid-way" in err["message"]
    rec = row(proxy, r.headers["x-request-id"])
    assert rec["status"] == MID_STREAM[fault] and rec["error"] and rec["stream"] == 1


def test_no_request_hangs_under_concurrent_faults(proxy):
    """Every fault at once, streamed and not: each ends, in an answer or a clean error."""
    import asyncio

    async def one(client: httpx.AsyncClient, model: str, stream: bool) -> int:
        body = {"model": model, "messages": [{"role": "user", "content": "x y z"}]}
        body["stream"] = stream
        async with client.stream("POST", "/chat/completions", json=body) as r:
            data = await r.aread()
        if r.status_code != 200:
            assert set(json.loads(data)["error"]) == {"message", "type", "param", "code"}
        elif stream:
            last = data.decode().strip().splitlines()[-1]
            assert last == "data: [DONE]" or '"error"' in last
        return r.status_code

    async def main() -> list[int]:
        async with httpx.AsyncClient(base_url=proxy.base_url, timeout=HANG_BOUND_S) as c:
            jobs = [
                one(c, f"router/{kind}-{f}", s)
                for f in [*BEFORE_ANSWER, *MID_STREAM]
                for kind in ("fb", "only")
                for s in (False, True)
            ]
            return await asyncio.gather(*jobs)

    t0 = time.monotonic()
    statuses = asyncio.run(main())
    assert time.monotonic() - t0 < 2 * HANG_BOUND_S
    assert all(s in (200, 429, 502, 504) for s in statuses), statuses


# ---- the circuit breaker, through the proxy --------------------------------------------------


@pytest.fixture
def breaker_proxy(test_config, tmp_path, upstream, router):
    cfg = write_fault_config(
        test_config, tmp_path / "cfg", upstream.base_url, {"failures": 2, "cooldown_s": 3600}
    )
    r = router_from(cfg, router)
    now = [0.0]
    r.breakers.clock = lambda: now[0]  # the cool-down passes when the test says so
    spec = r.config.server.model_copy(
        update={"decision_log": str(tmp_path / "d.db"), "keys_env": None}
    )
    p = Proxy(create_app(r, spec)).start()
    yield p, now
    p.stop()


def test_breaker_opens_skips_the_model_and_tries_it_again_later(breaker_proxy, upstream):
    p, now = breaker_proxy
    calls = lambda: upstream.calls["fail-500"]  # noqa: E731
    before = calls()
    for _ in range(2):
        r, _, _ = chat(p, "router/fb-f500", "breaker one")
        assert r.status_code == 200 and r.headers["x-router-attempts"] == "f500:failed,large:ok"
    assert calls() - before == 4  # 2 requests x (try + retry)
    # Open: f500 is skipped without a call, the fallback answers at once.
    r, _, _ = chat(p, "router/fb-f500", "breaker two")
    assert r.status_code == 200 and calls() - before == 4
    attempts = json.loads(row(p, r.headers["x-request-id"])["attempts"])
    assert attempts[0] == {"model": "f500", "ok": False, "error": "circuit open", "ms": 0.0}
    ready = httpx.get(p.url + "/ready").json()
    assert ready["status"] == "ready" and ready["circuits"]["f500"] == "open"
    metrics = httpx.get(p.url + "/metrics").text
    assert 'router_circuit_state{model="f500"} 2.0' in metrics
    assert 'router_circuit_opened_total{model="f500"} 1.0' in metrics
    # With no fallback: 503 with Retry-After, and still no call.
    r, _, _ = chat(p, "router/only-f500", "breaker three")
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
    assert openai_error(r)["code"] == "circuit_open" and calls() - before == 4
    # After the cool-down one trial goes through again (it fails: open again).
    now[0] += 3600
    assert httpx.get(p.url + "/ready").json()["circuits"]["f500"] == "half_open"
    r, _, _ = chat(p, "router/fb-f500", "breaker four")
    assert r.status_code == 200 and calls() - before == 6
    assert httpx.get(p.url + "/ready").json()["circuits"]["f500"] == "open"


def test_breaker_closes_when_the_model_recovers(breaker_proxy, upstream):
    p, now = breaker_proxy
    upstream.down.add("switch-a")
    try:
        for _ in range(2):
            r, _, _ = chat(p, "router/fb-switch", "down for now")
            assert r.headers["x-router-model"] == "large"
    finally:
        upstream.down.discard("switch-a")
    assert httpx.get(p.url + "/ready").json()["circuits"]["switch"] == "open"
    r, _, _ = chat(p, "router/fb-switch", "still skipped")
    assert r.headers["x-router-attempts"] == "switch:failed,large:ok"  # skipped, not called
    now[0] += 3600
    r, _, _ = chat(p, "router/fb-switch", "back again")
    assert r.status_code == 200 and r.headers["x-router-model"] == "switch"  # the trial answered
    assert httpx.get(p.url + "/ready").json()["circuits"]["switch"] == "closed"


@pytest.mark.parametrize("path", ["/chat/completions", "/messages", "/responses"])
def test_a_client_that_leaves_a_stream_stops_its_upstream(proxy, upstream, path):
    """A local model generates until its client goes: the proxy must go when its client does,
    or the next request waits for an answer nobody reads."""
    text = f"leaving {path} " + "word " * 60  # one word every 0.3 s: 18 s whole
    body = {
        "model": "router/only-slowstream",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 100,
        "stream": True,
    }
    if path == "/responses":
        body = {"model": body["model"], "input": text, "stream": True}
    with httpx.stream("POST", proxy.base_url + path, json=body, timeout=30) as r:
        assert r.status_code == 200
        for n, _ in enumerate(r.iter_lines()):
            if n >= 6:
                break  # and leave: the connection closes
    assert _how_it_ended(upstream, "echo: " + text) == "abandoned"


def _how_it_ended(upstream, answer: str) -> str:
    # 8 s: the whole stream needs 18 s
    return wait_for(lambda: upstream.stream_ends.get(answer), 8.0, "the stream to end")


def test_a_blocking_sdk_stream_left_early_stops_its_upstream(fault_router, upstream):
    text = "blocking sdk leaving " + "word " * 60
    stream = fault_router.chat(text, policy="only-slowstream", stream=True)
    for _ in stream:
        break  # the stream is still referenced: garbage collection closes nothing
    assert _how_it_ended(upstream, "echo: " + text) == "abandoned"
    assert stream.decision.model == "slowstream"


async def test_an_async_sdk_stream_left_early_stops_its_upstream(fault_router, upstream):
    text = "async sdk leaving " + "word " * 60
    stream = await fault_router.achat(text, policy="only-slowstream", stream=True)
    async for _ in stream:
        break
    answer = "echo: " + text
    for _ in range(160):  # the loop must run for the left stream to be closed
        if answer in upstream.stream_ends:
            break
        await asyncio.sleep(0.05)
    assert upstream.stream_ends.get(answer) == "abandoned"
    assert stream.decision.model == "slowstream"


def test_a_prompt_too_long_for_the_model_is_openais_400_whatever_the_fallbacks(proxy):
    """Agent frameworks shorten the conversation on `context_length_exceeded`; a fallback that
    could not even be called (no key) must not turn that into a 502 the client retries."""
    r, _, _ = chat(proxy, "router/window-then-nokey", "a long question " * 30)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")
    assert "smallwindow" in error["message"] and "nokey" in error["message"]
    assert r.headers["x-router-attempts"] == "smallwindow:failed,nokey:failed"
    short, _, _ = chat(proxy, "router/window-then-nokey", "short")
    assert short.status_code == 200 and short.headers["x-router-model"] == "smallwindow"
    client = openai.OpenAI(base_url=proxy.base_url, api_key="unused")  # retries 5xx, not 400s
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="router/window-then-nokey",
            messages=[{"role": "user", "content": "a long question " * 30}],
        )
    assert e.value.code == "context_length_exceeded"
    body = {
        "model": "router/window-then-nokey",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "a long question " * 30}],
    }
    claude = httpx.post(proxy.base_url + "/messages", json=body, timeout=30)
    assert claude.status_code == 400 and claude.json()["error"]["type"] == "invalid_request_error"
    # Claude clients compact on Anthropic's words; litellm knows an overflow by OpenAI's.
    assert claude.json()["error"]["message"].startswith("prompt is too long: ")
    assert _litellm_overflow(proxy, "router/window-then-nokey", "a long question " * 30)
    # too long for every model of the policy: the router says so before calling any
    r, _, _ = chat(proxy, "router", "word " * 140_000)
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    assert "This model's maximum context length is 128000 tokens" in r.json()["error"]["message"]
    assert _litellm_overflow(proxy, "router", "word " * 140_000)


def _litellm_overflow(proxy, model: str, text: str) -> bool:
    """Does litellm, as a client of the proxy, take its answer for a context overflow?"""
    from router.serving.providers import load_litellm

    litellm = load_litellm()
    try:
        litellm.completion(
            model=f"openai/{model}",
            api_base=proxy.base_url,
            api_key="unused",
            messages=[{"role": "user", "content": text}],
            num_retries=0,
            max_retries=0,
        )
    except litellm.ContextWindowExceededError:
        return True
    except Exception:  # noqa: BLE001 - any other answer is not an overflow to litellm
        return False
    return False


def test_a_chain_of_models_that_cannot_be_called_is_a_503_model_unavailable(proxy, fault_router):
    """No key, so nothing was called: the router's configuration, not an upstream that
    misbehaved (a 502), and no breaker's time to wait (no Retry-After)."""
    r, _, _ = chat(proxy, "router/only-nokey", "hello")
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["code"] == "model_unavailable" and "ROUTER_TEST_KEY_NEVER_SET" in error["message"]
    assert "retry-after" not in r.headers and r.headers["x-router-attempts"] == "nokey:failed"
    body = {
        "model": "router/only-nokey",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
    }
    claude = httpx.post(proxy.base_url + "/messages", json=body, timeout=30)
    assert claude.status_code == 503 and claude.json()["error"]["type"] == "api_error"
    with pytest.raises(UpstreamError) as sdk:
        fault_router.chat("hello", policy="only-nokey")
    assert (sdk.value.status_code, sdk.value.code) == (503, "model_unavailable")


def test_a_prompt_that_fits_only_models_that_cannot_be_called_is_too_long_not_an_outage(
    proxy, fault_router
):
    """Under `make run` only the local model has no key: a conversation longer than its
    window went to a keyless large model and came back a 502 that clients retry. It is the
    prompt's length, which agents can cure by shortening it."""
    client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
    long = "a question that goes on " * 20
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="router/tiny-then-nokey", messages=[{"role": "user", "content": long}]
        )
    assert (e.value.code, e.value.param) == ("context_length_exceeded", "messages")
    message = e.value.body["message"]
    assert "tinywindow: 64" in message and "nokey" in message and "not set" in message
    assert _litellm_overflow(proxy, "router/tiny-then-nokey", long)
    with pytest.raises(openai.BadRequestError) as responses:  # the field is `input` there
        client.responses.create(model="router/tiny-then-nokey", input=long)
    assert (responses.value.code, responses.value.param) == ("context_length_exceeded", "input")
    with pytest.raises(UpstreamError) as sdk:
        fault_router.chat(long, policy="tiny-then-nokey")
    assert (sdk.value.status_code, sdk.value.code) == (400, "context_length_exceeded")
    # A prompt that fits the callable model is answered by it.
    short = client.chat.completions.create(
        model="router/tiny-then-nokey", messages=[{"role": "user", "content": "hi"}]
    )
    assert short.choices[0].message.content == "echo: hi"


@pytest.mark.parametrize("path", ["/chat/completions", "/messages", "/responses"])
def test_a_client_that_gives_up_on_a_whole_answer_stops_its_upstream(proxy, upstream, path):
    """A client's time-out (the OpenAI SDK then retries) must not leave the model working
    for nobody: a local model would keep the next request waiting."""
    text = f"giving up on {path}"
    body = {
        "model": "router/only-patient",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 16,
    }
    if path == "/responses":
        body = {"model": body["model"], "input": text}
    before = time.time()
    with pytest.raises(httpx.TimeoutException):
        httpx.post(proxy.base_url + path, json=body, timeout=1.0)
    # 8 s: the upstream answers after 20 s
    assert wait_for(lambda: text in upstream.abandoned, 8.0, "the upstream to see its client go")
    # Its row says the client left (not an error of the router's) and which model it had.
    left = wait_for(lambda: _latest_left(proxy, before), 8.0, "the request's 499 row")
    assert left["model"] == "patient" and left["error"] == "cancelled before the answer"


def _latest_left(proxy, after: float) -> dict | None:
    proxy.decision_log.flush()
    con = sqlite3.connect(proxy.decision_log.path)
    con.row_factory = sqlite3.Row
    try:
        r = con.execute(
            "SELECT * FROM decisions WHERE status = 499 AND requested_model = ? AND ts > ?"
            " ORDER BY ts DESC LIMIT 1",
            ("router/only-patient", after),
        ).fetchone()
        return dict(r) if r is not None else None
    finally:
        con.close()


async def test_an_sdk_call_cancelled_before_its_answer_names_its_model(
    fault_router, upstream, tmp_path
):
    """The caller gives up on `achat`: the cancellation carries the decision (the proxy's 499
    row names the model from it) and the SDK's own log keeps a 499 row."""
    text = "the sdk gives up waiting"
    log = fault_router.open_decision_log(tmp_path / "sdk.db")
    try:
        call = asyncio.ensure_future(fault_router.achat(text, policy="only-patient"))
        for _ in range(400):  # until the upstream has the request (routing can be slow here)
            if any(_last_text(r) == text for r in upstream.requests):
                break
            await asyncio.sleep(0.02)
        call.cancel()
        with pytest.raises(asyncio.CancelledError) as cancelled:
            await call
        assert cancelled.value.decision.model == "patient"
        assert log.flush(8.0)
        con = sqlite3.connect(tmp_path / "sdk.db")
        try:
            rows = con.execute("SELECT model, status, error FROM decisions").fetchall()
        finally:
            con.close()
        assert rows == [("patient", 499, "cancelled before the answer")]
    finally:
        log.close()
        fault_router.decision_log = None


def _last_text(request: dict) -> str | None:
    messages = request.get("messages") or [{}]
    return messages[-1].get("content")
