"""Cascades through the proxy, end to end with the official openai client: the cheap answer is
held, judged and returned or replaced; receipts and headers carry the verdict and both costs;
a discarded answer never reaches the client, streaming or not.

The upstream (tests/cascade_upstream.py) answers "What is A + B?" right when A is even and
visibly wrong (its own arithmetic does not hold, hesitant logprobs) when A is odd.
"""

from __future__ import annotations

import json
import re
import textwrap
import threading
import time
from pathlib import Path

import openai
import pytest

from router import Router
from router.core.verifier import AnswerCase, AnswerVerifier
from router.server import create_app
from tests.cascade_upstream import CascadeUpstream, _logprobs, answer_for
from tests.proxy import Proxy

RIGHT = "What is 24 + 17?"  # A even: the cheap model is right
WRONG = "What is 23 + 17?"  # A odd: the cheap model is wrong
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "adds numbers",
            "parameters": {"type": "object", "properties": {}},
        },
    }
]


def _training_cases() -> tuple[list[AnswerCase], list[float]]:
    """Cheap answers in the upstream's style, whole and as streaming prefixes."""
    cases, y = [], []
    for a in range(2, 62):
        prompt = f"What is {a} + {3 * a % 50}?"
        text, lp, right = answer_for("cheap-math", prompt, False)
        words = text.split(" ")
        cases.append(AnswerCase(prompt, text, _logprobs(words, lp)))
        cases.append(AnswerCase(prompt, " ".join(words[:8]), _logprobs(words[:8], lp), None, True))
        y += [float(right)] * 2
    return cases, y


def save_verifiers(root: Path) -> None:
    """`root/verifier`, learned from `_training_cases`, and `root/unsure-verifier`, never sure
    on a prefix: with it every speculation starts, and the verdict on the whole may keep it."""
    cases, y = _training_cases()
    AnswerVerifier().fit(cases, y).save(root / "verifier")
    unsure = [0.0 if c.partial else v for c, v in zip(cases, y, strict=True)]
    AnswerVerifier().fit(cases, unsure).save(root / "unsure-verifier")


@pytest.fixture(scope="module")
def cascade_router(cascade_upstream, tmp_path_factory) -> Router:
    root = tmp_path_factory.mktemp("cascade")
    save_verifiers(root)
    base = cascade_upstream.base_url
    (root / "policies").mkdir()
    (root / "config.yaml").write_text(
        textwrap.dedent(
            f"""
            scorer: default
            default_policy: cascade
            breaker: {{failures: 0}}
            decision_log: null
            models:
              - {{name: cheap, litellm_model: openai/cheap-math, api_base: "{base}",
                  input_price: 0.1, output_price: 0.2, context_window: 8000,
                  capabilities: [tools, json, streaming], tier: small}}
              - {{name: large, litellm_model: openai/large-math, api_base: "{base}",
                  input_price: 5, output_price: 15, context_window: 8000,
                  capabilities: [tools, json, streaming], tier: large}}
              - {{name: judge, litellm_model: openai/judge, api_base: "{base}",
                  input_price: 1, output_price: 2, context_window: 8000, tier: small}}
              - {{name: cheap-slow, litellm_model: openai/cheap-math-slow, api_base: "{base}",
                  input_price: 0.1, output_price: 0.2, context_window: 8000,
                  capabilities: [tools, json, streaming], tier: small}}
              - {{name: large-slow, litellm_model: openai/large-math-slow, api_base: "{base}",
                  input_price: 5, output_price: 15, context_window: 8000,
                  capabilities: [tools, json, streaming], tier: large}}
            """
        )
    )
    policies = {
        # The whole cheap answer (about 40 words) fits the buffer.
        "cascade": "cascade: {verifier: ../verifier, threshold: 0.5, buffer_tokens: 64, logprobs: true}",
        # Only the first 8 tokens are held: the verdict is on a prefix.
        "prefix": "cascade: {verifier: ../verifier, threshold: 0.5, buffer_tokens: 8, logprobs: true}",
        "llmjudge": "cascade: {verifier: llm, judge: judge, threshold: 0.5}",
        "escalate-tools": "cascade: {verifier: ../verifier, logprobs: true, tool_calls: escalate}",
        # Hybrid band edges that put every prompt on one side.
        "sure-easy": "cascade: {verifier: ../verifier, threshold: 0.0, band: 0.0}",
        "sure-hard": "cascade: {verifier: ../verifier, threshold: 1.0, band: 0.0}",
    }
    for name, cascade in policies.items():
        (root / "policies" / f"{name}.yaml").write_text(
            f"default: [cheap]\nlarge: [large]\n{cascade}\n"
        )
    speculative = {
        # The cheap answer stops after 20 words until the test opens the gate.
        "spec": ("cheap-slow", "large", "../verifier", 8),
        "spec-off": ("cheap", "large", "../verifier", None),
        # Unsure on every prefix; the large model holds its answer until the gate opens.
        "spec-cancel": ("cheap", "large-slow", "../unsure-verifier", 8),
    }
    for name, (cheap, large, verifier, tokens) in speculative.items():
        (root / "policies" / f"{name}.yaml").write_text(
            f"default: [{cheap}]\nlarge: [{large}]\ncascade: {{verifier: {verifier}, "
            f"threshold: 0.5, logprobs: true, speculate_tokens: {tokens or 'null'}}}\n"
        )
    return Router.from_config(root / "config.yaml")


