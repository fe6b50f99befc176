"""Build data/privacy/labelled.jsonl: prompts labelled with the private values they carry, for
`make bench-privacy` (bench/privacy.py: each detector's precision and recall).

Deterministic (a fixed seed): rerunning writes the same file. Values are generated valid (card
numbers with their Luhn digit and a network's prefix, IBANs with their mod-97 check digits,
SSNs, DNIs, NINOs, phone numbers that libphonenumber accepts) and written the ways people
write them; hard negatives are the look-alikes a detector must not take: order numbers that
fail Luhn, Luhn-valid numbers of no card network (IMEIs), IBANs with wrong check digits,
version strings, dates, times, prices, ISBNs, UUIDs, hashes, commit ids, IP addresses,
tracking and invoice numbers, code identifiers, prose and code about passwords and tokens,
template stand-ins, inline base64 data. Plain prompts from everyday tasks are
negatives too. Then what the detectors read in other cases, languages and characters: IBANs in
lower and mixed case, passwords given to the word for password in other languages, values
written with full-width characters or no-break spaces; with their look-alikes (lower-case
IBANs that fail the check, prose about passwords in those languages, full-width text with no
value), from a generator of their own so the rows before them stay as they were. Last,
passwords under an identifier's name (`DB_PASSWORD=...` in env files, shell lines, config and
code), Korean and Japanese sentences with the value before the verb, plain words that a list
goes on after, IBANs in random letter case in one run; with code and prose about a password
that give none (a generator of their own too).

    python scripts/build_privacy_set.py            # writes data/privacy/labelled.jsonl
"""

from __future__ import annotations

import json
import random
import string
import uuid
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "privacy" / "labelled.jsonl"
rng = random.Random(20240522)


def luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def card(prefix: str, length: int, r: random.Random = rng) -> str:
    body = prefix + "".join(r.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return body + luhn_digit(body)


def group(digits: str, sizes: list[int], sep: str) -> str:
    out, at = [], 0
    for n in sizes:
        out.append(digits[at : at + n])
        at += n
    return sep.join(out)


def written_card() -> str:
    kind = rng.choice(["visa", "mc", "amex", "discover", "mc2"])
    if kind == "amex":
        d = card(rng.choice(["34", "37"]), 15)
        return rng.choice([d, group(d, [4, 6, 5], " "), group(d, [4, 6, 5], "-")])
    prefix = {
        "visa": "4",
        "mc": rng.choice(["51", "52", "53", "54", "55"]),
        "mc2": "2221",
        "discover": "6011",
    }[kind]
    d = card(prefix, 16)
    return rng.choice([d, group(d, [4, 4, 4, 4], " "), group(d, [4, 4, 4, 4], "-")])


def not_luhn_card() -> str:
    d = card(rng.choice(["4", "51", "6011"]), 16)
    bad = d[:-1] + str((int(d[-1]) + rng.randint(1, 9)) % 10)
    return rng.choice([bad, group(bad, [4, 4, 4, 4], " ")])


def iban(country: str, bban: str) -> str:
    def num(s: str) -> int:
        return int("".join(str(int(c, 36)) for c in s))

    check = 98 - num(bban + country + "00") % 97
    return f"{country}{check:02d}{bban}"


# Each country's account part (BBAN), drawn from the generator `r`.
IBAN_FORMATS = {
    "DE": lambda r: "".join(r.choice(string.digits) for _ in range(18)),
    "GB": lambda r: "NWBK" + "".join(r.choice(string.digits) for _ in range(14)),
    "FR": lambda r: (
        "".join(r.choice(string.digits) for _ in range(10))
        + "".join(r.choice(string.ascii_uppercase + string.digits) for _ in range(11))
        + "".join(r.choice(string.digits) for _ in range(2))
    ),
    "ES": lambda r: "".join(r.choice(string.digits) for _ in range(20)),
    "NL": lambda r: "ABNA" + "".join(r.choice(string.digits) for _ in range(10)),
    "IT": lambda r: (
        "X"
        + "".join(r.choice(string.digits) for _ in range(10))
        + "".join(r.choice(string.ascii_uppercase + string.digits) for _ in range(12))
    ),
}


def valid_iban(r: random.Random = rng) -> str:
    """An IBAN in one run, upper case, that `python-stdnum` accepts."""
    from stdnum import iban as check

    while True:
        c = r.choice(list(IBAN_FORMATS))
        value = iban(c, IBAN_FORMATS[c](r))
        if check.is_valid(value):
            return value


def wrong_check_digits(value: str, r: random.Random = rng) -> str:
    """The IBAN with other check digits (there is one right pair, so this one fails)."""
    return value[:2] + f"{(int(value[2:4]) + r.randint(1, 50)) % 97 + 2:02d}" + value[4:]


def written_iban(valid: bool = True) -> str:
    value = valid_iban()
    if not valid:
        value = wrong_check_digits(value)
    spaced = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return rng.choice([value, spaced])


def phone(r: random.Random = rng) -> str:
    import phonenumbers

    while True:
        region, fmt = r.choice(
            [
                ("US", "n1"),
                ("US", "n2"),
                ("US", "i"),
                ("GB", "n"),
                ("GB", "i"),
                ("DE", "i"),
                ("FR", "i"),
                ("FR", "n"),
                ("IN", "i"),
                ("AU", "i"),
            ]
        )
        if region == "US":
            area = r.choice(["212", "415", "617", "312", "206", "303", "512", "646"])
            number = f"{area}{r.randint(200, 999)}{r.randint(0, 9999):04d}"
        elif region == "GB":
            number = "20" + f"{r.randint(7000, 8999)}{r.randint(0, 9999):04d}"
        elif region == "DE":
            number = "30" + f"{r.randint(1000000, 99999999)}"
        elif region == "FR":
            number = r.choice(["1", "6", "7"]) + f"{r.randint(10000000, 99999999)}"
        elif region == "IN":
            number = r.choice(["98", "99", "97"]) + f"{r.randint(10000000, 99999999)}"
        else:
            number = "4" + f"{r.randint(10000000, 99999999)}"
        parsed = phonenumbers.parse(number, region)
        if not phonenumbers.is_valid_number(parsed):
            continue
        if fmt == "i":
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        if fmt == "n1":
            return f"({number[:3]}) {number[3:6]}-{number[6:]}"
        if fmt == "n2":
            return f"{number[:3]}-{number[3:6]}-{number[6:]}"
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)


