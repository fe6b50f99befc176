"""Private values in a prompt: what they are, and the prompt with each one replaced.

Pure functions, no I/O. Each detector finds candidates with a regular expression and keeps only
those that pass the value's own check, so look-alikes do not fire. A text with characters that
Unicode's compatibility normalisation (NFKC) changes (full-width `＠`, letters and digits, a
no-break space, `：`) is read in its NFKC form, each character on its own; the values found
are the original text's spans, and nothing else of it changes when they are replaced:

- `email`: an address with a dotted domain, in any script.
- `phone`: international numbers (+CC ...) and national ones in the usual written shapes,
  kept when libphonenumber (`phonenumbers`) says the number is valid for its country (national
  numbers are tried against `PHONE_REGIONS`); a run of bare digits only next to a word like
  "call" or "phone". Dates, versions, IP addresses and ISBNs do not have these shapes.
- `payment_card`: 13-19 digits (groups of digits allowed) that pass the Luhn check and start
  with a card network's issuer prefix, so an order number that fails Luhn is not a card.
- `iban`: country code, check digits and account, in any letter case, kept when the ISO 7064
  mod-97 check, the country's length and its account format hold (`python-stdnum`).
- `national_id`: US SSN, UK National Insurance number, Spanish DNI/NIE, French NIR, Italian
  codice fiscale, Indian Aadhaar, Canadian SIN, Brazilian CPF (each with its own checksum or
  structure, validated by `python-stdnum` where it has one); digit-only ids that look like any
  number (German tax id, Dutch BSN, Polish PESEL) only next to a word that names them.
- `secret`: API keys and tokens by their known prefixes (OpenAI, Anthropic, AWS, GitHub,
  GitLab, Slack, Stripe, Google, Hugging Face, npm, SendGrid, JWTs, PEM private keys), values
  given to a key/token/password/secret, to a password under an identifier's name
  (`DB_PASSWORD=`, `PGPASSWORD=`, `"db_password":`, `db_pass=`), or to the word for password
  in other languages (`Passwort:`, `mot de passe :`, `пароль:`, `密码：`, `パスワードは...です`,
  `비밀번호는 ...입니다` ...); a plain word given to a password in English ("my password is
  sunshine", `pw: tiger`), a passphrase's words, an XML element's text
  (`<password>...</password>`) and MySQL's `-p...` (not code, a stand-in, a path, a URL, nor
  a phrase or a word that describes a password: `router/core/assigned.py`), passwords in a
  URL (`scheme://user:password@host`, as connection strings carry them), and stand-alone
  high-entropy strings (three character classes, entropy over 4 bits a character); hex
  hashes, UUIDs and IBANs are not secrets.

`redact_messages` replaces each value with a typed placeholder (`[EMAIL_1]`, `[PAYMENT_CARD_2]`):
the same value gets the same placeholder throughout a conversation. Findings carry their value
for redaction only; their repr never shows it.
"""

from __future__ import annotations

import bisect
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from router.core.assigned import given_values, placeholder

KINDS: tuple[str, ...] = ("email", "phone", "payment_card", "iban", "national_id", "secret")
# Countries whose national phone formats are tried for a number written without +CC.
PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "IN", "AU")
# When two findings overlap, the one of the earlier kind here wins.
_PRIORITY = {
    k: i for i, k in enumerate(("secret", "email", "iban", "payment_card", "national_id", "phone"))
}

Message = dict[str, Any]


@dataclass(frozen=True)
class Finding:
    """One private value in a text: its kind and where it is (`value` never shows in repr)."""

    kind: str
    start: int
    end: int
    value: str = field(repr=False)


# ---- email --------------------------------------------------------------------------------

# Letters and digits of any script (`[^\W_]`): "müller@beispiel.de" and internationalised
# domains are addresses too; an apostrophe may sit inside the local part ("o'neil@...").
_EMAIL = re.compile(
    r"(?<![\w.+-])[^\W_][\w.%+'-]{0,63}(?<!')@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-])"
)


