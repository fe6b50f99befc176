"""A cascade whose first model fails, through the proxy with the official clients: a stream
that breaks while it is held is escalated like a non-streamed one (nothing of it went out),
a first model that errors before answering leaves the request to its fallback chain (not an
escalation: no verdict sent it up), and a fallback asked with the cascade's logprobs hands
none to a client that did not ask. The receipt's headers and body say the same throughout.

The large model is tests/cascade_upstream.py's `large-math` ("The answer is C."); the failing
first models are tests/upstream.py's `cut-stream` (breaks after two chunks) and `fail-500`.
"""

from __future__ import annotations

import textwrap

import anthropic
import openai
import pytest

from router import Router
from router.server import create_app
from tests.proxy import Proxy, router_from

PROMPT = "What is 23 + 17?"


@pytest.fixture(scope="module")
def cascade_router(cascade_upstream, upstream, tmp_path_factory):
    root = tmp_path_factory.mktemp("cascade-failures")
    caps = "capabilities: [tools, json, streaming]"
    models = {
        "cut": ("openai/cut-stream", upstream.base_url, "small"),
        "down": ("openai/fail-500", upstream.base_url, "small"),
        "large": ("openai/large-math", cascade_upstream.base_url, "large"),
        "large-down": ("openai/fail-500", upstream.base_url, "large"),
    }
    catalogue = "\n".join(
        f"  - {{name: {name}, litellm_model: {lm}, api_base: '{base}', input_price: 1,"
        f" output_price: 2, context_window: 8000, {caps}, tier: {tier}, retries: 0}}"
        for name, (lm, base, tier) in models.items()
    )
    (root / "config.yaml").write_text(
        textwrap.dedent(
            """
            scorer: default
            default_policy: cut
            breaker: {failures: 0}
            decision_log: null
            models:
            """
        )
        + catalogue
        + "\n"
    )
    (root / "policies").mkdir()
    policies = {
        "cut": ("cut", "large", ""),
        "cut-both": ("cut", "large-down", ""),
        # Not streamed to judge early: a fallback's answer is handed on as it came.
        "down": ("down", "large", ", speculate_tokens: null"),
        "down-spec": ("down", "large", ""),
    }
    for name, (first, large, extra) in policies.items():
        (root / "policies" / f"{name}.yaml").write_text(
            f"default: [{first}]\nlarge: [{large}]\n"
            f"cascade: {{verifier: default, threshold: 0.5, logprobs: true{extra}}}\n"
        )
    return Router.from_config(root / "config.yaml")


@pytest.fixture(scope="module")
def proxy(cascade_router):
    spec = cascade_router.config.server.model_copy(update={"decision_log": None, "keys_env": None})
    p = Proxy(create_app(cascade_router, spec)).start()
    yield p
    p.stop()


@pytest.fixture
def client(proxy):
    return openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0, timeout=120)


def _stream(client, policy: str, **kw):
    raw = client.chat.completions.with_raw_response.create(
        model=f"router/{policy}", messages=[{"role": "user", "content": PROMPT}], stream=True, **kw
    )
    chunks = list(raw.parse())
    return raw.headers, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_a_held_stream_that_breaks_is_escalated(client, cascade_upstream):
    n = len(cascade_upstream.requests)
    headers, text = _stream(client, "cut")
    assert text == "The answer is 40."
    assert [r["model"] for r in cascade_upstream.requests[n:]] == ["large-math"]
    assert headers["x-router-model"] == "large"
    assert headers["x-router-cascade-escalated"] == "true"
    assert headers["x-router-escalated"] == "true"  # the verdict's escalation: both say so
    assert "broke off" in headers["x-router-reason"]


def test_a_held_stream_that_breaks_is_escalated_under_the_messages_api(proxy):
    client = anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0)
    with client.messages.stream(
        model="router/cut", max_tokens=100, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        text = "".join(stream.text_stream)
        assert stream.get_final_message().stop_reason == "end_turn"
    assert text == "The answer is 40."


def test_a_broken_stream_whose_escalation_fails_is_an_upstream_error(client):
    with pytest.raises(openai.APIStatusError) as e:
        _stream(client, "cut-both")
    assert e.value.status_code == 502
    # The error's receipt is the escalation's, with the cascade's verdict: both escalated.
    headers = e.value.response.headers
    assert headers["x-router-escalated"] == headers["x-router-cascade-escalated"] == "true"
    assert headers["x-router-attempts"] == "cut:ok,large-down:failed"


@pytest.mark.parametrize("policy", ["down", "down-spec"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_first_model_that_errors_is_a_fallback_not_an_escalation(
    client, cascade_router, policy, stream
):
    """`escalated` says a verdict sent the request up. A first model that errored was judged
    by nobody: the chain's fallback answered, and neither the headers nor the body (the
    decision and its `cascade`) call that an escalation; the attempts and `wanted` say it."""
    raw = client.chat.completions.with_raw_response.create(
        model=f"router/{policy}", messages=[{"role": "user", "content": PROMPT}], stream=stream
    )
    if stream:
        list(raw.parse())
    h = raw.headers
    assert (h["x-router-model"], h["x-router-wanted"]) == ("large", "down")
    assert h["x-router-attempts"] == "down:failed,large:ok"
    assert h["x-router-escalated"] == h["x-router-cascade-escalated"] == "false"
    sdk = router_from(cascade_router.config_path, cascade_router)
    resp = sdk.chat(PROMPT, policy=policy, stream=stream)
    if stream:
        list(resp)
    d = resp.decision
    assert d.model == "large" and d.escalated is False and d.cascade["escalated"] is False
    assert d.cascade.get("verdict") is None and "down failed" in d.cascade["note"]


@pytest.mark.parametrize("policy", ["down", "down-spec"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_fallback_hands_on_no_logprobs_the_client_did_not_ask_for(
    client, cascade_upstream, policy, stream
):
    n = len(cascade_upstream.requests)
    if stream:
        raw = client.chat.completions.with_raw_response.create(
            model=f"router/{policy}", messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        chunks = [c for c in raw.parse() if c.choices]
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "The answer is 40."
        assert all(c.choices[0].logprobs is None for c in chunks)
    else:
        raw = client.chat.completions.with_raw_response.create(
            model=f"router/{policy}", messages=[{"role": "user", "content": PROMPT}]
        )
        assert raw.parse().choices[0].logprobs is None
    assert raw.headers["x-router-model"] == "large"
    # The fallback was asked with the cascade's parameters: logprobs included.
    assert cascade_upstream.requests[n]["logprobs"] is True