def ssn() -> str:
    while True:
        area, grp, serial = rng.randint(1, 899), rng.randint(1, 99), rng.randint(1, 9999)
        if area != 666:
            return f"{area:03d}-{grp:02d}-{serial:04d}"


def dni() -> str:
    n = rng.randint(10000000, 99999999)
    return f"{n}{'TRWAGMYFPDXBNJZSQVHLCKE'[n % 23]}"


def nino() -> str:
    first = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
        return nino()
    digits = f"{rng.randint(0, 999999):06d}"
    value = f"{first}{second}{digits}{rng.choice('ABCD')}"
    return rng.choice([value, f"{value[:2]} {value[2:4]} {value[4:6]} {value[6:8]} {value[8]}"])


def email(r: random.Random = rng) -> str:
    first = r.choice(["ann", "li.wei", "j.smith", "maria_g", "omar", "kim.tan", "p.novak"])
    tag = r.choice(["", "", "+billing", "+2024"])
    domain = r.choice(
        ["example.com", "mail.example.org", "acme.co.uk", "uni-berlin.de", "startup.io"]
    )
    return f"{first}{tag}@{domain}"


def token(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    """Random characters of `alphabet`, with each of its classes (upper, lower, digit)."""
    classes = [f for f in (str.isupper, str.islower, str.isdigit) if any(f(c) for c in alphabet)]
    while True:
        t = "".join(rng.choice(alphabet) for _ in range(n))
        if all(any(f(c) for c in t) for f in classes):
            return t


def secret() -> tuple[str, str]:
    """(value, how it is written around it)."""
    kind = rng.choice(
        [
            "openai",
            "anthropic",
            "aws",
            "github",
            "slack",
            "stripe",
            "google",
            "hf",
            "jwt",
            "assigned",
            "random",
        ]
    )
    value = {
        "openai": lambda: "sk-proj-" + token(40),
        "anthropic": lambda: "sk-ant-api03-" + token(40),
        "aws": lambda: (
            "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))
        ),
        "github": lambda: "ghp_" + token(36),
        "slack": lambda: "xoxb-" + f"{rng.randint(10**10, 10**11)}-" + token(24),
        "stripe": lambda: "sk_live_" + token(24),
        "google": lambda: "AIza" + token(35),
        "hf": lambda: "hf_" + token(34, string.ascii_letters),
        "jwt": lambda: "eyJhbGciOiJIUzI1NiJ9.eyJ" + token(30) + "." + token(43),
        "assigned": lambda: token(14, string.ascii_letters + string.digits + "!#%&"),
        "random": lambda: token(32),
    }[kind]()
    if kind == "assigned":
        return value, rng.choice(
            ["password: {v}", "DB_PASSWORD={v}", 'api_key = "{v}"', "my passwd is {v}"]
        )
    return value, rng.choice(
        [
            "{v}",
            "export API_KEY={v}",
            'client = Client(api_key="{v}")',
            "token: {v}",
            "Authorization: Bearer {v}",
        ]
    )


POSITIVE_TEMPLATES = {
    "payment_card": [
        "My card {v} was charged twice for the same order, how do I dispute it?",
        "Please update the billing card on file to {v}, expiry 09/27.",
        "card:{v} cvv 123 — is this stored securely?",
        "Why was {v} declined at checkout?",
    ],
    "iban": [
        "Send the refund to my account {v} please.",
        "Our supplier's IBAN is {v}; draft a payment reminder.",
        "Is {v} a German or a Dutch account?",
    ],
    "phone": [
        "Call me back on {v} after 6pm.",
        "My mobile number changed to {v}, update my profile.",
        "Write a short text message inviting Sam; RSVP to {v}.",
        "The clinic's number is {v}, can you format it for a letter?",
    ],
    "email": [
        "Draft a reply to {v} declining the meeting.",
        "My login is {v} and I cannot reset my password.",
        "Add {v} to the newsletter list in this CSV format.",
    ],
    "national_id": [
        "My SSN is {v}; which tax form do I need?",
        "Fill in the form: name Ana García, DNI {v}.",
        "National Insurance number {v} — am I eligible for the pension?",
    ],
    "secret": [
        "Why does this fail? {v}",
        "Here is my config:\n{v}\nWhat is wrong with it?",
        "I leaked this in a commit: {v} — what should I do?",
    ],
}

NEGATIVES = [
    # Everyday prompts with numbers, names and codes that are not private.
    "What is 17 * 23?",
    "Explain the difference between TCP and UDP.",
    "Summarise the plot of Hamlet in three sentences.",
    "Convert 72 degrees Fahrenheit to Celsius.",
    "Write a Python function that returns the nth Fibonacci number.",
    "Is aspirin safe during pregnancy?",
    "What year did the Berlin Wall fall?",
    "Translate 'good morning' into French.",
    "How many seconds are there in 3 days?",
    "Solve 3x + 7 = 22.",
    "List five uses of baking soda.",
    "What is the population of Tokyo?",
    "Give me a recipe for pancakes for 4 people.",
    "Explain how RSA encryption works with small numbers like p=61 and q=53.",
    "Sort the list [5, 3, 9, 1] in Python.",
    "What is the capital of Peru?",
    "Write a haiku about autumn leaves.",
    "Compute the mean of 12, 15, 18 and 21.",
    "Describe the French Revolution in 200 words.",
    "What does HTTP status 404 mean?",
]

HARD_NEGATIVES = [
    ("Order {v} has not arrived yet, can you check the status?", not_luhn_card),
    ("The card-shaped reference {v} on my invoice fails the checksum, right?", not_luhn_card),
    (
        "My phone's IMEI is {v}; is it blacklisted?",
        lambda: (lambda b: b + luhn_digit(b))(
            "35" + "".join(rng.choice(string.digits) for _ in range(12))
        ),
    ),
    ("Is {v} a valid IBAN? The bank rejected it.", lambda: written_iban(valid=False)),
    (
        "Upgrade from version {v} to the latest release.",
        lambda: f"{rng.randint(1, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 99)}",
    ),
    (
        "Release {v} fixed the memory leak.",
        lambda: f"{rng.randint(2019, 2025)}.{rng.randint(1, 12)}.{rng.randint(1, 28)}",
    ),
    (
        "The meeting moved to {v}.",
        lambda: (
            f"{rng.randint(2020, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} at {rng.randint(8, 18)}:{rng.choice(['00', '15', '30', '45'])}"
        ),
    ),
    (
        "Book ISBN {v} is out of print.",
        lambda: (
            lambda b: (
                f"978-{b[0]}-{b[1:3]}-{b[3:9]}-"
                + str(
                    (10 - sum((3 if i % 2 else 1) * int(c) for i, c in enumerate("978" + b)) % 10)
                    % 10
                )
            )
        )("".join(rng.choice(string.digits) for _ in range(9))),
    ),
    ("The request id was {v}.", lambda: str(uuid.UUID(int=rng.getrandbits(128)))),
    ("git show {v}", lambda: "".join(rng.choice("0123456789abcdef") for _ in range(40))),
    (
        "The file's SHA-256 is {v}.",
        lambda: "".join(rng.choice("0123456789abcdef") for _ in range(64)),
    ),
    (
        "md5 {v} matches the download.",
        lambda: "".join(rng.choice("0123456789abcdef") for _ in range(32)),
    ),
    (
        "Ping {v} and tell me the latency.",
        lambda: (
            f"{rng.randint(10, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        ),
    ),
    (
        "Tracking number {v}, where is my parcel?",
        lambda: (
            "1Z" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))
        ),
    ),
    (
        "Invoice INV-{v} is overdue.",
        lambda: f"{rng.randint(2020, 2025)}-{rng.randint(1, 99999):05d}",
    ),
    (
        "The total came to ${v} including tax.",
        lambda: f"{rng.randint(1, 9999)}.{rng.randint(0, 99):02d}",
    ),
    (
        "Call the function {v}() before saving.",
        lambda: rng.choice(
            [
                "getUserById2",
                "load_config_v3",
                "parseISO8601Date",
                "toBase64Url",
                "handleOAuth2Callback",
            ]
        ),
    ),
    ("What is {v}?", lambda: f"{rng.randint(1000, 99999)} * {rng.randint(1000, 99999)}"),
    (
        "The coordinates are {v}.",
        lambda: f"{rng.uniform(-80, 80):.6f}, {rng.uniform(-170, 170):.6f}",
    ),
    ("Our zip code is {v} and the office is on floor 12.", lambda: f"{rng.randint(10000, 99999)}"),
    (
        "Part number {v} is out of stock.",
        lambda: (
            f"{rng.randint(100, 999)}-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}-{rng.randint(10, 99)}"
        ),
    ),
    (
        "SSN {v} is a placeholder number that is never issued.",
        lambda: (
            rng.choice(["000", "666", "9" + f"{rng.randint(0, 99):02d}"])
            + f"-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
        ),
    ),
    (
        "The timestamp {v} is in milliseconds.",
        lambda: str(rng.randint(1_600_000_000_000, 1_800_000_000_000)),
    ),
    (
        "Use the CSS colour {v} for the header.",
        lambda: "#" + "".join(rng.choice("0123456789abcdef") for _ in range(6)),
    ),
    (
        "The docker image is sha256:{v}",
        lambda: "".join(rng.choice("0123456789abcdef") for _ in range(64)),
    ),
    ("Set the variable MAX_RETRY_COUNT_FOR_UPLOADS to {v}.", lambda: str(rng.randint(1, 10))),
]