def _emails(text: str) -> Iterable[Finding]:
    for m in _EMAIL.finditer(text):
        yield Finding("email", m.start(), m.end(), m.group())


# ---- payment cards ------------------------------------------------------------------------

# Not inside a longer number, a decimal or a dashed code; a sentence's full stop may follow.
_CARD = re.compile(r"(?<![\w-])(?<!\d\.)\d(?:[ -]?\d){12,18}(?![\w-]|\.\d)")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _issuer(digits: str) -> bool:
    """Does the number start with a card network's issuer prefix (for its length)?"""
    n, p2, p4, p6 = len(digits), int(digits[:2]), int(digits[:4]), int(digits[:6])
    return (
        (digits[0] == "4" and n in (13, 16, 19))  # Visa
        or (51 <= p2 <= 55 and n == 16)  # Mastercard
        or (2221 <= p4 <= 2720 and n == 16)
        or (p2 in (34, 37) and n == 15)  # American Express
        or ((p4 == 6011 or p2 == 65 or 644 <= p4 // 10 <= 649) and 16 <= n <= 19)  # Discover
        or (3528 <= p4 <= 3589 and 16 <= n <= 19)  # JCB
        or ((300 <= p4 // 10 <= 305 or p2 in (36, 38)) and 14 <= n <= 19)  # Diners Club
        or (p2 == 62 and 16 <= n <= 19)  # UnionPay
        or ((p2 == 50 or 56 <= p2 <= 69) and 12 <= n <= 19)  # Maestro
        or (622126 <= p6 <= 622925 and n == 16)
    )


def _cards(text: str) -> Iterable[Finding]:
    for m in _CARD.finditer(text):
        raw = m.group()
        seps = {c for c in raw if not c.isdigit()}
        if len(seps) > 1:
            continue  # "4111 1111-1111 1111": not how a card number is written
        digits = raw.replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _issuer(digits) and _luhn(digits):
            yield Finding("payment_card", m.start(), m.end(), raw)


# ---- IBAN ---------------------------------------------------------------------------------

# Written in one run, or in groups of four, in any letter case ("de89 3704 ...",
# "gb82west..."); a candidate that fails the check is retried without its last groups (the
# words after an IBAN can look like more groups). The check (mod 97, the country's length and
# account format) is what keeps a word followed by digits out.
_IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[A-Za-z0-9]{11,30}|(?: [A-Za-z0-9]{4}){2,7}(?: [A-Za-z0-9]{1,4})?)(?![A-Za-z0-9])"
    r"|(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: [A-Za-z0-9]{4}){2,7}(?: [A-Za-z0-9]{1,4})?"
)


def _ibans(text: str) -> Iterable[Finding]:
    from stdnum import iban

    for m in _IBAN.finditer(text):
        raw = m.group()
        while len(raw.replace(" ", "")) >= 15:
            if iban.is_valid(raw):
                yield Finding("iban", m.start(), m.start() + len(raw), raw)
                break
            if " " not in raw:
                break
            raw = raw.rsplit(" ", 1)[0]


# ---- national ids -------------------------------------------------------------------------

# Digit groups: a match is the whole number (no digit group before or after it).
_SSN = re.compile(r"(?<![\w-])(?<!\d )\d{3}[- ]\d{2}[- ]\d{4}(?![\w-]| \d)")
_NINO = re.compile(
    r"(?<![A-Za-z0-9])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])"
)
_DNI = re.compile(r"(?<![A-Za-z0-9])(?:\d{8}|[XYZ]\d{7})-?[A-Z](?![A-Za-z0-9])")
_NIR = re.compile(
    r"(?<![\w])[12] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?!\w)"
)
_CODICE = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{6}\d{2}[A-EHLMPRST]\d{2}[A-Z]\d{3}[A-Z](?![A-Za-z0-9])"
)
_AADHAAR = re.compile(r"(?<![\w-])(?<!\d )[2-9]\d{3}[ -]\d{4}[ -]\d{4}(?![\w-]| \d)")
_SIN = re.compile(r"(?<![\w-])(?<!\d )\d{3}[ -]\d{3}[ -]\d{3}(?![\w-]| \d)")
_CPF = re.compile(r"(?<![\w.-])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\w-])")
_ID_WORDS = re.compile(
    r"(?i)\b(?:steuer-?id|steuerliche identifikationsnummer|idnr|tax id|bsn|burgerservicenummer|pesel|personal id|id number|national id)\b"
)
_ID_KEYS = (
    "steuer",
    "idnr",
    "tax id",
    "bsn",
    "burgerservice",
    "pesel",
    "id number",
    "personal id",
    "national id",
)
_BARE_ID = re.compile(r"(?<![\w-])\d{9,11}(?![\w-])")


def _national_ids(text: str) -> Iterable[Finding]:
    from stdnum.br import cpf
    from stdnum.ca import sin
    from stdnum.es import dni, nie
    from stdnum.fr import nir
    from stdnum.in_ import aadhaar
    from stdnum.it import codicefiscale
    from stdnum.us import ssn

    def found(pattern: re.Pattern, valid) -> Iterable[Finding]:
        for m in pattern.finditer(text):
            try:
                ok = valid(m.group())
            except Exception:  # noqa: BLE001 - a validator's own error means "not valid"
                ok = False
            if ok:
                yield Finding("national_id", m.start(), m.end(), m.group())

    yield from found(_SSN, lambda v: ssn.is_valid(v.replace(" ", "-")))
    yield from found(_NINO, lambda v: True)  # its structure is the check (HMRC's rules)
    yield from found(_DNI, lambda v: dni.is_valid(v) or nie.is_valid(v))
    yield from found(_NIR, nir.is_valid)
    yield from found(_CODICE, codicefiscale.is_valid)
    yield from found(_AADHAAR, aadhaar.is_valid)
    yield from found(_SIN, lambda v: sin.is_valid(v) and v[0] not in "08")
    yield from found(_CPF, cpf.is_valid)
    # Ids that are just digits (German tax id, Dutch BSN, Polish PESEL) only near their name.
    lower = text.lower()
    if not any(k in lower for k in _ID_KEYS):
        return
    for w in _ID_WORDS.finditer(text):
        window = text[w.end() : w.end() + 40]
        m = _BARE_ID.search(window)
        if m and _digit_id_valid(m.group()):
            s = w.end() + m.start()
            yield Finding("national_id", s, s + len(m.group()), m.group())


def _digit_id_valid(v: str) -> bool:
    from stdnum.de import idnr
    from stdnum.nl import bsn
    from stdnum.pl import pesel

    return any(mod.is_valid(v) for mod in (idnr, bsn, pesel))


# ---- phone numbers ------------------------------------------------------------------------

# A number is all its digit groups: none may follow ("4539 1488 0343 6468" is not a phone
# number and a card's digit).
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){2,6}(?![\w]|[ .-]\d)")
_PHONE_NATIONAL = re.compile(
    r"(?<![\w.+-])(?<!\d )(?<![A-Z0-9]{4} )(?:\(\d{2,5}\) ?|\d{2,5}[ .-])\d{2,4}(?:[ .-]\d{2,4}){1,3}"
    r"(?![\w]|[ .-]\d)"
)
_PHONE_WORDS = re.compile(
    r"(?i)\b(?:call|phone|tel|telephone|mobile|cell|whatsapp|fax|text me|ring)\b"
)
_PHONE_KEYS = ("call", "phone", "tel", "mobile", "cell", "whatsapp", "fax", "text me", "ring")
_DIGITS = re.compile(r"(?<![\w.-])\d{10,12}(?![\w.-])")
_SSN_SHAPE = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_DATE_LIKE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")


