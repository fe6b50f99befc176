"""The response cache at its edges: entries of a model the catalogue no longer points at, and
questions the guard must tell apart although the word rules were written for English (other
scripts, signed numbers, comparison operators). Real parts: the loopback upstream, the shipped
encoder."""

from __future__ import annotations

import pytest
import yaml

from router.core.cache_keys import cache_key, model_identity
from router.core.config import load_config
from router.core.questions import difference
from tests.proxy import router_from
from tests.test_cache import ask, calls, make_config

# ---- a catalogue name pointed at another model ---------------------------------------------


def _point_small_general_at(path, litellm_model: str) -> None:
    cfg = yaml.safe_load(path.read_text())
    for m in cfg["models"]:
        if m["name"] == "small-general":
            m["litellm_model"] = litellm_model
    path.write_text(yaml.safe_dump(cfg))


def test_a_reload_that_points_a_model_name_elsewhere_does_not_serve_its_old_answers(
    test_config, tmp_path, router, upstream
):
    from router.learning.reload import reload_router

    path = make_config(test_config, tmp_path / "cfg", {"mode": "semantic", "similarity": 0.9})
    old = router_from(path, router)
    first = ask(old, "Who wrote the novel Middlemarch?")
    assert first.decision.model == "small-general" and first.decision.cache["status"] == "miss"
    assert ask(old, "Who wrote the novel Middlemarch?").decision.cache["status"] == "hit"

    _point_small_general_at(path, "openai/large")  # the same name, another model
    new = reload_router(old, path)
    assert new.response_cache is old.response_cache  # the cache settings did not change
    n = calls(upstream)
    again = ask(new, "Who wrote the novel Middlemarch?")
    assert again.decision.model == "small-general"
    assert again.decision.cache["status"] == "miss", again.decision.cache
    assert calls(upstream) == n + 1
    assert upstream.requests[-1]["model"] == "large"
    # The new model's answer is kept and served again; a paraphrase too.
    assert ask(new, "Who wrote the novel Middlemarch?").decision.cache["status"] == "hit"


def test_the_key_names_what_the_model_calls_not_its_price(test_config):
    config = load_config(test_config)
    spec = config.model("small-general")
    msgs = [{"role": "user", "content": "hi"}]

    def key(s):
        return cache_key(msgs, model_identity(s), {}, None).exact

    assert key(spec) == key(spec.model_copy(update={"input_price": 9.0, "timeout": 5.0}))
    assert key(spec) != key(spec.model_copy(update={"litellm_model": "openai/other"}))
    assert key(spec) != key(spec.model_copy(update={"api_base": "http://10.0.0.9:8000/v1"}))


# ---- the question guard beyond English words -----------------------------------------------


@pytest.mark.parametrize(
    "a, b, why",
    [
        # Scripts the word rules did not read: a name or a word swapped went unseen.
        ("如何用Python排序列表？", "如何用Python反转列表？", "names differ"),  # sort / reverse
        ("东京的人口是多少？", "大阪的人口是多少？", "swapped"),  # Tokyo / Osaka
        ("Какая столица Франции?", "Какая столица Германии?", "names differ"),
        ("Как отсортировать список в Python?", "Как перевернуть список в Python?", "swapped"),
        # A minus sign is part of its number.
        ("What is -5 + 3?", "What is 5 + 3?", "numbers differ"),
        ("What is 3 - -5?", "What is 3 - 5?", "numbers differ"),
        # Comparison operators of two characters.
        ("Is 0.1 + 0.2 == 0.3 in Python?", "Is 0.1 + 0.2 != 0.3 in Python?", "operators"),
        ("Is a >= b when a = 2 and b = 3?", "Is a <= b when a = 2 and b = 3?", "operators"),
    ],
)  # fmt: skip
def test_guard_refuses_what_english_word_rules_did_not_see(a, b, why):
    got = difference(a, b)
    assert got is not None and why in got, (a, b, got)
    got = difference(b, a)
    assert got is not None and why in got, (b, a, got)


@pytest.mark.parametrize(
    "a, b",
    [
        ("请问，秘鲁的首都是什么？", "秘鲁的首都是什么？"),  # a polite prefix added
        ("What is 10-20?", "What is 10 - 20?"),  # a subtraction, spaced or not
        ("Tell me about COVID-19", "Tell me about COVID 19"),  # a hyphen, not a sign
        ("What is −5 + 3?", "What is -5 + 3?"),  # the minus sign and the hyphen-minus
        ("Is -1,000 below zero?", "Is -1000 below zero?"),
        ("Is x ≤ 5?", "Is x <= 5?"),
        ("Wie heißt die Hauptstadt von Österreich?", "wie heißt die Hauptstadt von Österreich"),
    ],
)
def test_guard_still_accepts_these(a, b):
    assert difference(a, b) is None


def test_a_question_in_chinese_is_not_served_another_ones_answer(
    test_config, tmp_path, router, upstream
):
    """Out of the encoder's vocabulary the two are the same vector (cosine 1.0), so only the
    guard can tell "how do I sort a list in Python" from "... reverse a list ...": at the
    default similarity the second was served the first one's answer."""
    path = make_config(test_config, tmp_path / "cfg", {"mode": "semantic"})
    r = router_from(path, router)
    ask(r, "如何用Python排序列表？")
    n = calls(upstream)
    second = ask(r, "如何用Python反转列表？")
    assert second.decision.cache["status"] == "miss", second.decision.cache
    assert second.choices[0].message.content == "echo: 如何用Python反转列表？"
    assert calls(upstream) == n + 1