# Written after the rows above with a generator of their own, so those stay as they were.
more = random.Random(20261204)
WORDS = (
    "user account service factory manager handler config request response session token "
    "client server cache query builder provider adapter listener context settings"
).split()


def password() -> str:
    """A password as people pick them: a word, digits, maybe a symbol."""
    word = more.choice(["hunter", "sunshine", "dragon", "monkey", "shadow", "letmein", "qwerty"])
    return word + str(more.randint(1, 9999)) + more.choice(["", "!", "#", "$"])


def camel_identifier() -> str:
    words = [more.choice(WORDS) for _ in range(more.randint(3, 6))]
    return words[0] + "".join(w.capitalize() for w in words[1:]) + str(more.randint(1, 9))


MORE_SECRETS = [
    "Why can't I connect with postgres://app:{v}@db.internal:5432/app?",
    "DATABASE_URL=mysql://root:{v}@localhost:3306/shop",
    "redis://:{v}@cache:6379/0 refuses the connection, why?",
    "mongodb+srv://svc:{v}@cluster0.ab1cd.mongodb.net/prod times out.",
    "My password is {v}, is it strong enough?",
    "password: {v}",
    "The wifi password is {v}, write it on a card for guests.",
]

MORE_HARD_NEGATIVES = [
    ("The password is {v}, what should I do?", lambda: more.choice(["incorrect", "expired"])),
    ("auth is {v} for this endpoint, how do I add it?", lambda: "required"),
    ("Explain why the secret is {v} in Diffie-Hellman.", lambda: "important"),
    (
        "What does token = {v} return?",
        lambda: more.choice(["tokenizer.encode(text)", "jwt.decode(raw, key)", "next(it)"]),
    ),
    (
        "api_key = {v} raises a KeyError.",
        lambda: more.choice(["os.environ['OPENAI_API_KEY']", "settings.API_KEY", "OPENAI_API_KEY"]),
    ),
    ("Rename the class {v} to something shorter.", camel_identifier),
    ("Connect with postgres://app:{v}@db:5432/app from the template.", lambda: "${DB_PASSWORD}"),
    (
        "What does <img src='data:image/png;base64,{v}'> show?",
        lambda: token(48, string.ascii_letters + string.digits + "+/"),
    ),
]