def _regions(raw: str) -> tuple[str | None, ...]:
    """The countries whose written national form `raw` can be: North American numbers have
    10 digits (11 with the leading 1); most others are written with their trunk 0; Spanish
    and Italian ones have none (9 digits from 6-9, or from 0 or 3)."""
    if raw.startswith("+"):
        return (None,)
    digits = "".join(c for c in raw if c.isdigit())
    out: list[str] = []
    for region in PHONE_REGIONS:
        if region in ("US", "CA"):
            ok = len(digits) == 10 or (len(digits) == 11 and digits[0] == "1")
        elif region == "ES":
            ok = len(digits) == 9 and digits[0] in "6789"
        elif region == "IT":
            ok = 9 <= len(digits) <= 11 and digits[0] in "03"
        else:
            ok = digits.startswith("0")
        if ok:
            out.append(region)
    return tuple(out)


def _valid_phone(raw: str) -> bool:
    import phonenumbers

    if _DATE_LIKE.match(raw) or raw.count(".") >= 3 or _SSN_SHAPE.match(raw):
        return False  # 3-2-4 digits is how an SSN is written, valid or not; no phone's shape
    regions = _regions(raw)
    for region in regions:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


# The head of an IBAN written in groups, in any letter case ("nl30 abna "), right before a
# national number's digits: those digits are the IBAN's last groups (valid or not), not a phone
# number. (The pattern's own look-behind guards only the upper-case form: a lower-case one would
# also refuse "call 0171 ...".)
_IBAN_HEAD = re.compile(r"(?i)(?<![a-z0-9])[a-z]{2}\d{2}(?: [a-z0-9]{4})+ $")


