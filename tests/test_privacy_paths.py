"""Every field a private value can travel in to a model is read and redacted: a participant's
`name`, an assistant's refusal (part or field), its reasoning and thinking blocks (what the
Anthropic endpoint makes of a `thinking` block), and a predicted output (`prediction`, a call
parameter that is prompt text); checked on the detector, through the proxy's three endpoints
and the SDK (the loopback upstream's recorded bodies), and for the response cache."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest
import yaml

from router.core import privacy
from router.core.privacy import detect, redact_messages
from router.server import create_app
from tests.proxy import Proxy, router_from
from tests.test_privacy import make_config

EMAIL = "ann.lee@example.org"
CARD = "4539 1488 0343 6467"  # Luhn-valid Visa test number
KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
SECRET = f"mail {EMAIL}, card {CARD}, key {KEY}, password: hunter2"
VALUES = (EMAIL, CARD, KEY, "hunter2", "4539", "ann.lee")


def leaked(obj) -> list[str]:
    text = json.dumps(obj, ensure_ascii=False, default=str)
    return [v for v in VALUES if v in text]


# ---- the detector and the redactor --------------------------------------------------------


def test_names_refusals_and_reasoning_are_read_and_redacted():
    msgs = [
        {"role": "user", "name": EMAIL, "content": "hello"},
        {"role": "assistant", "content": "no", "refusal": SECRET},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": SECRET}]},
        {
            "role": "assistant",
            "content": "a",
            "reasoning_content": SECRET,
            "thinking_blocks": [{"type": "thinking", "thinking": SECRET, "signature": "s"}],
        },
        {"role": "user", "content": f"and {EMAIL}"},
    ]
    for m in msgs[:4]:
        assert detect([m]), m  # each alone carries private data
    out = redact_messages(msgs)
    assert leaked(out) == []
    assert out[0]["name"] == "[EMAIL_1]"
    assert out[-1]["content"] == "and [EMAIL_1]"  # the same placeholder throughout
    assert out[1]["refusal"].startswith("mail [EMAIL_1], card [PAYMENT_CARD_1], key [SECRET_1]")
    assert out[2]["content"][0]["type"] == "refusal"
    assert out[3]["thinking_blocks"][0]["signature"] == "s"
    assert "[SECRET_" in out[3]["reasoning_content"]
    assert msgs[0]["name"] == EMAIL  # the caller's messages are untouched
    # A name with no value is left as it is.
    assert redact_messages([{"role": "user", "name": "bob", "content": EMAIL}])[0]["name"] == "bob"


def test_a_predicted_output_is_prompt_text():
    msgs = [{"role": "user", "content": f"Rewrite the config; mail {EMAIL}."}]
    params = {"prediction": {"type": "content", "content": SECRET}, "temperature": 0}
    assert detect(msgs) == ("email",)
    assert detect(privacy.prompt_of(msgs, params)) == ("email", "payment_card", "secret")
    out, sent = privacy.redact_call(msgs, params)
    assert leaked([out, sent]) == []
    assert out[0]["content"] == "Rewrite the config; mail [EMAIL_1]."
    assert sent["prediction"]["content"].startswith("mail [EMAIL_1], card [PAYMENT_CARD_1]")
    assert sent["temperature"] == 0 and params["prediction"]["content"] == SECRET
    parts = {"type": "content", "content": [{"type": "text", "text": SECRET}]}
    _, sent = privacy.redact_call(msgs, {"prediction": parts})
    assert leaked(sent) == []


# ---- through the proxy and the SDK ----------------------------------------------------------


@pytest.fixture
def redacting(test_config, tmp_path, router):
    """The proxy under `privacy.action: redact`, prompt logging on (the `prompt` column)."""
    r = router_from(make_config(test_config, tmp_path / "cfg", {"action": "redact"}), router)
    spec = r.config.server.model_copy(
        update={"decision_log": str(tmp_path / "d.db"), "keys_env": None, "log_prompts": True}
    )
    p = Proxy(create_app(r, spec)).start()
    yield p
    p.stop()


def _rows(proxy) -> list[dict]:
    import sqlite3

    proxy.decision_log.flush()
    con = sqlite3.connect(proxy.decision_log.path)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM decisions")]
    finally:
        con.close()


def test_no_value_leaves_from_the_fields_beside_content(redacting, upstream):
    u = {"role": "user", "content": "go on"}
    chat = [
        {"messages": [{"role": "user", "name": EMAIL, "content": "hello there"}]},
        {"messages": [u, {"role": "assistant", "content": "x", "refusal": SECRET}, u]},
        {
            "messages": [
                u,
                {"role": "assistant", "content": [{"type": "refusal", "refusal": SECRET}]},
                u,
            ]
        },
        {
            "messages": [{"role": "user", "content": "rewrite the file"}],
            "prediction": {"type": "content", "content": SECRET},
        },
    ]
    n = len(upstream.requests)
    for body in chat:
        r = httpx.post(
            redacting.base_url + "/chat/completions",
            json={"model": "router/escalate-all", **body},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert r.headers["x-router-privacy-action"] == "redact"
    thinking = {"type": "thinking", "thinking": SECRET, "signature": "sig"}
    r = httpx.post(
        redacting.base_url + "/messages",
        json={
            "model": "router/escalate-all",
            "max_tokens": 64,
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": [thinking, {"type": "text", "text": "a"}]},
                {"role": "user", "content": "more"},
            ],
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text
    sent = upstream.requests[n:]
    assert len(sent) == len(chat) + 1 and {b["model"] for b in sent} == {"large"}
    assert leaked(sent) == []
    assert sent[0]["messages"][0]["name"] == "[EMAIL_1]"
    assert sent[3]["prediction"]["content"].startswith("mail [EMAIL_1], card [PAYMENT_CARD_1]")
    assert "[SECRET_1]" in json.dumps(sent[4]["messages"][1])
    # The decision log's prompt column keeps the redacted messages.
    rows = _rows(redacting)
    assert len(rows) == len(chat) + 1 and leaked(rows) == []


def test_the_sdk_sends_a_redacted_prediction_and_the_cache_keeps_none(
    test_config, tmp_path, router, upstream
):
    path = make_config(test_config, tmp_path / "cfg", {"action": "redact"})
    r = router_from(path, router)
    n = len(upstream.requests)
    prediction = {"type": "content", "content": SECRET}
    out = r.chat("Rewrite the file, please.", policy="escalate-all", prediction=prediction)
    assert out.decision.privacy["rules"] == ["email", "payment_card", "secret"]
    sent = upstream.requests[n:]
    assert [b["model"] for b in sent] == ["large"] and leaked(sent) == []
    # Under `off` the cache looks for itself, in the predicted output too.
    dest = tmp_path / "cached"
    shutil.copytree(test_config.parent, dest)
    cfg = yaml.safe_load((dest / "config.yaml").read_text())
    cfg["cache"] = {"mode": "exact"}
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg))
    cached = router_from(dest / "config.yaml", router)
    ask = {"messages": "Rewrite the file, please.", "prediction": prediction}
    cached.chat(**ask)
    again = cached.chat(**ask)
    assert again.decision.cache["status"] == "bypass"
    assert "private data" in again.decision.cache["reason"]