# What the detectors read since they know other letter cases, languages and look-alikes: IBANs
# in lower and mixed case, the word for password in other languages, values written with
# full-width characters or no-break spaces; and the look-alikes of each. Written after the rows
# above with a generator of their own, so those stay as they were.
late = random.Random(20261205)

# Spaces that Unicode's NFKC reads as a plain one: no-break, narrow no-break, thin, ideographic.
NBSP, NNBSP, THIN, IDEOGRAPHIC = "\u00a0", "\u202f", "\u2009", "\u3000"


def full_width(text: str) -> str:
    """ASCII letters, digits and signs as their full-width forms (`A` -> `Ａ`, `@` -> `＠`)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def in_groups(value: str, sep: str = " ") -> str:
    return sep.join(value[i : i + 4] for i in range(0, len(value), 4))


def letter_case(value: str, how: str) -> str:
    """The value in lower case, or in a mix of cases: the country's code alone in title or lower
    case (`De89...`, `nl91ABNA...`), the account's letters alone in lower case (`GB82west...`),
    or each letter's case at random (`fR76...3mO2...`)."""
    if how == "lower":
        return value.lower()
    while True:
        mixed = late.choice(
            [
                value[0] + value[1].lower() + value[2:],
                value[:2].lower() + value[2:],
                value[:4] + value[4:].lower(),
                "".join(c.lower() if late.random() < 0.5 else c for c in value),
            ]
        )
        if mixed != value and mixed != value.lower():
            return mixed


