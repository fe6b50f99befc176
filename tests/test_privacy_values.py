"""The secret detector on values it used to miss, with the look-alikes that must stay quiet:
passwords in env files, shell lines and code under an identifier's name (`DB_PASSWORD=...`),
Korean and Japanese sentences where the value comes before the verb, a plain word given to a
password that more words follow, and an IBAN in random letter case (an IBAN, not a secret).
Pure: `find` on strings, no proxy."""

from __future__ import annotations

import re

import pytest

from router.core import assigned
from router.core.privacy import find, redact_messages


def found(text: str, kinds: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    return [(f.kind, f.value) for f in (find(text, kinds) if kinds else find(text))]


# ---- env files, shell lines, config and code ----------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("DB_PASSWORD=hunter2x", "hunter2x"),
        ("DB_HOST=db\nDB_PASSWORD=hunter2x\nDB_USER=app", "hunter2x"),
        ('export MYSQL_ROOT_PASSWORD="s3cr3tPass"', "s3cr3tPass"),
        ("export MYSQL_ROOT_PASSWORD=s3cr3tPass", "s3cr3tPass"),
        ("PGPASSWORD=hunter2x psql -h db -U app", "hunter2x"),
        ("PGPASSWORD=sunshine psql -h db", "sunshine"),  # a command, not a phrase, follows
        ("MYSQL_PWD=letmein99 mysql -u root", "letmein99"),
        ("SMTP_PASS=letmein99", "letmein99"),
        ("REDIS_PASSWORD=changeme", "changeme"),
        ("docker run -e POSTGRES_PASSWORD=mysecretpassword postgres", "mysecretpassword"),
        ("services:\n  db:\n    environment:\n      POSTGRES_PASSWORD: example123", "example123"),
        ('db_password = "hunter2x"', "hunter2x"),
        ("const dbPassword = 'hunter2x';", "hunter2x"),
        ('{"db_password": "hunter2x", "user": "app"}', "hunter2x"),
        ('{"Passwort_DB": "x", "DB_PASSWORT": "hunter2xyz"}', "hunter2xyz"),
    ],
)
def test_a_password_named_by_an_identifier_is_a_secret(text, value):
    assert found(text) == [("secret", value)]


def test_an_env_files_password_keeps_its_name_when_redacted():
    msgs = [
        {"role": "user", "content": "DB_USER=app\nDB_PASSWORD=hunter2x\nPGPASSWORD=s3cr3t psql"}
    ]
    assert redact_messages(msgs)[0]["content"] == (
        "DB_USER=app\nDB_PASSWORD=[SECRET_1]\nPGPASSWORD=[SECRET_2] psql"
    )


@pytest.mark.parametrize(
    "text",
    [
        'password = os.environ["DB_PASSWORD"]',
        'DB_PASSWORD = os.getenv("DB_PASSWORD")',
        "password = getpass()",
        'password = getpass.getpass("Password: ")',
        "db_password = settings.DB_PASSWORD",
        "DB_PASSWORD=${DB_PASSWORD}",
        "spring.datasource.password=${DB_PASS}",
        'password: "{{ vault_db_password }}"',
        "export DB_PASSWORD",
        "DB_PASSWORD=your_password_here",
        "Set PGPASSWORD before you run psql.",
        "The DB_PASSWORD variable holds the database password.",
        # Code passes a variable on: its name is no value.
        "self.ssl_password = ssl_password",
        "client = Redis(host=host, upstream_password=password, ssl=True)",
        "index_url, _, index_url_user_password = index_info",
        'password = password or ""',
        # Type annotations and names that end in `_pass` (a compiler's pass, not a password).
        "password: SecretStr = Field(...)",
        "is_password: FilterOrBool = False,",
        "custom_pass: CustomGraphModulePass = None",
        "k_pass = k_pass * self.scale",
        # Stand-ins: words joined, one of them a credential's name; masked values.
        '"redis_password": "very_secret_pass"',
        '"client_secret": "fake_google_client_secret"',
        'api_key = "sk-1****cdef"',
    ],
)
def test_code_that_reads_a_password_carries_none(text):
    assert found(text) == []


# ---- Korean and Japanese: the value before the verb -----------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("비밀번호는 sunshine42입니다", "sunshine42"),
        ("제 비밀번호는 hunter2예요", "hunter2"),
        ("내 비밀번호는 qwerty123이야", "qwerty123"),
        ("비밀번호가 abc12345입니다", "abc12345"),
        ('와이파이 비밀번호는 "Haneul2024!"입니다.', "Haneul2024!"),
        ("パスワードは「hunter22」です", "hunter22"),
        ("パスワードがhunter22に変わりました", "hunter22"),
    ],
)
def test_a_password_before_the_verb_is_a_secret(text, value):
    assert found(text) == [("secret", value)]


@pytest.mark.parametrize(
    "text",
    [
        "비밀번호는 무엇인가요?",
        "비밀번호는 8자 이상이어야 합니다",
        "비밀번호가 틀렸습니다",
        "비밀번호는 영문과 숫자를 포함해야 합니다",
        "パスワードが違います",
        "パスワードは忘れました",
    ],
)
def test_korean_and_japanese_prose_about_passwords_carries_none(text):
    assert found(text) == []


# ---- a plain word given to a password, more words after it ----------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("password: sunshine and the username is bob", "sunshine"),
        ("my password: sunshine and my pin is 1234", "sunshine"),
        ("login: admin, password: starlight then press enter", "starlight"),
        ("Passwort: sonnenschein und der Benutzer ist admin", "sonnenschein"),
    ],
)
def test_a_word_that_a_list_goes_on_after_is_a_password(text, value):
    assert found(text) == [("secret", value)]


@pytest.mark.parametrize(
    "text",
    [
        "Password: required for every account",
        "Password: required",  # a word that says what a password must be, even alone
        "Password: required and must be 12 characters",
        "Password: incorrect and locked",
        "Password: whatever and then some",
        "Passwort: erforderlich und geheim",
        "The password is incorrect.",
        "The password is sunshine and it never changed",  # prose: a plain word is no value
    ],
)
def test_a_word_about_a_password_is_not_one(text):
    assert found(text) == []


# ---- IBANs in random letter case ------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["It76X5140261401QfoEQH3aV90R", "fr7223159425943jQ64Nq6PuX03", "iT07X8066717231QOCHVqDr917Q"],
)
def test_an_iban_in_random_letter_case_is_an_iban_not_a_secret(value):
    text = f"Send the refund to {value} please."
    assert found(text) == [("iban", value)]
    assert found(text, ("secret",)) == []  # not a key, whoever looks for one
    assert redact_messages([{"role": "user", "content": text}])[0]["content"] == (
        "Send the refund to [IBAN_1] please."
    )


def test_the_letters_the_password_words_begin_with_are_looked_ahead_for():
    alternatives = (assigned.PASSWORD_WORDS + "|" + assigned.CJK_PASSWORD_WORDS).split("|")
    firsts = set()
    for alt in alternatives:
        firsts |= set(alt[1 : alt.index("]")] if alt.startswith("[") else alt[0])
    assert firsts <= set("aps" + assigned.PASSWORD_WORDS_START)
    assert all(re.fullmatch(r"[^\W\d_]", c) for c in assigned.PASSWORD_WORDS_START)
