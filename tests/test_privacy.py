"""Private prompts stay on trusted models: the detectors (with their look-alikes), the policy's
privacy rule (pure), and through the proxy: `local` answers on the trusted model whatever the
difficulty says, `redact` sends no value upstream (checked on the loopback upstream's recorded
bodies), `refuse` is a 400 naming the rule; receipts, metrics and the decision log never carry
a value."""

from __future__ import annotations

import json
import random
import re
import shutil
import sqlite3
import unicodedata

import httpx
import numpy as np
import pytest
import yaml

from router.core import privacy
from router.core.config import ConfigError, ModelSpec, Policy, PrivacySpec, load_config
from router.core.policy import CompiledPolicy
from router.core.privacy import detect, find, redact_messages
from router.core.request import RequestError, request_facts
from router.server import create_app
from tests.proxy import Proxy, router_from

CARD = "4539 1488 0343 6467"  # Luhn-valid Visa test number
EMAIL = "ann.lee+bank@example.org"
IBAN = "DE89 3704 0044 0532 0130 00"


@pytest.mark.parametrize(
    "text, kind, value",
    [
        (f"my card is {CARD}, exp 04/27", "payment_card", CARD),
        ("card:4111111111111111", "payment_card", "4111111111111111"),
        (f"write to {EMAIL} today", "email", EMAIL),
        (f"IBAN {IBAN}.", "iban", IBAN),
        ("pay GB82WEST12345698765432 now", "iban", "GB82WEST12345698765432"),
        ("call +44 20 7946 0958 after six", "phone", "+44 20 7946 0958"),
        ("my cell is (415) 555-2671", "phone", "(415) 555-2671"),
        ("SSN 536-22-1234 on file", "national_id", "536-22-1234"),
        ("DNI 12345678Z", "national_id", "12345678Z"),
        ("key = 'sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z'", "secret", None),
        ("AWS AKIAIOSFODNN7EXAMPLE", "secret", "AKIAIOSFODNN7EXAMPLE"),
        ("password: Tr0ub4dor&3x", "secret", "Tr0ub4dor&3x"),
        ("export TOKEN=ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "secret", None),
        ("DATABASE_URL=mysql://root:S3cr3tPass@localhost:3306/app", "secret", "S3cr3tPass"),
        ("redis://:mypassword123@cache:6379/0", "secret", "mypassword123"),
        ("amqp://guest:guest@rabbit:5672//", "secret", "guest"),
        ("my password is hunter2, keep it", "secret", "hunter2"),
        ("it fails with wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY set", "secret", None),
        ("the key 7Gh2KqP9xLmW4vRt8ZsN3bYc6DfJ1aQe works", "secret", None),
        ("the password is: abc123", "secret", "abc123"),
        ("PASSWORD=sunshine", "secret", "sunshine"),
        # Detected before identifier names were (tests/test_privacy_values.py): kept so.
        ('password = "hunter2x"', "secret", "hunter2x"),
        ('{"password": "hunter2x"}', "secret", "hunter2x"),
        ("postgres://user:pass@host/db", "secret", "pass"),
        ("Authorization: Bearer 9f8e7d6c5b4a3928", "secret", "9f8e7d6c5b4a3928"),
        # `NAME=value`: the value is the secret, the name stays readable.
        (
            "API_KEY=AIzaLG0aKEVCgl0n0Ckmit448xdkyf7x7ICrgDR",
            "secret",
            "AIzaLG0aKEVCgl0n0Ckmit448xdkyf7x7ICrgDR",
        ),
        (
            "AWS_SECRET=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "secret",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        # Addresses in other scripts, and an apostrophe inside one, are addresses whole.
        ("Meine E-Mail ist jürgen.müller@beispiel.de.", "email", "jürgen.müller@beispiel.de"),
        ("écrivez à josé@correo.es", "email", "josé@correo.es"),
        ("メールは 山田@例え.jp です", "email", "山田@例え.jp"),
        ("mail ann.o'neil@example.com", "email", "ann.o'neil@example.com"),
        ("reply to 'ann@example.com' please", "email", "ann@example.com"),
    ],
)
def test_detects_private_values(text, kind, value):
    found = [f for f in find(text) if f.kind == kind]
    assert found, f"no {kind} in {text!r}"
    if value is not None:
        assert found[0].value == value
    assert value is None or value not in repr(found[0])  # a finding's repr shows no value


@pytest.mark.parametrize(
    "text",
    [
        "order 4539 1488 0343 6468 shipped",  # a card's shape, fails Luhn
        "Order #1234567890123456 is late",
        "IMEI 490154203237518",  # Luhn-valid, no card issuer prefix of that length
        "upgrade to version 1.22.3 or 2024.1.15",
        "the meeting is on 2024-01-15 at 10:30",
        "ISBN 978-3-16-148410-0",
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "id 123e4567-e89b-12d3-a456-426614174000",
        "server 192.168.100.200 port 8080",
        "IBAN DE89 3704 0044 0532 0130 01",  # wrong check digits
        "SSN 000-12-3456",  # no SSN starts with 000
        "SSN 666-24-4967 is never issued",  # nor with 666; nor is it a (Spanish) phone number
        "the result is 1234567 and 7654321",
        "call get_user_by_id_and_name() then retry",
        "user@localhost is not an address with a domain",
        "see https://example.com/a@b for the path",
        "postgres://app:${DB_PASSWORD}@db:5432/app and https://user:<password>@host/",
        # Prose about a secret, and code that handles one, carry none.
        "The password is incorrect, please try again",
        "auth is required for this endpoint",
        "Explain why the secret is important in Diffie-Hellman",
        "what does token = tokenizer.encode(text) return?",
        "api_key = os.environ['OPENAI_API_KEY'] fails with a KeyError",
        "password = getpass.getpass() and secret_key = settings.SECRET_KEY",
        "set api_key = OPENAI_API_KEY in the config",
        "pwd: /home/ann/projects and auth: https://id.example.com/callback",
        "class AbstractSingletonProxyFactoryBean2024Impl extends Base",
        "const userAuthenticationServiceFactory2 = new Factory();",
        "src='data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk'",
    ],
)
def test_look_alikes_do_not_fire(text):
    assert find(text) == []


def test_redaction_is_typed_and_consistent():
    msgs = [
        {"role": "system", "content": f"The customer is {EMAIL}."},
        {"role": "user", "content": [{"type": "text", "text": f"Charge {CARD} and mail {EMAIL}"}]},
    ]
    out = redact_messages(msgs)
    assert out[0]["content"] == "The customer is [EMAIL_1]."
    assert out[1]["content"][0]["text"] == "Charge [PAYMENT_CARD_1] and mail [EMAIL_1]"
    assert msgs[0]["content"].endswith(f"{EMAIL}.")  # the caller's messages are untouched
    assert detect(msgs) == ("email", "payment_card")
    assert detect(msgs, ["phone"]) == ()


def test_a_legacy_function_calls_arguments_are_detected_and_redacted():
    """`function_call` (the form before `tool_calls`) is sent on as it is, arguments too."""
    msgs = [
        {"role": "user", "content": "look me up"},
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "lookup", "arguments": json.dumps({"email": EMAIL})},
        },
        {"role": "function", "name": "lookup", "content": "found"},
    ]
    assert detect(msgs) == ("email",)
    out = redact_messages(msgs)
    assert out[1]["function_call"] == {"name": "lookup", "arguments": '{"email": "[EMAIL_1]"}'}
    assert EMAIL in msgs[1]["function_call"]["arguments"]  # the caller's messages are untouched


