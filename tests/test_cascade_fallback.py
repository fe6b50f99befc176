"""Through the cascade flow: an answer unlike the verifier's training answers is judged by the
router's own estimate, one like them by the answer; the receipt and headers say which.

The loopback upstream (tests/upstream.py) answers "echo: <prompt>". The verifier learns echoes
of two kinds of short prompts, right when they say "alpha" and wrong when they say "omega"."""

from __future__ import annotations

import shutil

import openai
import pytest

from router import Router
from router.core.verifier import AnswerCase, AnswerVerifier
from router.server import create_app
from tests.proxy import Proxy

FOREIGN = (
    "Traduisez en allemand, sans commentaire ni explication : « Le vieux chat roux dort sur "
    "le canapé du salon depuis ce matin, et personne n'ose le réveiller. »"
)


def _echo_cases() -> tuple[list[AnswerCase], list[float], list[str]]:
    cases, y, groups = [], [], []
    for i in range(60):
        word = "alpha" if i % 2 == 0 else "omega"
        if i % 4 < 2:
            prompt, group = f"Quick check {word} {i}: name a fruit.", "fruit"
        else:
            prompt, group = f"Short note {word} {i}: name a city.", "city"
        cases.append(AnswerCase(prompt, f"echo: {prompt}"))
        y.append(1.0 if word == "alpha" else 0.0)
        groups.append(group)
    return cases, y, groups


@pytest.fixture(scope="module")
def echo_router(tmp_path_factory, test_config) -> Router:
    root = tmp_path_factory.mktemp("fallback")
    shutil.copytree(test_config.parent, root / "cfg")
    cases, y, groups = _echo_cases()
    AnswerVerifier().fit(cases, y, [0.5] * len(y), groups).save(root / "verifier")
    (root / "cfg" / "policies" / "casc.yaml").write_text(
        "default: [small-general]\nlarge: [large]\n"
        "cascade: {verifier: ../../verifier, threshold: 0.5}\n"
    )
    return Router.from_config(root / "cfg" / "config.yaml")


def test_an_unfamiliar_answer_is_judged_by_the_prompt_side(echo_router):
    c = echo_router.chat(FOREIGN, policy="casc").decision.cascade
    assert c["mode"] == "judged"
    assert c["out_of_distribution"] is True and c["novelty"] > 0.95
    assert c["prompt_weight"] > c["answer_weight"]
    assert abs(c["probability"] - c["prompt_probability"]) < abs(
        c["answer_probability"] - c["prompt_probability"]
    )


def test_a_familiar_answer_is_judged_by_the_answer(echo_router):
    wrong = echo_router.chat("Quick check omega 999: name a fruit.", policy="casc")
    right = echo_router.chat("Quick check alpha 998: name a fruit.", policy="casc")
    for resp in (wrong, right):
        c = resp.decision.cascade
        assert c["out_of_distribution"] is False
        assert c["answer_weight"] > c["prompt_weight"]
    assert wrong.decision.cascade["probability"] < 0.5 <= right.decision.cascade["probability"]
    assert wrong.decision.model == "large" and right.decision.model == "small-general"


def test_headers_carry_the_weighing(echo_router):
    spec = echo_router.config.server.model_copy(update={"decision_log": None, "keys_env": None})
    proxy = Proxy(create_app(echo_router, spec)).start()
    try:
        client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="router/casc", messages=[{"role": "user", "content": FOREIGN}]
        )
    finally:
        proxy.stop()
    assert raw.headers["x-router-cascade-out-of-distribution"] == "true"
    assert float(raw.headers["x-router-cascade-answer-weight"]) < 0.5