def cased_iban(valid: bool = True) -> str:
    value = valid_iban(late)
    if not valid:
        value = wrong_check_digits(value, late)
    value = letter_case(value, late.choice(["lower", "mixed"]))
    return late.choice([value, in_groups(value)])


def iban_like_serial() -> str:
    """Two letters, two digits and more, in lower case, as serials are written: not an IBAN."""
    from stdnum import iban as check

    while True:
        head = "".join(late.choice(string.ascii_lowercase) for _ in range(2))
        value = (
            head
            + f"{late.randint(10, 99)}"
            + "".join(
                late.choice(string.ascii_lowercase + string.digits)
                for _ in range(late.choice([12, 16]))
            )
        )
        if not check.is_valid(value):
            return late.choice([value, in_groups(value)])


def other_password() -> str:
    """A password as people pick them, in their own language: a word, digits, maybe a sign."""
    word = late.choice(
        ["Sommer", "soleil", "verano", "saudade", "zomer", "Moskva", "lato", "sommar", "yaz",
         "leto", "sakura", "haneul", "kesä", "Tigre", "Katze"]
    )  # fmt: skip
    return word + str(late.randint(1, 9999)) + late.choice(["", "!", "#", "$", "*", "%"])


# The word for password in other languages, in sentences people write ({v}: the value).
PASSWORD_SENTENCES = {
    "German": [
        "Mein Passwort ist {v}, ist das sicher genug?",
        "Zugangsdaten für den Server – Benutzer: admin, Passwort: {v}",
        "Kannst du das WLAN-Kennwort: {v} auf eine Karte für die Gäste schreiben?",
    ],
    "French": [
        "Mon mot de passe est {v}, est-il assez robuste ?",
        "Identifiant : claire.martin, mot de passe : {v}",
    ],
    "Spanish": [
        "Mi contraseña es {v}, ¿es lo bastante segura?",
        "Usuario: admin\nContraseña: {v}\n¿Por qué no puedo entrar?",
    ],
    "Portuguese": [
        "Minha senha é {v}, por que o login falha?",
        "Login: joao.silva / senha: {v}",
    ],
    "Dutch": [
        "Mijn wachtwoord is {v}, is dat sterk genoeg?",
        "Gebruiker: admin, wachtwoord: {v}",
    ],
    "Russian": [
        "Логин: admin, пароль: {v} — почему не пускает?",
        "Пароль: {v}\nПодскажи, он надёжный?",
    ],
    "Polish": ["Login: jan.kowalski, hasło: {v} – dlaczego nie działa?"],
    "Swedish": ["Lösenord: {v} – är det tillräckligt starkt?"],
    "Turkish": ["Kullanıcı adı: admin, şifre: {v}"],
    "Czech": ["Heslo: {v} – je dost silné?"],
    "Chinese": ["我的密码是{v}，帮我看看安全吗？", "账号：admin，密码：{v}"],
    "Japanese": ["パスワードは{v}です。安全ですか？", "ユーザー名：admin　パスワード：{v}"],
    "Korean": ["아이디: admin, 비밀번호: {v}"],
}