def test_a_connection_strings_password_is_a_secret_not_an_address():
    """A URL's user info carries a password; "password@host.domain" must not pass for an
    email address that, under `detect: [secret]`, nobody looks for."""
    url = "mongodb+srv://app:Tr0ub4dor&3@cluster0.ab1cd.mongodb.net/db"
    msgs = [{"role": "user", "content": f"why does {url} time out?"}]
    assert detect(msgs) == ("secret",)
    assert redact_messages(msgs)[0]["content"] == (
        "why does mongodb+srv://app:[SECRET_1]@cluster0.ab1cd.mongodb.net/db time out?"
    )


# ---- IBANs in any case, passwords in other languages, NFKC look-alikes ---------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("IBAN de89 3704 0044 0532 0130 00 please", "de89 3704 0044 0532 0130 00"),
        ("pay gb82west12345698765432 now", "gb82west12345698765432"),
        ("pay Gb82West12345698765432 now", "Gb82West12345698765432"),
        ("mein Konto: De89370400440532013000.", "De89370400440532013000"),
        ("fr14 2004 1010 0505 0001 3m02 606 is the account", "fr14 2004 1010 0505 0001 3m02 606"),
    ],
)
def test_ibans_are_detected_in_any_letter_case(text, value):
    assert [(f.kind, f.value) for f in find(text)] == [("iban", value)]


