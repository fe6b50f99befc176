"""Verdicts in the cascade flow: an empty cheap answer, or one that only says it has none
("I don't know."), is escalated; the early verdict on a prefix (speculation) is weighed against
the router's own estimate as the final one is; a speculative large call is paid for only when
it was sent and did not fail, and one that failed is on the receipt's attempts."""

from __future__ import annotations

import textwrap

import pytest

from router import Router
from router.core.verifier import AnswerVerifier
from router.serving import cascade
from router.serving.answers import declares_no_answer
from tests import cascade_upstream as cascade_upstream_module
from tests.test_cascade_proxy import save_verifiers

WRONG = "What is 3 + 37?"  # odd first number: the cheap model is visibly wrong
RIGHT = "What is 4 + 37?"


@pytest.fixture(scope="module")
def spec_router(cascade_upstream, tmp_path_factory) -> Router:
    root = tmp_path_factory.mktemp("weighing")
    save_verifiers(root)
    (root / "policies").mkdir()
    base = cascade_upstream.base_url
    (root / "config.yaml").write_text(
        textwrap.dedent(
            f"""
            scorer: default
            default_policy: spec
            breaker: {{failures: 0}}
            decision_log: null
            models:
              - {{name: cheap, litellm_model: openai/cheap-math, api_base: "{base}",
                  input_price: 0.1, output_price: 0.2, context_window: 8000,
                  capabilities: [tools, json, streaming], tier: small}}
              - {{name: large, litellm_model: openai/large-math, api_base: "{base}",
                  input_price: 5, output_price: 15, context_window: 8000,
                  capabilities: [tools, json, streaming], tier: large}}
              - {{name: keyless-large, litellm_model: openai/large-math, api_base: "{base}",
                  api_key_env: ROUTER_TEST_KEY_THAT_IS_NOT_SET,
                  input_price: 5, output_price: 15, context_window: 8000,
                  capabilities: [tools, json, streaming], tier: large}}
            """
        )
    )
    (root / "policies" / "spec.yaml").write_text(
        "default: [cheap]\nlarge: [large]\n"
        "cascade: {verifier: ../verifier, threshold: 0.5, logprobs: true, speculate_tokens: 8}\n"
    )
    (root / "policies" / "spec-keyless.yaml").write_text(
        "default: [cheap]\nlarge: [keyless-large]\n"
        "cascade: {verifier: ../unsure-verifier, threshold: 0.5, speculate_tokens: 8}\n"
    )
    # Every verdict escalates (no P(right) reaches 1), to a large model that cannot be called.
    (root / "policies" / "strict-keyless.yaml").write_text(
        "default: [cheap]\nlarge: [keyless-large]\n"
        "cascade: {verifier: ../unsure-verifier, threshold: 1.0, speculate_tokens: 8}\n"
    )
    return Router.from_config(root / "config.yaml")


class _Spy:
    """The real verifier, recording the prompt estimate each reading was given."""

    def __init__(self, real: AnswerVerifier | None) -> None:
        self.real = real
        self.prefix: list = []  # prompt_p of the prefix readings (speculation)
        self.whole: list = []  # prompt_p of the final verdicts

    def probability(self, case, prompt_p=None):
        (self.prefix if case.partial else self.whole).append(prompt_p)
        return self.real.probability(case, prompt_p)

    def verdicts(self, cases, prompt_p=None):
        for c, p in zip(cases, prompt_p or [None] * len(cases), strict=True):
            (self.prefix if c.partial else self.whole).append(p)
        return self.real.verdicts(cases, prompt_p)


@pytest.mark.parametrize("stream", [False, True])
def test_the_speculative_prefix_verdict_weighs_the_router_estimate(
    spec_router, monkeypatch, stream
):
    """The prefix verdict that may start the large call early took the training base rate as
    the prompt side instead of the router's estimate the final verdict is weighed against."""
    spy = _Spy(None)
    real_at = cascade.verifier_at
    monkeypatch.setattr(cascade, "verifier_at", lambda spec: _wrap(spy, real_at(spec)))
    resp = spec_router.chat(WRONG, policy="spec", stream=stream)
    if stream:
        list(resp)  # read it to the end
    c = resp.decision.cascade
    assert c["mode"] == "judged" and c["escalated"] is True
    assert spy.prefix, "no prefix was judged: the test does not speculate"
    assert spy.prefix == [c["prompt_probability"]] * len(spy.prefix)
    assert spy.whole == [c["prompt_probability"]]


def _wrap(spy: _Spy, real: AnswerVerifier) -> _Spy:
    spy.real = real
    return spy


