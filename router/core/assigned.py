"""Values given to a password, a key or a token in a text, for the secret detector
(`router/core/privacy.py`): `password: hunter2`, `DB_PASSWORD=...` and `PGPASSWORD=... psql`
(env files, shell lines, config, code), `"db_password": "..."`, "my password is ...", and the
word for password in other languages (`Passwort: ...`, `비밀번호는 ...입니다`). What is not a
value: a phrase about a password ("Password: required for every account"), code that reads
one (`password = os.environ["DB_PASSWORD"]`, `password=db_password`, a type annotation), a
template's stand-in (`${DB_PASSWORD}`, `your_password_here`). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# The word for password in other languages: German, French, Spanish, Portuguese, Dutch,
# Russian, Polish, Swedish, Norwegian/Danish, Finnish, Turkish, Hungarian, Czech; and (no word
# boundary in scripts written without spaces) Chinese, Japanese, Korean.
PASSWORD_WORDS = (
    r"passwort|kennwort|mot\s+de\s+passe|contrase[ñn]a|senha|wachtwoord|пароль|has[łl]o"
    r"|l[öo]senord|passord|adgangskode|salasana|[şs]ifre(?:si)?|jelsz[óo]|heslo"
)
CJK_PASSWORD_WORDS = r"密码|密碼|パスワード|비밀번호"
# The letters those words begin with besides a, p and s (a test checks it).
PASSWORD_WORDS_START = "kmcwпhlşj密パ비"
# Parts of those words (lower case): a text with none of them skips their slower pattern.
PASSWORD_KEYS = (
    "passwort", "kennwort", "de passe", "contrase", "senha", "wachtwoord", "пароль", "hasło",
    "haslo", "senord", "passord", "adgangskode", "salasana", "ifre", "jelsz", "heslo", "密码",
    "密碼", "パスワード", "비밀번호",
)  # fmt: skip

# Words that, after a word given to a password, end the value: a list goes on ("password:
# sunshine and the user is bob"), where a phrase would say what the password must be.
ENDS_A_VALUE = frozenset(
    "and or but then plus also und oder aber dann sowie et ou mais puis y o pero luego e mas"
    " maar dan и или но а потом затем i lub ale oraz potem och eller men sedan og ja tai"
    " mutta sitten ve veya ama sonra és vagy aztán a nebo pak".split()
)
# Words of 8 letters or more that say what a password is or must be rather than give one
# ("Password: required and ...", "Passwort: erforderlich"): never a value.
DESCRIBES_A_PASSWORD = frozenset(
    "required optional mandatory compulsory obligatory necessary incorrect minimum maximum"
    " forgotten disabled encrypted protected generated different anything whatever something"
    " everything provided specified supplied unchanged redacted temporary personal separate"
    " separately included attached enclosed requested described mentioned following previous"
    " original existing currently sensitive confidential available unavailable recommended"
    " erforderlich obligatorisch notwendig vergessen ungültig abgelaufen mindestens höchstens"
    " geändert beliebig zwingend verschlüsselt obligatoire facultatif optionnel nécessaire"
    " différent inchangé obligatorio obligatoria opcional incorrecto incorrecta requerido"
    " requerida necesario necesaria olvidada caducada inválida obrigatório obrigatória"
    " incorreto incorreta necessário necessária esquecida verplicht optioneel vergeten verlopen"
    " ongeldig обязателен обязательно необязательно неверный неправильный wymagane"
    " obowiązkowe nieprawidłowe opcjonalne obligatoriskt obligatorisk valfritt volitelné"
    " nesprávné".split()
)
# Letters of scripts written without spaces, their punctuation and full-width forms: not part
# of a value ("パスワードはabc123です": the value is "abc123"; full-width text is read in its
# NFKC form, see `privacy.find`).
_CJK = r"\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"


def _assigned(words: str = "", unspaced: str = "", starts: str = "") -> re.Pattern:
    """A value given to a key, token or password: `name: value`, `name=value`, "name is value"
    (`words`: more names; `unspaced`: names in scripts without spaces, with no word boundary).
    A password's name may end an identifier (`DB_PASSWORD`, `PGPASSWORD`, `dbPassword`,
    `MYSQL_PWD`, `SMTP_PASS` in upper case), as env files, shell lines and code name them.
    (`starts`: the letters the more names begin with; a look-ahead for the first letters of all
    skips most places at once, which the names' boundaries and look-behinds would not.)"""
    names = r"api[_-]?key|access[_-]?key|secret(?:[_-]?key)?|token|auth|authorization"
    names = rf"\b(?:{names})|(?<![^\W_])(?:pwd{'|' + words if words else ''})|pass(?:word|wd)"
    names += r"|(?-i:(?<=_)PASS)"
    if unspaced:
        names += f"|{unspaced}"
    return re.compile(
        rf"(?i)(?=[apst{starts}])(?:{names})[\"']?"
        r"(?:\s*([:=—–])\s*|(\s+(?:is|ist|lautet|est|es|é)(?:\s*:)?\s+"
        r"|\s*(?:是|为|為|は|が|는|은|가)\s*))[\"'「『“‘]?"
        rf"(?:(?:bearer|basic|token)\s+)?([^\s\"'“”‘’,;{_CJK}]{{6,}})"
    )


_ASSIGNED = _assigned()
_ASSIGNED_ANY_LANGUAGE = _assigned(PASSWORD_WORDS, CJK_PASSWORD_WORDS, PASSWORD_WORDS_START)
# After an assigned word, another word on its line (captured): the word may begin a phrase.
_PHRASE = re.compile(r"[ \t]+([^\W\d_]+)")
# An assigned value that is code, not a value: a call, an index, an attribute, an env var's name.
_CODE = re.compile(r"[()\[\]]|^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$|^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
# Words joined by `_`, `-` or `.`, one of them a credential's name: a variable or a stand-in
# (`ssl_password`, `user_pass`, `fake-access-token`, `very_secret_pass`), not a value.
_NAMES_ONE = re.compile(
    r"(?i)^(?=.*[-_.])(?:[^\W\d_]+[-_.]+)*(?:password|passwd|pass|pwd|secret|token|key|auth"
    r"|credentials?)(?:[-_.]+[^\W\d_]+)*$"
)
# After `name = ` (code, not an env file or a shell line), an unquoted snake_case name is a
# variable (`password = db_password`); after `name: `, a value that `=` follows is a type
# (`password: SecretStr = Field()`).
_VARIABLE = re.compile(r"^_*[a-z][a-z0-9]*(?:_+[a-z0-9]+)+$")
_ANNOTATION = re.compile(r"\s*(?:=(?!=)|\|\s*None\b)")
_QUOTES = "\"'「『“‘"
_NAMES = ("password", "passwd", "secret", "secret_key", "api_key", "token", "auth")


# A stand-in written in words: `your_api_key_here`, `your-password`, `<...>_here`.
_STAND_IN = re.compile(r"(?i)^your[_-]|[_-]here$|\*\*\*")


def placeholder(value: str) -> bool:
    """A template's stand-in for the value (`${DB_PASSWORD}`, `<password>`, `[SECRET_1]`,
    `your_password_here`, `sk-***`)."""
    return (
        value.startswith(("{", "$", "<", "[", "%("))
        or set(value) <= set("*x")
        or _STAND_IN.search(value) is not None
    )


def _is_value(value: str, prose: bool, then: str | None = None) -> bool:
    """Is the value given to a key, token or password one? Not a stand-in, not code
    (`token = tokenizer.encode(text)`), and in prose not a word: "the password is incorrect"
    says nothing secret, "my password is hunter22" does, and so does "password: sunshine1".
    A word of 8 letters or more alone after the colon is a value ("password: sunshine"),
    unless it says what a password must be ("Password: required"). When more words follow it
    on its line (`then`: the next one), it is a value only if that word ends it, as a list
    goes on ("password: sunshine and the user is bob"); otherwise it begins a phrase
    ("Passwort: mindestens acht Zeichen", "Password: required for every account")."""
    if len(set(value)) < 5 or placeholder(value) or _CODE.search(value):
        return False
    if _NAMES_ONE.match(value.rstrip("}")):
        return False
    if value.startswith(("/", "~/", "./", "../")) or "://" in value:
        return False  # "pwd: /home/ann", "auth: https://id.example.com/callback"
    word = value.rstrip(".!?")  # "Das Passwort ist falsch.": a sentence's end is no part of it
    if not word.isalpha():
        return True
    if prose or len(word) < 8 or word.lower() in DESCRIBES_A_PASSWORD:
        return False
    return then is None or then.lower() in ENDS_A_VALUE


def given_values(text: str) -> Iterator[tuple[int, int]]:
    """Where each value given to a password, key or token in `text` starts and ends."""
    lower = text.lower()
    pattern = _ASSIGNED_ANY_LANGUAGE if any(k in lower for k in PASSWORD_KEYS) else _ASSIGNED
    for m in pattern.finditer(text):
        follows = _PHRASE.match(text, m.end(3))
        then = follows.group(1) if follows else None
        at, value = m.start(1), m.group(3)
        unquoted = text[m.start(3) - 1] not in _QUOTES
        if m.group(1) == "=" and unquoted and value in _NAMES and text[m.start()].islower():
            continue  # `upstream_password=password`: code passes a variable of that name on
        if m.group(1) == "=":
            if not (text[at - 1].isspace() or text[at + 1].isspace()):
                then = None  # `PGPASSWORD=secret psql ...`: a shell's NAME=value, a command
            elif unquoted and _VARIABLE.match(value):
                continue
            elif then is not None:
                then = "="  # `password = password or ""`: code, where no word ends a value
        elif m.group(1) == ":" and _ANNOTATION.match(text, m.end(3)):
            continue
        if _is_value(value, prose=m.group(2) is not None, then=then):
            yield m.start(3), m.end(3)