# Prose about passwords in those languages with no value in it ({v}: a word of the sentence).
PASSWORD_PROSE = {
    "German": [
        ("Das Passwort ist {v}.", ["falsch", "abgelaufen", "ungültig"]),
        ("Passwort: mindestens {v} Zeichen", ["acht", "zehn", "zwölf"]),
        ("Passwort {v} – wie setze ich es zurück?", ["vergessen"]),
    ],
    "French": [
        ("Le mot de passe est {v}.", ["incorrect", "expiré"]),
        ("Mot de passe : au moins {v} caractères", ["huit", "douze"]),
    ],
    "Spanish": [
        ("La contraseña es {v}.", ["incorrecta", "inválida"]),
        ("Contraseña: al menos {v} caracteres", ["ocho", "doce"]),
    ],
    "Portuguese": [("A senha é {v}.", ["inválida", "incorreta"])],
    "Dutch": [("Het wachtwoord is {v}.", ["onjuist", "verlopen"])],
    "Russian": [("Пароль: не менее {v} символов", ["восьми", "двенадцати"])],
    "Polish": [("Hasło: co najmniej {v} znaków", ["osiem", "dwanaście"])],
    "Swedish": [("Lösenord: minst {v} tecken", ["åtta", "tolv"])],
    "Turkish": [("Şifre: en az {v} karakter", ["sekiz", "on iki"])],
    "Chinese": [
        ("忘记{v}了怎么办？", ["密码"]),
        ("{v}是什么？", ["密码", "初始密码"]),
        ("密码：至少{v}位", ["8", "12"]),
    ],
    "Japanese": [
        ("パスワードを{v}。どうすればいいですか？", ["忘れました", "なくしました"]),
        ("パスワードは{v}文字以上にしてください。", ["8", "12"]),
    ],
    "Korean": [("비밀번호: {v}자 이상", ["8", "12"])],
}


def look_alike_card() -> str:
    """A card in full-width digits (grouped by spaces, ideographic spaces or hyphens), or in
    groups that no-break or thin spaces part."""
    prefix, length = late.choice([("4", 16), ("51", 16), ("6011", 16), ("37", 15)])
    d = card(prefix, length, late)
    sizes = [4, 6, 5] if length == 15 else [4, 4, 4, 4]
    if late.random() < 0.4:
        return group(d, sizes, late.choice([NBSP, NNBSP, THIN]))
    return full_width(group(d, sizes, late.choice([" ", IDEOGRAPHIC, "-"])))


def look_alike_phone() -> str:
    while True:
        p = phone(late)
        if " " in p:
            break
    if late.random() < 0.6:
        return p.replace(" ", late.choice([NBSP, NNBSP]))
    return full_width(p)


def look_alike_email() -> str:
    e = email(late)
    return late.choice(
        [e.replace("@", "＠"), e.replace("@", "＠").replace(".", "．"), full_width(e)]
    )


def look_alike_iban(valid: bool = True) -> str:
    value = valid_iban(late)
    if not valid:
        value = wrong_check_digits(value, late)
    if late.random() < 0.5:
        return in_groups(value, late.choice([NBSP, NNBSP]))
    return full_width(late.choice([value, in_groups(value)]))


LOOK_ALIKES = {
    "email": (look_alike_email, ["Please forward the invoice to {v} before Friday.",
                                 "請把報告寄到 {v}，謝謝。", "メールアドレスは {v} です。"]),
    "payment_card": (look_alike_card, ["My card {v} was charged twice, how do I dispute it?",
                                       "カード番号 {v} の請求が二重になっています。"]),
    "phone": (look_alike_phone, ["Rappelez-moi au {v} après 18 h.",
                                 "Call me back on {v} after 6pm."]),
    "iban": (look_alike_iban, ["Send the refund to my account {v} please.",
                               "Virement sur le compte {v}, merci."]),
}  # fmt: skip

# Full-width and no-break-space text with no private value in it.
LOOK_ALIKE_NEGATIVES = [
    ("Order {v} has not arrived yet, can you check the status?",
     lambda: full_width(not_luhn_card_late())),
    ("Is {v} a valid IBAN? The bank rejected it.", lambda: look_alike_iban(valid=False)),
    ("Why does ssh {v} say permission denied?",
     lambda: full_width(late.choice(["root", "admin", "pi", "ubuntu", "deploy"]) + "@"
                        + late.choice(["localhost", "raspberrypi", "nas", "db01"]))),
    ("会議は{v}に変更になりました。",
     lambda: full_width(f"{late.randint(2024, 2026)}/{late.randint(1, 12)}/{late.randint(1, 28)} "
                        f"{late.randint(9, 18)}:{late.choice(['00', '30'])}")),
    ("価格は{v}円（税込）です。", lambda: full_width(f"{late.randint(1000, 999999):,}")),
    ("Upgrade to {v} before the release.",
     lambda: full_width(f"v{late.randint(1, 9)}.{late.randint(0, 30)}.{late.randint(0, 99)}")),
    ("Le total s'élève à {v} €.",
     lambda: f"{late.randint(1000, 9999999):,}".replace(",", late.choice([NBSP, NNBSP]))
     + f",{late.randint(0, 99):02d}"),
    ("{v}", lambda: full_width(late.choice(["SALE {n}% OFF", "Chapter {n}: Results",
                                            "Room {n}, Building B", "Step {n} of 40"])
                               .format(n=late.randint(2, 40)))),
]  # fmt: skip