@pytest.mark.parametrize("stream", [False, True])
def test_a_speculative_call_that_failed_costs_nothing(spec_router, cascade_upstream, stream):
    """The large model cannot be called (no key): the speculative call failed without being
    sent. The kept answer's request was charged the large model's prompt price for it."""
    from router.server.accounting import cascade_extra_cost

    n = len(cascade_upstream.requests)
    resp = spec_router.chat(RIGHT, policy="spec-keyless", stream=stream)
    if stream:
        list(resp)
    d = resp.decision
    assert d.model == "cheap" and d.cascade["escalated"] is False
    assert [r["model"] for r in cascade_upstream.requests[n:]] == ["cheap-math"]
    spec = d.cascade["speculative"]
    assert spec["used"] is False and spec["cost"] == 0.0
    assert d.cascade["speculative_cost"] == 0.0 and cascade_extra_cost(d) == 0.0
    assert "ModelUnavailable" in spec["failed"]  # the receipt says why it did not count
    from router.server.receipts import cascade_headers

    assert cascade_headers(d)["x-router-cascade-speculative"] == "failed"


@pytest.mark.parametrize("stream", [False, True])
def test_an_empty_cheap_answer_is_escalated(spec_router, cascade_upstream, monkeypatch, stream):
    """The cheap model answers nothing. The verifier had no empty answer among its training
    answers (neither had the shipped one), so its `empty_answer` check carried no weight and
    the verdict kept the empty answer."""
    _assert_escalated_when_cheap_says(spec_router, monkeypatch, stream, "", "empty answer")


def _assert_escalated_when_cheap_says(spec_router, monkeypatch, stream, said, verdict):
    """The cheap model answers `said` (and is wrong): the large model's answer is served, with
    `verdict` and P(right) 0 on the receipt."""
    real = cascade_upstream_module.answer_for

    def cheap_says(model, prompt, json_mode):
        text, lp, right = real(model, prompt, json_mode)
        return (said, lp, False) if model == "cheap-math" else (text, lp, right)

    monkeypatch.setattr(cascade_upstream_module, "answer_for", cheap_says)
    resp = spec_router.chat(RIGHT, policy="spec", stream=stream)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in resp if c.choices)
    else:
        text = resp.choices[0].message.content
    c = resp.decision.cascade
    assert text == "The answer is 41."
    assert resp.decision.model == "large" and c["escalated"] is True
    assert c["verdict"] == verdict and c["probability"] == 0.0


@pytest.mark.parametrize("stream", [False, True])
def test_a_failed_speculative_escalation_is_in_the_attempts(spec_router, stream):
    """The large call started early and failed (no key): the cheap answer is kept, and the
    failed call is on the receipt before the cheap attempt, which answered."""
    resp = spec_router.chat(WRONG, policy="strict-keyless", stream=stream)
    if stream:
        list(resp)
    d = resp.decision
    assert d.model == "cheap" and d.cascade["escalated"] is False
    assert "escalation failed (UpstreamError)" in d.cascade["note"]
    assert [(a.model, a.ok) for a in d.attempts] == [("keyless-large", False), ("cheap", True)]


# ---- a declared non-answer -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I don't know.",
        "I do not know",
        "I’m not sure.",
        "Im not sure",
        "I cannot answer that.",
        "I can't answer this question.",
        "I'm unable to answer that.",
        "I don't have enough information.",
        "I don't have enough information to answer that question.",
        "I have no idea!",
        "Sorry, I don't know.",
        "I'm not sure, sorry.",
        "Unfortunately, I do not know the answer to that question.",
        "**I don't know.**",
        "  I don't know.\n\nI'm not sure.  ",
        "Je ne sais pas.",
        "No lo sé.",
        "Ich weiß es nicht.",
    ],
)
def test_a_declared_non_answer_is_recognised(text):
    assert declares_no_answer(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Sorry.",
        "I know.",
        "The answer is 41.",
        "No, I don't know.",  # "No" may answer a yes/no question
        "I'm not sure whether it will rain, but take an umbrella to be safe.",
        "I don't know the exact figure, but it is about 40.",
        "41. I'm not sure though.",
        "I don't know why this is asked; 4 + 37 = 41.",
        "I'm not sure what you mean by that.",
        "I cannot answer that without the units: in metres it is 41.",
        "I don't know. " * 40,  # no short statement: left to the verifier
    ],
)
def test_an_answer_that_goes_on_is_no_declared_non_answer(text):
    assert not declares_no_answer(text)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("said", ["I don't know.", "Sorry, I'm not sure."])
def test_a_declared_non_answer_is_escalated(spec_router, monkeypatch, stream, said):
    """The cheap model says it does not know. The verifier's `refusal` check does not look for
    that (and must not change: the shipped verifier was trained on it), so the verdict went to
    the verifier, which knew nothing against so short an answer."""
    _assert_escalated_when_cheap_says(spec_router, monkeypatch, stream, said, "declared non-answer")


def test_an_answer_that_is_unsure_but_answers_goes_to_the_verifier(spec_router, monkeypatch):
    real = cascade_upstream_module.answer_for

    def hedging_cheap(model, prompt, json_mode):
        text, lp, right = real(model, prompt, json_mode)
        return (
            ("I'm not sure, but " + text, lp, right) if model == "cheap-math" else (text, lp, right)
        )

    monkeypatch.setattr(cascade_upstream_module, "answer_for", hedging_cheap)
    resp = spec_router.chat(RIGHT, policy="spec")
    assert resp.decision.cascade["verdict"] == "verifier"