def _phones(text: str) -> Iterable[Finding]:
    for pattern in (_PHONE_INTL, _PHONE_NATIONAL):
        for m in pattern.finditer(text):
            if pattern is _PHONE_NATIONAL and _IBAN_HEAD.search(
                text, max(0, m.start() - 40), m.start()
            ):
                continue
            if _valid_phone(m.group()):
                yield Finding("phone", m.start(), m.end(), m.group())
    lower = text.lower()
    if not any(k in lower for k in _PHONE_KEYS):
        return
    for w in _PHONE_WORDS.finditer(text):
        window = text[w.end() : w.end() + 30]
        m = _DIGITS.search(window)
        if m and _valid_phone(m.group()):
            s = w.end() + m.start()
            yield Finding("phone", s, s + len(m.group()), m.group())


# ---- secrets ------------------------------------------------------------------------------

_SECRET_PREFIXED = re.compile(
    r"(?<![\w-])(?:"
    r"sk-ant-[A-Za-z0-9_-]{20,}"  # Anthropic
    r"|sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"  # OpenAI
    r"|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{36,255}"  # GitHub
    r"|github_pat_[A-Za-z0-9_]{60,255}"
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|npm_[A-Za-z0-9]{36}"  # npm
    r"|SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"  # SendGrid
    r"|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"  # JWT
    r")"
)
_PEM = re.compile(
    r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )*PRIVATE KEY-----|$)"
)
# A password in a URL's user info, as connection strings carry it: scheme://user:password@host.
_URL_PASSWORD = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/@]*:([^\s/@]+)@(?=[\w\[])")
_TOKEN = re.compile(r"(?<![\w/+=-])[A-Za-z0-9_+/=-]{20,200}(?![\w/+=-])")
_NAMED = re.compile(r"[A-Za-z_]\w*=(?=[^=])")
_CAMEL_WORD = re.compile(r"[A-Z][a-z]{3,}|[a-z]{4,}")
_HEX = re.compile(r"^(?:0x)?[0-9a-fA-F]+$")
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)