def not_luhn_card_late() -> str:
    d = card(late.choice(["4", "51", "6011"]), 16, late)
    bad = d[:-1] + str((int(d[-1]) + late.randint(1, 9)) % 10)
    return late.choice([bad, group(bad, [4, 4, 4, 4], " ")])


LATE_IBAN_TEMPLATES = [
    "Send the refund to my account {v} please.",
    "Bitte überweise den Betrag auf {v}.",
    "Our supplier's IBAN is {v}; draft a payment reminder.",
]
LATE_IBAN_NEGATIVES = [
    ("Is {v} a valid IBAN? The bank rejected it.", lambda: cased_iban(valid=False)),
    ("Serial number {v} is printed on the back of the router.", iban_like_serial),
]


# Values the secret detector reads since it knows a password's name inside an identifier
# (`DB_PASSWORD=...` in env files, shell lines, config and code), Korean and Japanese sentences
# with the value before the verb, a plain word given to a password that a list goes on after,
# and IBANs in random letter case in one run; with the look-alikes of each (code that reads a
# password without its value, prose about one). Written after the rows above with a generator
# of their own, so those stay as they were.
latest = random.Random(20261206)
PLAIN_WORDS = ["sunshine", "starlight", "marigold", "blueberry", "snowflake", "lighthouse",
               "butterfly", "pineapple", "moonlight", "evergreen"]  # fmt: skip


def env_password() -> str:
    """A password as people pick them (a word, digits, maybe a sign), or a plain long word."""
    if latest.random() < 0.3:
        return latest.choice(PLAIN_WORDS)
    word = latest.choice(["hunter", "dragon", "shadow", "letmein", "qwerty", "Summer", "Tr0ub4dor"])
    return word + str(latest.randint(1, 9999)) + latest.choice(["", "!", "#", "$", "*"])


def digits_password() -> str:
    word = latest.choice(["haneul", "sakura", "sunshine", "qwerty", "hunter", "Tokyo", "Seoul"])
    return word + str(latest.randint(1, 9999)) + latest.choice(["", "!", "#"])


# A password under an identifier's name, as env files, shell lines, config and code give it.
IDENTIFIER_PASSWORDS = [
    "DB_PASSWORD={v}",
    "Here is my .env:\nDB_HOST=db.internal\nDB_PASSWORD={v}\nDB_USER=app\nWhy can't it connect?",
    'export MYSQL_ROOT_PASSWORD="{v}"',
    "PGPASSWORD={v} psql -h db.internal -U app shop",
    'db_password = "{v}"  # move to the vault later',
    '{{"db_password": "{v}", "db_user": "app"}}',
    "docker run -e POSTGRES_PASSWORD={v} -d postgres:16",
    "environment:\n  MYSQL_PASSWORD: {v}\n  MYSQL_USER: shop",
    "const adminPassword = '{v}';",
    "SMTP_PASS={v}",
]
# Korean and Japanese: the value before the verb (a value with digits: a plain word in a
# sentence is not taken, as in "my password is sunshine").
BEFORE_THE_VERB = [
    "비밀번호는 {v}입니다",
    "제 비밀번호는 {v}예요. 안전한가요?",
    "와이파이 비밀번호가 {v}입니다",
    "パスワードは「{v}」です",
    "パスワードが{v}に変わりました。",
]
# A plain word given to a password, and a list goes on after it.
LISTED_WORDS = [
    "password: {v} and the username is admin",
    "Login: admin, password: {v} then press enter",
    "Passwort: {v} und der Benutzer ist admin",
    "my password: {v} and my username is kim",
]
# Code that reads a password without its value, prose about one, and Korean and Japanese
# sentences about a password with none in them.
IDENTIFIER_NEGATIVES = [
    'password = os.environ["DB_PASSWORD"]',
    'DB_PASSWORD = os.getenv("DB_PASSWORD")',
    "password = getpass()",
    'password = getpass.getpass("Password: ")',
    "db_password = settings.DB_PASSWORD",
    "DB_PASSWORD=${DB_PASSWORD}",
    "export DB_PASSWORD",
    "DB_PASSWORD=your_password_here",
    "self.ssl_password = ssl_password",
    "client = Redis(host=host, upstream_password=password, ssl=True)",
    'password = password or ""',
    "password: SecretStr = Field(...)",
    "Set PGPASSWORD before you run psql, or use a .pgpass file.",
    "The DB_PASSWORD variable holds the database password.",
    "Where should DB_PASSWORD go, in .env or in docker-compose.yml?",
    "Password: required for every account",
    "Password: required and must be at least 12 characters",
    "Password: incorrect and the account is locked",
    "The password is incorrect.",
    "How do I reset my password and my username?",
    "비밀번호는 8자 이상이어야 합니다",
    "비밀번호가 틀렸습니다",
    "비밀번호는 영문과 숫자를 포함해야 합니다",
    "パスワードが違います",
    "パスワードは忘れました",
]