@pytest.mark.parametrize(
    "text",
    [
        "iban de89 3704 0044 0532 0130 01 is wrong",  # the uppercase one's check digits fail
        "pay gb82west12345698765433 now",
        "ab12cdefghijklmnopqr and xy99 abcd efgh ijkl mnop",
        "see de12 page 3456 7890 1234 of the manual",
        "the build id is fr76abcdefghijklmnopqrstuvw",
        # Its last digit groups are no phone number, as in upper case (make bench-privacy's set).
        "Is nl30 abna 4694 1683 21 a valid IBAN? The bank rejected it.",
    ],
)
def test_lowercase_iban_look_alikes_do_not_fire(text):
    assert find(text) == []


@pytest.mark.parametrize(
    "text, value",
    [
        ("Passwort: hunter2xyz", "hunter2xyz"),
        ("WLAN-Kennwort = Fr1tzBox!77", "Fr1tzBox!77"),
        ("Mein Passwort ist hunter2xyz, bitte nicht weitergeben", "hunter2xyz"),
        ("mot de passe : s3cret!", "s3cret!"),
        ("Mon mot de passe est Soleil2024 et je ne peux pas me connecter", "Soleil2024"),
        ("Le mot de passe est : Soleil2024", "Soleil2024"),
        ("Passwort: sonnenschein", "sonnenschein"),  # a word alone after the colon is a value
        ("contraseña: Gato2024!", "Gato2024!"),
        ("senha: abc12345", "abc12345"),
        ("wachtwoord: geheim123", "geheim123"),
        ("Пароль: qwerty123", "qwerty123"),
        ("hasło: Kot2024!", "Kot2024!"),
        ("lösenord: Sommar2024", "Sommar2024"),
        ("passord: Sommer2024", "Sommer2024"),
        ("adgangskode: Sommer2024", "Sommer2024"),
        ("salasana: Kesä2024!", "Kesä2024!"),
        ("Şifre: Yaz2024!x", "Yaz2024!x"),
        ("jelszó: Nyar2024!", "Nyar2024!"),
        ("heslo: Leto2024!", "Leto2024!"),
        ("Das WLAN-Passwort lautet Sommer2024!", "Sommer2024!"),
        ("Мой пароль — qwerty123", "qwerty123"),
        ("Wi-Fi şifresi: yaz2024!", "yaz2024!"),
        ("密码：abc12345", "abc12345"),
        ("我的密码是abc12345，谢谢", "abc12345"),
        ("パスワード: abc12345", "abc12345"),
        ("パスワードはabc12345です", "abc12345"),
        ("パスワードはhunter2です", "hunter2"),
        ("비밀번호: abc12345", "abc12345"),
        ('{"passwort": "hunter2xyz"}', "hunter2xyz"),
    ],
)
def test_passwords_are_detected_in_other_languages(text, value):
    assert [(f.kind, f.value) for f in find(text)] == [("secret", value)]


def test_a_password_in_another_language_keeps_its_name_when_redacted():
    msgs = [
        {"role": "user", "content": "PASSWORT=hunter2xyz\ncontraseña: Gato2024!\n密码：abc12345"}
    ]
    assert redact_messages(msgs)[0]["content"] == (
        "PASSWORT=[SECRET_1]\ncontraseña: [SECRET_2]\n密码：[SECRET_3]"
    )