def entropy(s: str) -> float:
    """Shannon entropy of a string, bits a character."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


def _looks_random(tok: str) -> bool:
    """A stand-alone token that reads like a key: three character classes, high entropy, no
    hex hash or UUID, not a path or a word joined with dashes."""
    if _HEX.match(tok) or _UUID.match(tok):
        return False
    classes = sum(
        (
            any(c.islower() for c in tok),
            any(c.isupper() for c in tok),
            any(c.isdigit() for c in tok),
        )
    )
    if classes < 3:
        return False
    # Identifiers made of words ("get_user_by_id", "MyClass-v2-Final") split into short parts.
    parts = [p for p in re.split(r"[_\-/+=]", tok) if p]
    if max((len(p) for p in parts), default=0) < 16:
        return False
    # Or into words by their case ("HttpClientConnectionManagerFactory3"). Of 100,000 random
    # letters-and-digits keys, 163 of 20 characters read so, and 13 of 32.
    words = _CAMEL_WORD.findall(tok)
    if len(words) >= 3 and sum(map(len, words)) >= 0.75 * sum(map(len, parts)):
        return False
    return entropy(tok) > 4.0


def _secrets(text: str) -> Iterable[Finding]:
    for pattern in (_SECRET_PREFIXED, _PEM):
        for m in pattern.finditer(text):
            yield Finding("secret", m.start(), m.end(), m.group())
    for start, end in given_values(text):
        yield Finding("secret", start, end, text[start:end])
    for m in _URL_PASSWORD.finditer(text):
        if not placeholder(m.group(1)):  # short or not, a URL's password is one
            yield Finding("secret", m.start(1), m.end(1), m.group(1))
    for m in _TOKEN.finditer(text):
        if text.endswith("base64,", 0, m.start()):
            continue  # inline data (an image, a file), not a key
        start, tok = m.start(), m.group()
        # `NAME=value` (an env file, a shell line): the value is the secret, the name is kept
        # so the redacted text still says which one it was.
        named = _NAMED.match(tok)
        if named:
            start, tok = start + named.end(), tok[named.end() :]
        if (_looks_random(tok) and not _valid_iban(tok)) or (
            named and _SECRET_PREFIXED.fullmatch(tok)
        ):
            yield Finding("secret", start, start + len(tok), tok)


def _valid_iban(tok: str) -> bool:
    """An IBAN in one run with letters of random case (`fR7630006...3mO2...`) can read as a
    random key: it is an IBAN (the `iban` detector's), not a secret."""
    from stdnum import iban

    return tok[:2].isalpha() and tok[2:4].isdigit() and iban.is_valid(tok)


_DETECTORS = {
    "email": _emails,
    "phone": _phones,
    "payment_card": _cards,
    "iban": _ibans,
    "national_id": _national_ids,
    "secret": _secrets,
}


# ---- finding and replacing ----------------------------------------------------------------


# Characters that are their own NFKC form one by one (ASCII, Latin-1 letters, Cyrillic, Hebrew
# letters, dashes, quotes and bullets, CJK punctuation, kana, CJK ideographs, Hangul syllables;
# a test checks it): a text's other characters are the ones looked at.
_NFKC_STABLE = (
    r"\x00-\x7f\u00c0-\u00ff\u0400-\u04ff\u05d0-\u05ea\u2010\u2012-\u2016\u2018-\u2023"
    r"\u3001-\u3035\u3041-\u3096\u30a1-\u30fa\u4e00-\u9fff\uac00-\ud7a3"
)
_MAYBE_CHANGED = re.compile(rf"[^{_NFKC_STABLE}]+")


class _NfkcForms(dict):
    """Characters' NFKC forms by code point, kept as they are met (up to a bound)."""

    def __missing__(self, code: int) -> str:
        form = unicodedata.normalize("NFKC", chr(code))
        if len(self) < 10_000:
            self[code] = form
        return form


_NFKC_FORMS = _NfkcForms()


def _nfkc_view(text: str) -> tuple[str, Callable[[int], int]] | None:
    """`text` with each character in its NFKC form ("alice＠example.com" reads
    "alice@example.com", full-width digits read as digits), and what gives, for an index of
    that view, the index of the character it came from; None when NFKC changes nothing.
    Characters are normalised one by one (no character's form is empty), so only one that
    became several ("…" reads "...") moves the view's indices away from the text's."""
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return None
    view = _MAYBE_CHANGED.sub(lambda m: m.group().translate(_NFKC_FORMS), text)
    if len(view) == len(text):
        return view, lambda i: i
    # Each character that became several: where its forms start and end in the view, where
    # it is in the text, and how far the view runs ahead of the text after it.
    starts: list[int] = []
    grown: list[tuple[int, int, int]] = []
    ahead = 0
    for m in _MAYBE_CHANGED.finditer(text):
        for i in range(m.start(), m.end()):
            n = len(_NFKC_FORMS[ord(text[i])])
            if n > 1:
                start = i + ahead
                ahead += n - 1
                starts.append(start)
                grown.append((start + n, i, ahead))

    def origin(v: int) -> int:
        k = bisect.bisect_right(starts, v) - 1
        if k < 0:
            return v
        end, i, ahead = grown[k]
        return i if v < end else v - ahead

    return view, origin


def _candidates(text: str, kinds: Iterable[str]) -> Iterable[Finding]:
    digits = any(ch.isdigit() for ch in text)
    for kind in kinds:
        if digits or kind in ("email", "secret"):  # the others are mostly digits
            yield from _DETECTORS[kind](text)


def find(text: str, kinds: Iterable[str] = KINDS) -> list[Finding]:
    """The private values in `text`, in order, none overlapping (see `_PRIORITY`). A text that
    NFKC normalisation changes is read in that form; the spans and values are `text`'s own."""
    if not text:
        return []
    view = _nfkc_view(text)
    if view is None:
        candidates = list(_candidates(text, kinds))
    else:
        norm, origin = view
        candidates = []
        for f in _candidates(norm, kinds):
            s, e = origin(f.start), origin(f.end - 1) + 1
            candidates.append(Finding(f.kind, s, e, text[s:e]))
    candidates.sort(key=lambda f: (_PRIORITY[f.kind], -(f.end - f.start), f.start))
    kept: list[Finding] = []
    for f in candidates:
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


# A content part's texts, by its type: a text part, and a refusal an assistant gave.
_PART_TEXT = {"text": "text", "refusal": "refusal"}
# A message's own texts besides its content: a participant's name, an assistant's refusal and
# reasoning (what the Anthropic adapter makes of a `thinking` block: `reasoning_content`, and
# the blocks themselves in `thinking_blocks`). All are sent on as they are.
_MESSAGE_TEXT = ("name", "refusal", "reasoning_content")


def _part_key(p: Any) -> str | None:
    """The key of a content part's text, or None for a part without one (an image ...)."""
    if not isinstance(p, dict):
        return None
    key = _PART_TEXT.get(p.get("type"))
    return key if key is not None and isinstance(p.get(key), str) else None


def texts_of(messages: list[Message]) -> Iterable[str]:
    """Every text of a conversation that would be sent: contents, text and refusal parts, names,
    refusals, reasoning and thinking blocks, tool arguments."""
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for p in content:
                key = _part_key(p)
                if key is not None:
                    yield p[key]
        for key in _MESSAGE_TEXT:
            if isinstance(m.get(key), str):
                yield m[key]
        for block in m.get("thinking_blocks") or []:
            if isinstance(block, dict) and isinstance(block.get("thinking"), str):
                yield block["thinking"]
        for call in m.get("tool_calls") or []:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                yield fn["arguments"]
        # The legacy form of a call (`function_call`) is sent on as it is: its arguments too.
        fn = m.get("function_call")
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            yield fn["arguments"]


def detect(messages: list[Message], kinds: Iterable[str] = KINDS) -> tuple[str, ...]:
    """The kinds of private value a conversation carries, sorted (empty: none)."""
    kinds = tuple(kinds)
    found: set[str] = set()
    for text in texts_of(messages):
        found.update(f.kind for f in find(text, kinds))
        if len(found) == len(kinds):
            break
    return tuple(sorted(found))


def values(messages: list[Message], kinds: Iterable[str] = KINDS) -> list[str]:
    """The private values themselves (to hide them from logs), longest first."""
    kinds = tuple(kinds)
    out = {f.value for text in texts_of(messages) for f in find(text, kinds)}
    return sorted(out, key=len, reverse=True)


class Redactor:
    """Replaces values with typed placeholders, numbered per kind across a whole conversation."""

    def __init__(self, kinds: Iterable[str] = KINDS) -> None:
        self.kinds = tuple(kinds)
        self._names: dict[tuple[str, str], str] = {}
        self._count: Counter[str] = Counter()

    def placeholder(self, f: Finding) -> str:
        key = (f.kind, f.value)
        if key not in self._names:
            self._count[f.kind] += 1
            self._names[key] = f"[{f.kind.upper()}_{self._count[f.kind]}]"
        return self._names[key]

    def text(self, text: str) -> str:
        out, at = [], 0
        for f in find(text, self.kinds):
            out.append(text[at : f.start])
            out.append(self.placeholder(f))
            at = f.end
        out.append(text[at:])
        return "".join(out)

    def message(self, m: Message) -> Message:
        m = dict(m)
        content = m.get("content")
        if isinstance(content, str):
            m["content"] = self.text(content)
        elif isinstance(content, list):
            m["content"] = [self._part(p) for p in content]
        for key in _MESSAGE_TEXT:
            if isinstance(m.get(key), str):
                m[key] = self.text(m[key])
        if isinstance(m.get("thinking_blocks"), list):
            # A redacted block's signature no longer matches it: a provider that checks it
            # refuses the turn rather than read the value (Anthropic's extended thinking).
            m["thinking_blocks"] = [
                {**b, "thinking": self.text(b["thinking"])}
                if isinstance(b, dict) and isinstance(b.get("thinking"), str)
                else b
                for b in m["thinking_blocks"]
            ]
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = c.get("function") if isinstance(c, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    c = {**c, "function": {**fn, "arguments": self.text(fn["arguments"])}}
                calls.append(c)
            m["tool_calls"] = calls
        fn = m.get("function_call")
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            m["function_call"] = {**fn, "arguments": self.text(fn["arguments"])}
        return m

    def _part(self, p: Any) -> Any:
        key = _part_key(p)
        return p if key is None else {**p, key: self.text(p[key])}

    @property
    def replaced(self) -> dict[str, int]:
        """Distinct values replaced, per kind."""
        return dict(self._count)


def redact_messages(messages: list[Message], kinds: Iterable[str] = KINDS) -> list[Message]:
    """A copy of the conversation with every private value replaced by a typed placeholder."""
    r = Redactor(kinds)
    return [r.message(m) for m in messages]


def _predicted(params: dict[str, Any]) -> str | list | None:
    """A call's predicted output (`prediction.content`, a file being edited), sent on whole."""
    pred = params.get("prediction")
    if isinstance(pred, dict) and isinstance(pred.get("content"), str | list):
        return pred["content"]
    return None


def prompt_of(messages: list[Message], params: dict[str, Any]) -> list[Message]:
    """The conversation with the prompt text a call's parameters carry (`_predicted`), as one
    more message to read."""
    content = _predicted(params)
    if content is None:
        return messages
    return [*messages, {"role": "assistant", "content": content}]


def redact_call(
    messages: list[Message], params: dict[str, Any], kinds: Iterable[str] = KINDS
) -> tuple[list[Message], dict[str, Any]]:
    """`redact_messages`, and the parameters' prompt text (`prompt_of`) with the same
    placeholders."""
    r = Redactor(kinds)
    out = [r.message(m) for m in messages]
    content = _predicted(params)
    if content is not None:
        content = r.message({"content": content})["content"]
        params = {**params, "prediction": {**params["prediction"], "content": content}}
    return out, params