def random_case_iban() -> str:
    """A valid IBAN in one run with letters in its account (the French, Italian, British and
    Dutch ones), each letter's case at random (`fR76...3mO2...`): the form that reads like a
    random key."""
    value = valid_iban(latest)
    while value[4:].isdigit():
        value = valid_iban(latest)
    while True:
        mixed = "".join(c.lower() if latest.random() < 0.5 else c for c in value)
        if mixed not in (value, value.lower()):
            return mixed


def main() -> None:
    rows: list[dict] = []

    def add(text: str, spans: list[tuple[str, str]], group_: str, note: str = "") -> None:
        for _, v in spans:
            assert v in text, (v, text)
        rows.append(
            {
                "id": f"p{len(rows):04d}",
                "text": text,
                "spans": [{"kind": k, "value": v} for k, v in spans],
                "group": group_,
                **({"note": note} if note else {}),
            }
        )

    makers = {
        "payment_card": written_card,
        "iban": written_iban,
        "phone": phone,
        "email": email,
        "national_id": lambda: rng.choice([ssn, dni, nino])(),
    }
    for kind, templates in POSITIVE_TEMPLATES.items():
        for _ in range(40):
            t = rng.choice(templates)
            if kind == "secret":
                v, shape = secret()
                add(t.format(v=shape.format(v=v)), [(kind, v)], "positive")
            else:
                v = makers[kind]()
                add(t.format(v=v), [(kind, v)], "positive")
    # Prompts that carry two kinds at once.
    for _ in range(20):
        e, c, p = email(), written_card(), phone()
        add(
            f"Customer {e} (tel {p}) wants a refund to the card {c}.",
            [("email", e), ("phone", p), ("payment_card", c)],
            "positive",
        )
    for text in NEGATIVES:
        add(text, [], "negative")
    for template, make in HARD_NEGATIVES:
        for _ in range(8):
            add(template.format(v=make()), [], "hard_negative", template.split("{v}")[0].strip())
    for _ in range(20):
        v = password()
        add(more.choice(MORE_SECRETS).format(v=v), [("secret", v)], "positive")
    for template, make in MORE_HARD_NEGATIVES:
        for _ in range(4):
            add(template.format(v=make()), [], "hard_negative", template.split("{v}")[0].strip())
    for how in ("lower", "mixed"):
        for _ in range(12):
            v = letter_case(valid_iban(late), how)
            v = late.choice([v, in_groups(v)])
            add(
                late.choice(LATE_IBAN_TEMPLATES).format(v=v),
                [("iban", v)],
                "positive",
                f"iban, {how} case",
            )
    for language, sentences in PASSWORD_SENTENCES.items():
        for sentence in sentences:
            for _ in range(2):
                v = other_password()
                add(sentence.format(v=v), [("secret", v)], "positive", f"password, {language}")
    for kind, (make, templates) in LOOK_ALIKES.items():
        for _ in range(10):
            v = make()
            add(late.choice(templates).format(v=v), [(kind, v)], "positive", f"{kind}, look-alike")
    for template, make in LATE_IBAN_NEGATIVES:
        for _ in range(8):
            add(template.format(v=make()), [], "hard_negative", "iban-like, any case")
    for language, prose in PASSWORD_PROSE.items():
        for template, words in prose:
            for word in words:
                add(template.format(v=word), [], "hard_negative", f"password prose, {language}")
    for template, make in LOOK_ALIKE_NEGATIVES:
        for _ in range(4):
            add(template.format(v=make()), [], "hard_negative", "look-alike, no value")
    for template in IDENTIFIER_PASSWORDS:
        for _ in range(2):
            v = env_password()
            add(template.format(v=v), [("secret", v)], "positive", "password, identifier's name")
    for template in BEFORE_THE_VERB:
        for _ in range(2):
            v = digits_password()
            add(template.format(v=v), [("secret", v)], "positive", "password before the verb")
    for template in LISTED_WORDS:
        for _ in range(2):
            v = latest.choice(PLAIN_WORDS)
            add(template.format(v=v), [("secret", v)], "positive", "password, a list goes on")
    for _ in range(12):
        v = random_case_iban()
        add(latest.choice(LATE_IBAN_TEMPLATES).format(v=v), [("iban", v)], "positive",
            "iban, random case")  # fmt: skip
    for text in IDENTIFIER_NEGATIVES:
        add(text, [], "hard_negative", "password code or prose, no value")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["group"]] = counts.get(r["group"], 0) + 1
    print(f"wrote {OUT} ({len(rows)} rows: {counts})")


if __name__ == "__main__":
    main()