@pytest.mark.parametrize(
    "text",
    [
        "Ich habe mein Passwort vergessen, wie setze ich es zurück?",
        "Das Passwort ist falsch.",
        "Wie lang muss ein sicheres Passwort sein?",
        "J'ai oublié mon mot de passe, que faire ?",
        "Le mot de passe est incorrect.",
        "Mi contraseña es incorrecta, ¿qué hago?",
        "我忘记了密码，怎么重置？",
        "密码错误，请重试。",
        "密码是什么？",
        "请输入密码：至少需要八个字符",
        "Passwort: mindestens acht Zeichen",  # a word that begins a phrase is not a value
        "Password: required for every account",
        "パスワードは8文字以上必要です",
        "The password is incorrect.",  # a sentence's full stop does not make a word a value
    ],
)
def test_prose_about_passwords_in_other_languages_carries_none(text):
    assert find(text) == []


@pytest.mark.parametrize(
    "text, kind, value",
    [
        ("write to alice＠example.com today", "email", "alice＠example.com"),
        ("write to alice@example．com today", "email", "alice@example．com"),
        (
            "card ４５３９ １４８８ ０３４３ ６４６７ ok",
            "payment_card",
            "４５３９ １４８８ ０３４３ ６４６７",
        ),
        ("call ＋４４ ２０ ７９４６ ０９５８ now", "phone", "＋４４ ２０ ７９４６ ０９５８"),
        ("call +44\u00a020\u00a07946\u00a00958 now", "phone", "+44\u00a020\u00a07946\u00a00958"),
        (
            "ＩＢＡＮ ＤＥ８９ ３７０４ ００４４ ０５３２ ０１３０ ００",
            "iban",
            "ＤＥ８９ ３７０４ ００４４ ０５３２ ０１３０ ００",
        ),
        ("ｐａｓｓｗｏｒｄ：ｈｕｎｔｅｒ２ｘｙｚ", "secret", "ｈｕｎｔｅｒ２ｘｙｚ"),
    ],
)
def test_nfkc_look_alikes_are_detected_on_their_original_span(text, kind, value):
    found = find(text)
    assert [(f.kind, f.value) for f in found] == [(kind, value)]
    assert text[found[0].start : found[0].end] == value


def test_the_characters_skipped_by_the_nfkc_reading_are_their_own_nfkc_form():
    stable = re.compile(f"[{privacy._NFKC_STABLE}]")
    chars = [chr(c) for c in range(0x10000) if stable.match(chr(c))]
    assert len(chars) > 30000
    assert all(unicodedata.normalize("NFKC", c) == c for c in chars)