@pytest.fixture
def proxy(cascade_router):
    spec = cascade_router.config.server.model_copy(update={"decision_log": None, "keys_env": None})
    p = Proxy(create_app(cascade_router, spec)).start()
    yield p
    p.stop()


@pytest.fixture
def client(proxy):
    return openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0, timeout=120)


def _calls(up: CascadeUpstream, since: int) -> list[str]:
    return [r["model"] for r in up.requests[since:]]


def _ask(client, prompt: str, policy: str = "cascade", **kw):
    raw = client.chat.completions.with_raw_response.create(
        model=f"router/{policy}", messages=[{"role": "user", "content": prompt}], **kw
    )
    return raw.headers, raw.parse()


def _stream(client, prompt: str, policy: str = "cascade", **kw) -> tuple[dict, str, list]:
    raw = client.chat.completions.with_raw_response.create(
        model=f"router/{policy}",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        **kw,
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return raw.headers, text, chunks


# ---- non-streaming ------------------------------------------------------------------------


def test_right_cheap_answer_is_kept(client, cascade_upstream):
    n = len(cascade_upstream.requests)
    headers, resp = _ask(client, RIGHT)
    assert _calls(cascade_upstream, n) == ["cheap-math"]
    assert cascade_upstream.requests[n]["logprobs"] is True  # the cascade asked for them
    assert resp.choices[0].message.content == answer_for("cheap-math", RIGHT, False)[0]
    assert resp.choices[0].logprobs is None  # ... and the client, who did not, gets none
    assert headers["x-router-model"] == "cheap"
    assert headers["x-router-cascade-mode"] == "judged"
    assert headers["x-router-cascade-escalated"] == "false"
    assert float(headers["x-router-cascade-probability"]) >= 0.5
    assert headers["x-router-cascade-threshold"] == "0.5"
    words = len(answer_for("cheap-math", RIGHT, False)[0].split(" "))
    assert float(headers["x-router-cascade-cheap-cost"]) == pytest.approx(
        (12 * 0.1 + words * 0.2) / 1e6
    )
    assert headers["x-router-cascade-large-cost"] == ""


def test_wrong_cheap_answer_is_replaced(client, cascade_upstream):
    n = len(cascade_upstream.requests)
    headers, resp = _ask(client, WRONG)
    assert _calls(cascade_upstream, n) == ["cheap-math", "large-math"]
    assert "logprobs" not in cascade_upstream.requests[n + 1]  # the large call is as asked
    content = resp.choices[0].message.content
    assert content == "The answer is 40."
    assert "<<" not in content and "step" not in content  # nothing of the cheap answer
    assert resp.model == "large"
    assert headers["x-router-model"] == "large"
    assert headers["x-router-tier"] == "large"
    assert headers["x-router-escalated"] == "true"
    assert headers["x-router-cascade-escalated"] == "true"
    assert headers["x-router-cascade-cheap-model"] == "cheap"
    assert float(headers["x-router-cascade-probability"]) < 0.5
    assert float(headers["x-router-cascade-cheap-cost"]) > 0
    assert float(headers["x-router-cascade-large-cost"]) == pytest.approx((12 * 5 + 4 * 15) / 1e6)
    assert "escalated to large" in headers["x-router-reason"]
    assert [a.split(":")[0] for a in headers["x-router-attempts"].split(",")] == ["cheap", "large"]


@pytest.mark.parametrize("policy", ["cascade", "spec-off"])
def test_logprobs_the_client_asked_for_reach_it(client, cascade_upstream, policy):
    """Read as a stream to judge early ("cascade") or not: the same response."""
    _, resp = _ask(client, RIGHT, policy, logprobs=True, top_logprobs=1)
    words = answer_for("cheap-math", RIGHT, False)[0].split(" ")
    assert [t.token for t in resp.choices[0].logprobs.content] == words


def test_an_escalated_turn_moves_its_session_up(client):
    """The session was on the cheap model; the cascade escalated this turn: it did not stay,
    and the next turn stays on the large model as an escalated session."""
    sid = {"x-session-id": "cascade-session-up"}
    headers, _ = _ask(client, RIGHT, extra_headers=sid)
    assert headers["x-router-model"] == "cheap" and headers["x-router-sticky"] == "false"
    headers, _ = _ask(client, WRONG, extra_headers=sid)
    assert headers["x-router-model"] == "large"
    assert headers["x-router-cascade-escalated"] == "true"
    assert headers["x-router-sticky"] == "false"
    headers, _ = _ask(client, RIGHT, extra_headers=sid)
    assert headers["x-router-model"] == "large" and headers["x-router-sticky"] == "true"
    assert headers["x-router-escalated"] == "true"


def test_costs_and_metrics_count_both_calls(client, proxy):
    import httpx

    _ask(client, WRONG)
    _ask(client, RIGHT)
    cheap_words = len(answer_for("cheap-math", WRONG, False)[0].split(" "))
    cheap_cost = (12 * 0.1 + cheap_words * 0.2) / 1e6
    large_cost = (12 * 5 + 4 * 15) / 1e6
    metrics = httpx.get(proxy.url + "/metrics", timeout=30).text

    def value(name: str, **labels) -> float:
        sel = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        m = re.search(rf"^{name}\{{{sel}\}} (\S+)$", metrics, re.MULTILINE)
        assert m, f"{name}{{{sel}}} not in /metrics"
        return float(m.group(1))

    # The escalated request paid both calls; the counterfactual is one large call per request.
    assert value("router_cost_usd_total", model="large") == pytest.approx(large_cost + cheap_cost)
    right_words = len(answer_for("cheap-math", RIGHT, False)[0].split(" "))
    assert value("router_large_cost_usd_total", policy="cascade") == pytest.approx(
        large_cost + (12 * 5 + right_words * 15) / 1e6
    )
    assert value("router_cascade_requests_total", policy="cascade", outcome="escalated") == 1
    assert value("router_cascade_requests_total", policy="cascade", outcome="accepted") == 1
    assert value("router_cascade_escalation_rate", policy="cascade") == 0.5
    assert value("router_cascade_wasted_tokens_total", model="cheap") == cheap_words
    assert value("router_cascade_wasted_cost_usd_total", model="cheap") == pytest.approx(cheap_cost)


# ---- streaming ----------------------------------------------------------------------------


# "prefix" holds 8 chunks: those after them come straight from the upstream.
@pytest.mark.parametrize("policy", ["cascade", "prefix"])
def test_stream_right_answer_passes_through_whole(client, cascade_upstream, policy):
    n = len(cascade_upstream.requests)
    headers, text, chunks = _stream(client, RIGHT, policy)
    assert _calls(cascade_upstream, n) == ["cheap-math"]
    assert text == answer_for("cheap-math", RIGHT, False)[0]
    assert headers["x-router-model"] == "cheap"
    assert headers["x-router-cascade-escalated"] == "false"
    assert all(c.model == "cheap" for c in chunks)
    assert all(c.choices[0].logprobs is None for c in chunks if c.choices)


@pytest.mark.parametrize("policy", ["cascade", "prefix"])
def test_stream_wrong_answer_never_reaches_the_client(client, cascade_upstream, policy):
    n = len(cascade_upstream.requests)
    headers, text, chunks = _stream(client, WRONG, policy)
    assert _calls(cascade_upstream, n) == ["cheap-math", "large-math"]
    assert text == "The answer is 40."
    # Not one chunk of the cheap answer went out, and every chunk is the large model's.
    assert all(c.model == "large" for c in chunks)
    assert "step" not in text and "<<" not in text
    assert headers["x-router-model"] == "large"
    assert headers["x-router-cascade-escalated"] == "true"
    assert float(headers["x-router-cascade-probability"]) < 0.5


def test_stream_with_small_max_tokens_holds_the_whole_answer(client, cascade_upstream):
    # max_tokens ≤ buffer_tokens: the whole (cut) answer is judged; a cut answer is suspect.
    headers, text, _ = _stream(client, RIGHT, "prefix", max_tokens=6)
    assert headers["x-router-cascade-mode"] == "judged"
    assert headers["x-router-cascade-probability"] != ""


# ---- tool calls, JSON mode, LLM verifier, hybrid band -------------------------------------


def test_tool_call_answer_follows_the_policy_rule(client, cascade_upstream):
    n = len(cascade_upstream.requests)
    headers, resp = _ask(client, WRONG, tools=TOOLS)
    assert _calls(cascade_upstream, n) == ["cheap-math"]
    assert resp.choices[0].message.tool_calls[0].function.name == "calculator"
    assert headers["x-router-cascade-escalated"] == "false"
    assert headers["x-router-cascade-probability"] == ""  # accepted unjudged
    n = len(cascade_upstream.requests)
    headers, resp = _ask(client, WRONG, "escalate-tools", tools=TOOLS)
    assert _calls(cascade_upstream, n) == ["cheap-math", "large-math"]
    assert headers["x-router-cascade-escalated"] == "true"


def test_stream_tool_call_is_held_whole(client):
    headers, _, chunks = _stream(client, WRONG, tools=TOOLS)
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls and calls[0].function.name == "calculator"
    assert headers["x-router-model"] == "cheap"


def test_json_mode_escalates_an_answer_that_does_not_parse(client, cascade_upstream):
    fmt = {"type": "json_object"}
    headers, resp = _ask(client, RIGHT, response_format=fmt)
    assert json.loads(resp.choices[0].message.content) == {"answer": 41}
    assert headers["x-router-model"] == "cheap"
    n = len(cascade_upstream.requests)
    headers, resp = _ask(client, WRONG, response_format=fmt)
    assert _calls(cascade_upstream, n) == ["cheap-math", "large-math"]
    assert json.loads(resp.choices[0].message.content) == {"answer": 40}
    assert headers["x-router-cascade-probability"] == "0.0000"
    headers, text, _ = _stream(client, WRONG, response_format=fmt)
    assert json.loads(text) == {"answer": 40}


def test_llm_verifier_is_asked_and_its_cost_counted(client, cascade_upstream, proxy):
    import httpx

    n = len(cascade_upstream.requests)
    headers, resp = _ask(client, WRONG, "llmjudge")
    assert _calls(cascade_upstream, n) == ["cheap-math", "judge", "large-math"]
    assert "Is the answer correct" in cascade_upstream.requests[n + 1]["messages"][0]["content"]
    assert resp.choices[0].message.content == "The answer is 40."
    assert headers["x-router-cascade-probability"] == "0.0000"
    n = len(cascade_upstream.requests)
    headers, resp = _ask(client, RIGHT, "llmjudge")
    assert _calls(cascade_upstream, n) == ["cheap-math", "judge"]
    assert headers["x-router-cascade-escalated"] == "false"
    # The judge's call is in the accepted answer's cost: cheap call + judge call.
    metrics = httpx.get(proxy.url + "/metrics", timeout=30).text
    m = re.search(r'^router_cost_usd_total\{model="cheap"\} (\S+)$', metrics, re.MULTILINE)
    words = len(answer_for("cheap-math", RIGHT, False)[0].split(" "))
    assert float(m.group(1)) == pytest.approx((12 * 0.1 + words * 0.2 + 12 * 1 + 1 * 2) / 1e6)


def test_hybrid_band_skips_the_cascade_when_the_prompt_scorer_is_sure(client, cascade_upstream):
    n = len(cascade_upstream.requests)
    headers, resp = _ask(client, WRONG, "sure-easy")
    assert _calls(cascade_upstream, n) == ["cheap-math"]  # unchecked: wrong, but kept
    assert headers["x-router-cascade-mode"] == "unchecked"
    assert headers["x-router-model"] == "cheap"
    n = len(cascade_upstream.requests)
    headers, resp = _ask(client, RIGHT, "sure-hard")
    assert _calls(cascade_upstream, n) == ["large-math"]  # no cheap call at all
    assert headers["x-router-cascade-mode"] == "large"
    assert headers["x-router-cascade-cheap-cost"] == ""


# ---- the SDK drives the same flow ---------------------------------------------------------


def test_sdk_sync_and_async(cascade_router):
    import asyncio

    resp = cascade_router.chat(WRONG)
    assert resp.choices[0].message.content == "The answer is 40."
    assert resp.decision.cascade["escalated"] is True
    assert resp.decision.cascade["cheap_cost"] > 0
    stream = cascade_router.chat(WRONG, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == (
        "The answer is 40."
    )
    assert stream.decision.model == "large"
    # The prefix policy judged the first 8 tokens, not the whole answer.
    stream = cascade_router.chat(WRONG, policy="prefix", stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == (
        "The answer is 40."
    )
    assert stream.decision.cascade["whole_answer"] is False
    assert stream.decision.cascade["judged_tokens"] == 8
    stream = cascade_router.chat(RIGHT, policy="prefix", stream=True)
    assert (
        "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        == (answer_for("cheap-math", RIGHT, False)[0])
    )
    assert stream.decision.model == "cheap"

    async def go():
        r = await cascade_router.achat(RIGHT)
        return r.decision

    d = asyncio.run(go())
    assert d.model == "cheap" and d.cascade["escalated"] is False
    route = cascade_router.route(WRONG)  # routing alone: the cascade's plan, nothing called
    assert route.cascade["mode"] == "judged" and route.cascade["probability"] is None


# ---- speculation: the large call starts on an unsure prefix ------------------------------


def _wait_until(cond, what: str) -> None:
    deadline = time.monotonic() + 60  # a condition, not a duration: generous on a busy box
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_an_unsure_prefix_starts_the_large_call_before_the_cheap_answer_ends(
    client, cascade_upstream
):
    cascade_upstream.gate.clear()
    n = len(cascade_upstream.requests)
    out = {}
    t = threading.Thread(target=lambda: out.update(r=_ask(client, WRONG, "spec")))
    t.start()
    try:
        # The cheap answer is held after 20 words, and the large model is asked meanwhile.
        _wait_until(lambda: "large-math" in _calls(cascade_upstream, n), "the large call")
        assert cascade_upstream.at_gate == 1 and t.is_alive()  # the cheap answer still held
    finally:
        cascade_upstream.gate.set()
        t.join(120)
    headers, resp = out["r"]
    assert _calls(cascade_upstream, n) == ["cheap-math-slow", "large-math"]
    assert cascade_upstream.requests[n]["stream"] is True  # read as a stream to judge early
    assert resp.choices[0].message.content == "The answer is 40."
    assert headers["x-router-model"] == "large"
    assert headers["x-router-cascade-speculative"] == "used"
    assert headers["x-router-cascade-escalated"] == "true"
    assert float(headers["x-router-cascade-probability"]) < 0.5  # the whole answer's verdict
    words = len(answer_for("cheap-math", WRONG, False)[0].split(" "))
    # The cheap call's usage came with the stream: its cost is the real one.
    assert float(headers["x-router-cascade-cheap-cost"]) == pytest.approx(
        (12 * 0.1 + words * 0.2) / 1e6
    )
    assert "escalated to large" in headers["x-router-reason"]


def test_without_speculation_the_cheap_call_is_not_streamed(client, cascade_upstream):
    n = len(cascade_upstream.requests)
    headers, resp = _ask(client, WRONG, "spec-off")
    assert _calls(cascade_upstream, n) == ["cheap-math", "large-math"]
    assert "stream" not in cascade_upstream.requests[n]
    assert headers["x-router-cascade-speculative"] == ""
    assert resp.choices[0].message.content == "The answer is 40."


def test_a_kept_answer_cancels_the_speculative_call_and_counts_its_cost(
    cascade_router, cascade_upstream
):
    """The verdict keeps the cheap answer while the large call is still out: the answer does
    not wait for it, the call is given up and its cost (the prompt it was sent) counted."""
    import asyncio

    from router.core.request import request_facts
    from router.server.accounting import cascade_extra_cost

    upstream = cascade_upstream
    upstream.gate.clear()
    msgs = [{"role": "user", "content": RIGHT}]
    prompt_tokens = request_facts(msgs, {}, cascade_router.config.expected_output_tokens)
    # Stopped before it answered: the prompt it was sent is what it cost.
    paid = cascade_router.config.model("large-slow").cost(prompt_tokens.prompt_tokens, 0)
    try:
        for label, ask in (
            ("async", lambda: asyncio.run(cascade_router.achat(RIGHT, policy="spec-cancel"))),
            ("sync", lambda: cascade_router.chat(RIGHT, policy="spec-cancel")),
        ):
            n = len(upstream.requests)
            resp = ask()
            # The speculative call was sent (from a worker thread: on a busy machine it may
            # reach the upstream a moment after the kept answer is returned).
            _wait_until(lambda n=n: len(_calls(upstream, n)) >= 2, f"{label}: the large call")
            assert upstream.at_gate >= 1, label  # answered while the large model holds its own
            assert _calls(upstream, n) == ["cheap-math", "large-math-slow"], label
            d = resp.decision
            assert d.model == "cheap" and d.cascade["escalated"] is False, label
            assert resp.choices[0].message.content == answer_for("cheap-math", RIGHT, False)[0]
            spec = d.cascade["speculative"]
            assert spec["used"] is False and spec["after_tokens"] == 8, label
            assert spec["cost"] == pytest.approx(paid) and paid > 0
            assert d.cascade["speculative_cost"] == spec["cost"]
            assert cascade_extra_cost(d) == pytest.approx(spec["cost"])
    finally:
        upstream.gate.set()
