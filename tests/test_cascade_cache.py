"""A cascade with the response cache, through the SDK: an escalated answer is filed under the
large model's key (a request routed to the cheap model is never served it in the cheap model's
name; the cascade, asked again, is served it in the large model's), and an escalation that fails leaves its attempts on the receipt, the answering cheap
attempt last, and its judged-wrong cheap answer out of the cache.

The upstream (tests/cascade_upstream.py) answers "What is A + B?" right when A is even and
visibly wrong when A is odd; `large-down` is tests/upstream.py's `fail-500`.
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from router import Router
from router.core.decision import Decision
from router.server.receipts import receipt_headers
from tests.test_cascade_proxy import save_verifiers


def _prompt(a: int, b: int) -> str:
    """A question the cheap model gets wrong when `a` is odd (the large one never does)."""
    return f"What is {a} + {b}?"


@pytest.fixture(scope="module")
def cached_cascade(cascade_upstream, upstream, tmp_path_factory) -> Router:
    root = tmp_path_factory.mktemp("cascade-cache")
    save_verifiers(root)
    (root / "policies").mkdir()
    caps = "capabilities: [tools, json, streaming], retries: 0"
    models = {
        "cheap": ("openai/cheap-math", cascade_upstream.base_url, "small"),
        "large": ("openai/large-math", cascade_upstream.base_url, "large"),
        "large-down": ("openai/fail-500", upstream.base_url, "large"),
    }
    catalogue = "\n".join(
        f"  - {{name: {name}, litellm_model: {lm}, api_base: '{base}', input_price: 1,"
        f" output_price: 2, context_window: 8000, {caps}, tier: {tier}}}"
        for name, (lm, base, tier) in models.items()
    )
    (root / "config.yaml").write_text(
        textwrap.dedent(
            """
            scorer: default
            default_policy: cascade
            breaker: {failures: 0}
            decision_log: null
            cache: {mode: exact, ttl_s: 600}
            models:
            """
        )
        + catalogue
        + "\n"
    )
    judged = "cascade: {verifier: ../verifier, threshold: 0.5, logprobs: true}"
    policies = {
        "cascade": f"default: [cheap]\nlarge: [large]\n{judged}\n",
        "cascade-down": f"default: [cheap]\nlarge: [large-down]\n{judged}\n",
        "large-only": "default: [large]\nlarge: [large]\n",
        "cheap-only": "default: [cheap]\nlarge: [cheap]\n",
    }
    for name, text in policies.items():
        (root / "policies" / f"{name}.yaml").write_text(text)
    return Router.from_config(root / "config.yaml")


def _chat(router: Router, prompt: str, policy: str, stream: bool) -> tuple[str, Decision]:
    """The answer's text and its decision, streamed (read to the end) or not."""
    resp: Any = router.chat(prompt, policy=policy, stream=stream)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in resp if c.choices)
    else:
        text = resp.choices[0].message.content
    return text, resp.decision


def _models(cascade_upstream, since: int) -> list[str]:
    return [r["model"] for r in cascade_upstream.requests[since:]]


@pytest.mark.parametrize("stream", [False, True])
def test_an_escalated_answer_is_never_served_in_the_cheap_models_name(
    cached_cascade, cascade_upstream, stream
):
    a = 25 if stream else 23  # odd: the cheap model is wrong
    prompt, large_answer = _prompt(a, 17), f"The answer is {a + 17}."
    text, first = _chat(cached_cascade, prompt, "cascade", stream)
    assert first.model == "large" and first.cascade["escalated"] is True
    assert first.cache == {"status": "miss"}
    assert text == large_answer

    # The same request through the cascade again: the large model's answer, from the cache,
    # in the large model's name (the cheap one would be judged wrong again); no model called.
    n = len(cascade_upstream.requests)
    text, again = _chat(cached_cascade, prompt, "cascade", stream)
    assert again.cache["status"] == "hit", again.cache
    assert again.model == "large" and again.escalated and text == large_answer
    assert _models(cascade_upstream, n) == []

    # Routed to the cheap model without a cascade: no hit on the large model's answer under
    # the cheap model's name (its receipt, its price).
    n = len(cascade_upstream.requests)
    text, cheap = _chat(cached_cascade, prompt, "cheap-only", stream)
    assert cheap.cache["status"] == "miss", cheap.cache
    assert cheap.model == "cheap" and text != large_answer
    assert _models(cascade_upstream, n) == ["cheap-math"]

    # Routed to the large model: its own answer, from the cache.
    n = len(cascade_upstream.requests)
    text, hit = _chat(cached_cascade, prompt, "large-only", stream)
    assert hit.model == "large" and hit.cache["status"] == "hit"
    assert text == large_answer
    assert _models(cascade_upstream, n) == []


@pytest.mark.parametrize("stream", [False, True])
def test_an_accepted_cheap_answer_is_still_served_to_the_cheap_model(
    cached_cascade, cascade_upstream, stream
):
    prompt = _prompt(26 if stream else 24, 17)  # even: the cheap model is right
    text, first = _chat(cached_cascade, prompt, "cascade", stream)
    assert first.model == "cheap" and first.cascade["escalated"] is False
    n = len(cascade_upstream.requests)
    again_text, again = _chat(cached_cascade, prompt, "cascade", stream)
    assert again.model == "cheap" and again.cache["status"] == "hit"
    assert again_text == text and _models(cascade_upstream, n) == []


@pytest.mark.parametrize("stream", [False, True])
def test_a_failed_escalation_is_in_the_attempts(cached_cascade, cascade_upstream, stream):
    """The large model errors after the cheap answer was judged wrong: the cheap answer is
    kept, and the receipt shows the failed call, the answering attempt last."""
    a = 29 if stream else 27  # odd: the cheap model is wrong
    prompt = _prompt(a, 17)
    text, d = _chat(cached_cascade, prompt, "cascade-down", stream)
    assert d.model == "cheap" and d.cascade["escalated"] is False
    assert "escalation failed" in d.cascade["note"]
    assert text.endswith(f"#### {a + 17 + 1}")  # the cheap model's (wrong) answer
    assert [(a.model, a.ok) for a in d.attempts] == [("large-down", False), ("cheap", True)]
    assert "500" in (d.attempts[0].error or "")
    # The answering attempt comes last, where metrics, receipts and the decision log read it.
    assert d.attempts[-1].model == d.model and d.attempts[-1].ok
    headers = receipt_headers(d, "req-1", 1.0)
    assert headers["x-router-attempts"] == "large-down:failed,cheap:ok"

    # A cheap answer judged wrong is no answer to serve again: the next request tries again.
    n = len(cascade_upstream.requests)
    _, again = _chat(cached_cascade, prompt, "cascade-down", stream)
    assert again.cache["status"] == "miss"
    assert _models(cascade_upstream, n) == ["cheap-math"]