def test_the_nfkc_reading_maps_every_character_back_to_its_origin():
    rng = random.Random(0)
    alphabet = [*"ab 12@.", "…", "ﬁ", "＠", "１", "½", "\u00a0", "é", "密", "㎏", "\u0301"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
        view = privacy._nfkc_view(text)
        if view is None:
            continue
        norm, origin = view
        forms = [unicodedata.normalize("NFKC", c) for c in text]
        assert norm == "".join(forms)
        assert [origin(j) for j in range(len(norm))] == [i for i, f in enumerate(forms) for _ in f]


def test_redacting_a_look_alike_changes_nothing_else():
    text = "ｍａｉｌ alice＠example.com… or call ＋４４ ２０ ７９４６ ０９５８ ﬁne"
    assert redact_messages([{"role": "user", "content": text}])[0]["content"] == (
        "ｍａｉｌ [EMAIL_1]… or call [PHONE_1] ﬁne"
    )


# ---- the policy's rule (pure) -------------------------------------------------------------

CATALOGUE = [
    ModelSpec(
        name="remote",
        litellm_model="openai/x",
        input_price=5,
        output_price=15,
        context_window=8000,
        tier="large",
    ),
    ModelSpec(
        name="cheap",
        litellm_model="openai/y",
        input_price=0.1,
        output_price=0.1,
        context_window=8000,
    ),
    ModelSpec(name="mine", gguf="m.gguf", input_price=0, output_price=0, context_window=8000),
]
DOMAINS = ["general", "math"]


def decide(action: str, private=("payment_card",), pin=None):
    policy = Policy(
        name="p", default=["cheap", "mine"], large=["remote"], escalation={"max_difficulty": 0.0}
    )
    compiled = CompiledPolicy(policy, CATALOGUE, DOMAINS, PrivacySpec(action=action))
    facts = request_facts("hi", {}, private=private, pinned_model=pin)
    return compiled.decide(facts, np.array([0.9, 0.1]), 0.9, {})


def test_local_models_are_trusted_by_default_and_remote_ones_not():
    assert [m.trusted for m in CATALOGUE] == [False, False, True]


def test_policy_rule_local_refuse_redact():
    assert decide("off").model == "remote"  # everything escalates
    local = decide("local")
    assert local.model == "mine" and local.fallbacks == []
    assert local.privacy == {"action": "local", "rules": ["payment_card"], "redacted": False}
    assert "is trusted (privacy: the prompt carries payment_card)" in local.reason
    assert decide("local", private=()).model == "remote"  # nothing detected: as usual
    with pytest.raises(RequestError, match="privacy rule.*payment_card") as e:
        decide("refuse")
    assert e.value.code == "privacy_refused" and e.value.param == "messages"
    with pytest.raises(RequestError, match="pinned model 'remote' is not trusted"):
        decide("local", pin="remote")
    redact = decide("redact")
    assert redact.model == "remote" and redact.privacy["redacted"] is True


# ---- configuration ------------------------------------------------------------------------


def make_config(
    test_config,
    dest,
    privacy: dict,
    trusted: str | None = "small-general",
    policy_privacy: dict | None = None,
):
    shutil.copytree(test_config.parent, dest)
    (dest / "policies" / "flaky.yaml").unlink()  # no trusted model in it (see the last test)
    path = dest / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["privacy"] = privacy
    cfg["decision_log"] = {"store_text": True}  # the routing text is kept: check it is redacted
    for m in cfg["models"]:
        if m["name"] == trusted:
            m["trusted"] = True  # the loopback stand-in for the local tier
    path.write_text(yaml.safe_dump(cfg))
    (dest / "policies" / "escalate-all.yaml").write_text(
        yaml.safe_dump(
            {
                "default": ["small-general"],
                "large": ["large"],
                "escalation": {"max_difficulty": 0.0},
                **({"privacy": policy_privacy} if policy_privacy else {}),
            }
        )
    )
    return path


def test_config_errors_name_the_field(test_config, tmp_path, router):
    with pytest.raises(ConfigError, match=r"privacy\.action: 'local' needs a trusted model"):
        load_config(make_config(test_config, tmp_path / "a", {"action": "local"}, trusted=None))
    with pytest.raises(ConfigError, match=r"privacy\.detect"):
        load_config(
            make_config(test_config, tmp_path / "b", {"action": "redact", "detect": ["dna"]})
        )
    assert (
        load_config(make_config(test_config, tmp_path / "c", {"action": False})).privacy.action
        == "off"
    )
    # A policy under `local` must name a trusted model.
    path = make_config(test_config, tmp_path / "d", {"action": "local"})
    (path.parent / "policies" / "remote-only.yaml").write_text("default: [large]\nlarge: [large]\n")
    with pytest.raises(ConfigError, match=r"remote-only\.yaml: privacy\.action"):
        router_from(path, router)


def test_a_session_does_not_keep_private_data_on_an_untrusted_model(test_config, tmp_path, router):
    r = router_from(make_config(test_config, tmp_path / "cfg", {"action": "local"}), router)
    first = [{"role": "user", "content": "Explain how chargebacks work."}]
    a = r.chat(first, policy="escalate-all", session="s-1")
    assert a.decision.model == "large"
    second = first + [
        {"role": "assistant", "content": a.choices[0].message.content},
        {"role": "user", "content": f"My card {CARD} was charged twice; start one."},
    ]
    b = r.chat(second, policy="escalate-all", session="s-1")
    assert b.decision.model == "small-general"  # the session leaves the untrusted model
    assert "session leaves large" in b.decision.reason


# ---- through the proxy --------------------------------------------------------------------


@pytest.fixture
def serve(test_config, tmp_path, router):
    started = []

    def start(privacy: dict, policy_privacy: dict | None = None, log_prompts: bool = False):
        path = make_config(
            test_config, tmp_path / f"cfg{len(started)}", privacy, policy_privacy=policy_privacy
        )
        r = router_from(path, router)
        spec = r.config.server.model_copy(
            update={
                "decision_log": str(tmp_path / f"decisions{len(started)}.db"),
                "keys_env": None,
                "log_prompts": log_prompts,
            }
        )
        p = Proxy(create_app(r, spec)).start()
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def chat(proxy, content: str, **kw) -> httpx.Response:
    body = {
        "model": "router/escalate-all",
        "messages": [{"role": "user", "content": content}],
        **kw,
    }
    return httpx.post(proxy.base_url + "/chat/completions", json=body, timeout=60)


def logged(proxy, request_id: str) -> dict:
    proxy.decision_log.flush()
    con = sqlite3.connect(proxy.decision_log.path)
    con.row_factory = sqlite3.Row
    try:
        return dict(
            con.execute("SELECT * FROM decisions WHERE request_id = ?", (request_id,)).fetchone()
        )
    finally:
        con.close()


def test_local_answers_on_the_trusted_model_and_the_receipt_says_why(serve, upstream):
    proxy = serve({"action": "local"}, log_prompts=True)
    plain = chat(proxy, "What is the refund policy for my order?")
    assert plain.headers["x-router-model"] == "large"  # the policy escalates everything
    assert "x-router-privacy" not in plain.headers
    r = chat(proxy, f"My card {CARD} was charged twice, what do I do?")
    assert r.status_code == 200
    assert r.headers["x-router-model"] == "small-general"
    assert r.headers["x-router-privacy"] == "payment_card"
    assert r.headers["x-router-privacy-action"] == "local"
    assert "is trusted (privacy: the prompt carries payment_card)" in r.headers["x-router-reason"]
    assert upstream.requests[-1]["model"] == "small-general"
    assert CARD not in json.dumps(dict(r.headers))
    # The decision log (prompt logging on, even) keeps no value, only the kind.
    row = logged(proxy, r.headers["x-request-id"])
    assert CARD not in json.dumps(row, default=str)
    assert "[PAYMENT_CARD_1]" in row["prompt"]
    assert "[PAYMENT_CARD_1]" in row["routing_text"]
    assert (row["privacy"], row["privacy_action"]) == ("payment_card", "local")
    metrics = httpx.get(proxy.url + "/metrics", timeout=30).text
    assert 'router_privacy_requests_total{action="local",kind="payment_card"} 1.0' in metrics


def test_redact_sends_no_value_upstream(serve, upstream):
    proxy = serve({"action": "redact"})
    n = len(upstream.requests)
    text = f"Refund {CARD} to {IBAN} and confirm to {EMAIL}."
    r = chat(proxy, text)
    assert r.status_code == 200
    assert r.headers["x-router-model"] == "large"  # redacted values may leave
    assert r.headers["x-router-privacy"] == "email,iban,payment_card"
    sent = json.dumps(upstream.requests[n:])
    for value in (CARD, IBAN, EMAIL, "4539", "3704 0044", "ann.lee"):
        assert value not in sent
    assert "Refund [PAYMENT_CARD_1] to [IBAN_1] and confirm to [EMAIL_1]." in sent
    # Streams too.
    m = len(upstream.requests)
    with httpx.stream(
        "POST",
        proxy.base_url + "/chat/completions",
        timeout=60,
        json={
            "model": "router/escalate-all",
            "stream": True,
            "messages": [{"role": "user", "content": text}],
        },
    ) as s:
        list(s.iter_lines())
    assert upstream.requests[m:] and CARD not in json.dumps(upstream.requests[m:])


def test_refuse_is_a_400_that_names_the_rule(serve, upstream):
    proxy = serve(
        {"action": "local"},
        policy_privacy={"action": "refuse", "detect": ["secret"]},
        log_prompts=True,
    )
    n = len(upstream.requests)
    r = chat(proxy, "here is my key AKIAIOSFODNN7EXAMPLE, is it valid?")
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "privacy_refused" and err["param"] == "messages"
    assert "privacy rule" in err["message"] and "secret" in err["message"]
    assert "AKIAIOSFODNN7EXAMPLE" not in r.text
    assert len(upstream.requests) == n
    # The refused request's row (prompt logging on) keeps the prompt without the value.
    row = logged(proxy, r.headers["x-request-id"])
    assert row["status"] == 400 and "AKIAIOSFODNN7EXAMPLE" not in json.dumps(row, default=str)
    assert "here is my key [SECRET_1], is it valid?" in row["prompt"]
    # The policy's own detect list: a card is not a `secret`, so it goes through.
    assert chat(proxy, f"card {CARD}").status_code == 200
