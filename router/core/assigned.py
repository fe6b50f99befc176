"""Values given to a password, a key or a token in a text, for the secret detector
(`router/core/privacy.py`): `password: hunter2`, `DB_PASSWORD=...` and `PGPASSWORD=... psql`
(env files, shell lines, config, code), `"db_password": "..."`, "my password is ...", and the
word for password in other languages (`Passwort: ...`, `비밀번호는 ...입니다`); a plain word
given to a password's English name ("my password is sunshine", `pw: tiger`, `db_pass=tiger`,
`password:tiger`, `password = tiger`) or after a sign to another language's (`Passwort:
tiger`), a passphrase's words, an XML element's text (`<password>s3cr3t</password>`) and
MySQL's `-pS3cret`. What is not a value: a phrase or a word about a password ("Password:
required for every account", "the password is wrong", "Passwort: falsch"), code that reads
one (`password = os.environ["DB_PASSWORD"]`, `password=db_password`, a type annotation, a
variable given in code), a template's stand-in (`${DB_PASSWORD}`, `your_password_here`).
Pure functions, no I/O.
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
# English names of a password (lower case, as `_assigned` finds them). A plain word given to
# one is read down to 5 letters, and in prose too, because the English words that say what a
# password is like are known here (`DESCRIBES_A_PASSWORD`, `_DESCRIBING_ENDING`); after
# another language's name, down to 5 letters after a sign only (`DESCRIBES_ELSEWHERE`); after
# a key's or a token's name a plain word must have 8 letters, after a sign.
ENGLISH_PASSWORD_NAMES = frozenset({"password", "passwd", "passphrase", "pwd", "pw", "pass"})

# Words that say what a password is or must be rather than give one ("Password: required
# and ...", "Passwort: erforderlich", "the password is wrong"): never a value. Other
# languages' words here have 8 letters or more (their shorter ones: `DESCRIBES_ELSEWHERE`);
# English ones are of any length.
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
    " nesprávné unbekannt unsicher vergeben gesperrt versteckt zufällig pflichtfeld dasselbe"
    " invalide manquant identique personnel temporaire ci-dessous ci-joint ci-après insegura"
    " correcta cualquiera diferente onbekend hieronder verborgen gewijzigd надёжный poprawne"
    " nieznane zmienione zapomniane felaktigt ogiltigt påkrævet nedenfor pakollinen"
    " virheellinen unohtunut vaihdettu valinnainen tuntematon vanhentunut geçersiz unutulmuş"
    " kötelező helytelen érvényes érvénytelen opcionális elfelejtett megváltozott nepovinné"
    " neplatné zapomenuté distinta inconnue vorhanden indéfini presente présente definida"
    " definido"
    " wrong correct right valid invalid strong stronger weak weaker short shorter long longer"
    " empty blank unset unknown known hidden masked shown broken stolen taken given chosen"
    " written mine yours ours theirs below above there here same fine great okay good better"
    " worse simple complex unique random common obvious secure insecure unsafe private public"
    " mismatch current latest initial enough present absent lowercase uppercase numeric"
    " alphanumeric"
    " case-sensitive case-insensitive".split()
)
# Words that describe a password in a sentence ("the password is secret") but are also set
# as one in config (`POSTGRES_PASSWORD: secret`): not a value in prose only.
DESCRIBES_IN_PROSE = frozenset({"secret", "default"})
# Endings of English participles and adjectives ("the password is hashed", "password: missing",
# "guessable", "sensitive", "obvious", "useless"): a plain word with one, in prose or of fewer
# than 8 letters after a sign, describes a password. (One of 8 letters or more after a colon
# was a value before these words were read and stays one; in `NAME=value` and an element's
# text no one describes.) Nouns with such an ending that are common passwords are listed
# (`NOT_DESCRIBING`: "password: darling"): with no dictionary an ending cannot tell "darling"
# from "missing", and a list of those nouns is shorter and safer than one of the participles.
_DESCRIBING_ENDING = re.compile(r"(?:ed|ing|able|ible|ive|ous|ful|less)$")
NOT_DESCRIBING = frozenset(
    "darling starling sterling pudding dumpling viking morning evening".split()
)
# Shorter words (5 to 7 letters, 5 different ones at least: fewer are never a value) that
# describe a password in the other languages of `PASSWORD_WORDS`, and their participles' and
# adjectives' endings (French oublié, Czech povinné; Spanish and Portuguese olvidada, válida;
# German and Dutch gesetzt, gewijzigd, gültig, erforderlich, onmogelijk; Russian пустой,
# верный): read after those languages' names only (German `stark`, "strong", is an English
# password), where a plain word of fewer than 8 letters is a value after a sign if it is none
# of them ("Passwort: tiger", "mot de passe : tigre"; "Passwort: falsch" describes one). Their
# words for "secret" (`Passwort: geheim`) are values after a sign, as `password: secret` is.
DESCRIBES_ELSEWHERE = frozenset(
    "falsch sicher schwach stark fehlt fehlend keins keines nichts pflicht privat gleich anders"
    " bekannt korrekt ändern folgt anbei requis requise solide robuste court courte longue"
    " inconnu aucune perdu nouveau ancien valide suivant définie défini présent vacío"
    " ninguna ninguno débil fuerte corta oculta nueva antigua errónea segura nenhuma nenhum"
    " forte curta longa antiga correta abaixo onjuist juist vereist sterk nieuw zelfde скрыт"
    " изменён забыл утерян указан błędne puste słabe silne stare ukryte dowolne poniżej krävs"
    " svagt starkt glömt ändrat okänt påkrevd forkert valgfri glemt endret ændret ukjent ukendt"
    " svakt sterkt stærkt oikea tyhjä heikko gerekli zorunlu yanlış hatalı geçerli doğru zayıf"
    " aşağıda değişti hibás helyes lejárt".split()
)
_DESCRIBING_ENDING_ELSEWHERE = re.compile(
    r"(?:é|ée|és|ées|[ai]d[oa]s?|[dlt]ig|lich|lijk|ый|ий|ой|ая|яя|ое|ее|ые|ие)$|^ge\w+[dt]$"
)
# Type names and literals: what a schema, a sample request or code gives a password, not a
# value (`"password": "string"`, `<password>string</password>`, `pass=None`).
TYPE_WORDS = frozenset(
    "string str bytes bool boolean number integer int text varchar char object secretstr true"
    " false none null nil undefined".split()
)
# Words of prose (articles, pronouns, prepositions, auxiliaries, negation, quantity) and words
# about a passphrase's length: never among a passphrase's words ("passphrase is stored in the
# keychain", "passphrase: minimum twelve characters").
PHRASE_WORDS = frozenset(
    "a an the this that these those it its is are was were be been being am has have had do"
    " does did to of in on at by for with from into onto as than then and or but nor if so not"
    " no too very also only just still yet now here there when where what which who whom whose"
    " how why my your our their his her we you they me us them must should can could will would"
    " may might shall each every all any some both either neither more most less least few many"
    " much such own same other another about after before over under between through during"
    " until while unless whether elif assert return characters letters words digits symbols"
    " long short length minimum maximum".split()
)
# Letters of scripts written without spaces, their punctuation and full-width forms: not part
# of a value ("パスワードはabc123です": the value is "abc123"; full-width text is read in its
# NFKC form, see `privacy.find`).
_CJK = r"\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"


def _assigned(words: str = "", unspaced: str = "", starts: str = "") -> re.Pattern:
    """A value given to a key, token or password: `name: value`, `name=value`, "name is value"
    (`words`: more names; `unspaced`: names in scripts without spaces, with no word boundary).
    A password's name may end an identifier (`DB_PASSWORD`, `PGPASSWORD`, `dbPassword`,
    `MYSQL_PWD`, `SMTP_PASS` in upper case), as env files, shell lines and code name them;
    `pw` and `pwd` are a word or an identifier's last part (`pw: ...`, `db_pw=...`); `pass` in
    any case only glued to `=` (`db_pass=...`, `pass=...` in env files, shell lines, query
    strings), since a compiler's or a loop's pass is spaced (`first_pass = False`), a
    boarding pass is prose and `compass=`, `bypass=`, `passenger=` are other words.
    (`starts`: the letters the more names begin with; a look-ahead for the first letters of all
    skips most places at once, which the names' boundaries and look-behinds would not.)"""
    names = r"api[_-]?key|access[_-]?key|secret(?:[_-]?key)?|token|auth|authorization"
    names = rf"\b(?:{names})|(?<![^\W_])(?:pwd?{'|' + words if words else ''})"
    names += r"|pass(?:word|wd|phrase)|(?-i:(?<=_)PASS)|(?<![^\W_])pass(?==)"
    if unspaced:
        names += f"|{unspaced}"
    return re.compile(
        rf"(?i)(?=[apst{starts}])(?P<name>{names})[\"']?"
        r"(?:\s*(?P<sign>[:=—–])\s*|(?P<verb>\s+(?:is|ist|lautet|est|es|é)(?:\s*:)?\s+"
        r"|\s*(?:是|为|為|は|が|는|은|가)\s*))[\"'「『“‘]?"
        rf"(?:(?:bearer|basic|token)\s+)?(?P<value>[^\s\"'“”‘’,;{_CJK}]{{5,}})"
    )


_ASSIGNED = _assigned()
_ASSIGNED_ANY_LANGUAGE = _assigned(PASSWORD_WORDS, CJK_PASSWORD_WORDS, PASSWORD_WORDS_START)
_ELSEWHERE = re.compile(rf"(?i){PASSWORD_WORDS}|{CJK_PASSWORD_WORDS}")
_CJK_NAME = re.compile(CJK_PASSWORD_WORDS)
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
# A name with nothing after it on its line (`password:` opening a YAML mapping, an empty
# `DB_PASSWORD=`): the next line's entry (`type: string`, `DB_HOST=db`) is not its value.
_NEXT_ENTRY = re.compile(r"^[A-Za-z_][\w.-]*(?::$|=)")
_QUOTES = "\"'「『“‘"
_NAMES = ("password", "passwd", "secret", "secret_key", "api_key", "token", "auth")


# A stand-in written in words: `your_api_key_here`, `your-password`, `<...>_here`.
_STAND_IN = re.compile(r"(?i)^your[_-]|[_-]here$|\*\*\*")


def placeholder(value: str) -> bool:
    """A template's stand-in for the value (`${DB_PASSWORD}`, `<password>`, `[SECRET_1]`,
    `your_password_here`, `sk-***`)."""
    return (
        value.startswith(("{", "$", "<", "[", "%("))
        or set(value) <= set("*x.…")  # `***`, `xxxx`, `...`
        or _STAND_IN.search(value) is not None
    )


def _is_value(
    value: str,
    prose: bool,
    then: str | None = None,
    plain: bool = False,
    glued: bool = False,
    elsewhere: bool = False,
) -> bool:
    """Is the value given to a key, token or password one? Not a stand-in, not code
    (`token = tokenizer.encode(text)`), not a word that describes a password or a type's name.
    A value with a digit or a sign is one ("my password is hunter22", "password: sunshine1").
    A plain word after a key's, a token's or another language's name is one only after a
    sign, with 8 letters or more ("password: sunshine", "Passwort: sonnenschein"); after an
    English name of a password (`plain`) it may be shorter ("password: tiger") and in prose
    ("my password is sunshine"), unless it describes one by its ending ("the password is
    hashed"; not checked where nobody describes, `glued`: `pass=tiger`, `<password>...`).
    After another language's name (`elsewhere`) it may be shorter after a sign only, unless
    it describes one in any language ("Passwort: tiger"; "Passwort: falsch", "mot de passe :
    oublié", "Passwort: hashed").
    When more words follow it on its line (`then`: the next one), after a sign it is a value
    only if that word ends it, as a list goes on ("password: sunshine and the user is bob");
    otherwise it begins a phrase ("Passwort: mindestens acht Zeichen"); in prose it must end
    its sentence or line ("The password is sunshine and it never changed" tells a story)."""
    if len(set(value)) < 5 or placeholder(value) or _CODE.search(value):
        return False
    if _NAMES_ONE.match(value.rstrip("}")):
        return False
    if value.startswith(("/", "~/", "./", "../")) or "://" in value:
        return False  # "pwd: /home/ann", "auth: https://id.example.com/callback"
    word = value.rstrip(".!?:")  # "Das Passwort ist falsch.": a sentence's end is no part of it
    lower = word.lower()
    if lower in DESCRIBES_A_PASSWORD or lower in TYPE_WORDS:
        return False
    if not word.isalpha():
        return True
    describes = _DESCRIBING_ENDING.search(lower) is not None and lower not in NOT_DESCRIBING
    if elsewhere and not prose and len(word) < 8:
        if describes or lower in DESCRIBES_ELSEWHERE or _DESCRIBING_ENDING_ELSEWHERE.search(lower):
            return False
    elif not plain:
        if prose or len(word) < 8:
            return False
    elif not glued and (prose or len(word) < 8) and describes:
        return False
    elif prose:
        return then is None and lower not in DESCRIBES_IN_PROSE
    return then is None or then.lower() in ENDS_A_VALUE


def given_values(text: str) -> Iterator[tuple[int, int]]:
    """Where each value given to a password, key or token in `text` starts and ends."""
    lower = text.lower()
    yield from _named_values(text, lower)
    if "passphrase" in lower:
        yield from _passphrases(text)
    if "</" in text:
        yield from _element_values(text)
    yield from _mysql_values(text)


def _named_values(text: str, lower: str) -> Iterator[tuple[int, int]]:
    """Values after a name and a sign or a verb (`password: ...`, `DB_PASSWORD=...`, "my
    password is ...", `Passwort: ...`)."""
    pattern = _ASSIGNED_ANY_LANGUAGE if any(k in lower for k in PASSWORD_KEYS) else _ASSIGNED
    for m in pattern.finditer(text):
        sign, value, end = m.group("sign"), m.group("value"), m.end("value")
        if value.endswith(")") and "(" not in value:
            # "(user: bob, password: hunter22)": the parenthesis is the sentence's, not code
            value, end = value[:-1], end - 1
        name = m.group("name")
        plain = name.lower() in ENGLISH_PASSWORD_NAMES
        # Another language's name and a colon or an `=`: a value may be as short as after an
        # English name ("Passwort: tiger"), as the words that describe one there are known.
        elsewhere = not plain and sign in (":", "=") and bool(_ELSEWHERE.fullmatch(name))
        if len(value) < 6 and not (plain or elsewhere):
            continue  # a key's or a token's value, or one in prose: 6 characters at least
        if "\n" in text[m.end("name") : m.start("value")] and _NEXT_ENTRY.match(value):
            continue
        follows = _PHRASE.match(text, end)
        # "password: sunshine. Thanks": a sentence's end closes the value, whatever follows
        then = follows.group(1) if follows and value[-1] not in ".!?" else None
        unquoted = text[m.start("value") - 1] not in _QUOTES
        word = value.rstrip(".!?:")  # a plain word's full stop ends the sentence, not it
        if word.isalpha() and unquoted and _word_out_of_place(text, m, value, plain, elsewhere):
            continue
        glued = False
        if sign == "=" and unquoted and value in _NAMES and text[m.start()].islower():
            continue  # `upstream_password=password`: code passes a variable of that name on
        if sign == "=":
            at = m.start("sign")
            if not (text[at - 1].isspace() or text[at + 1].isspace()):
                glued, then = True, None  # `PGPASSWORD=secret psql ...`: a shell's NAME=value
            elif unquoted and _VARIABLE.match(value):
                continue
            elif then is not None:
                then = "="  # `password = password or ""`: code, where no word ends a value
        elif sign == ":" and _ANNOTATION.match(text, end):
            continue
        if _is_value(value, m.group("verb") is not None, then, plain, glued, elsewhere):
            yield m.start("value"), m.start("value") + len(word if word.isalpha() else value)


# Words after which a sentence names the password it gives ("my password is", "the wifi
# password is"), and signs that begin a clause ("Username is bob, password is ...").
_DETERMINERS = frozenset("my your our his her their its the this that".split())
_CLAUSE_SIGNS = tuple(".,;:!?(\"'“")


def _begins_its_clause(text: str, line_start: int, at: int) -> bool:
    """Does the name at `at` begin a clause: at its line's start, after a sign or after a
    possessive or an article, with at most two words between (`wifi`, `admin`) and none a
    word of prose ("no username or password", "if password")? Read backwards word by word
    over at most 80 characters: a pattern anchored at the end would be tried at every place
    of the line."""
    before = text[max(line_start, at - 80) : at]
    words = before.split()
    if words and not before[-1].isspace():
        words.pop()  # the name's own identifier (`DB_` of `DB_PASSWORD`, `wifi-`)
    for between, word in enumerate(reversed(words)):
        if word.endswith(_CLAUSE_SIGNS) or word.lower() in _DETERMINERS:
            return True
        if between == 2 or word.lower() in PHRASE_WORDS:
            return False
    return at - 80 <= line_start  # the line's start, unless it was beyond the 80 characters


def _word_out_of_place(
    text: str, m: re.Match, value: str, plain: bool, elsewhere: bool = False
) -> bool:
    """Is an unquoted plain word given to a name there by the text's shape, not as its value?
    On the next line it is that line's first word (`if ... azure_password:` then `return`).
    Glued to a colon it is a namespace's member (`DEBUG=pw:api`, `passwd:gecos`), unless
    `password` lists a credential (`password:tiger`, see `_lists_credentials`); after a colon
    inside parentheses, a capitalised word is a parameter's type (`def f(pw: Split)`; not in
    "(user: bob, password: sunshine)"). After ` = ` in lower case it is a variable when a
    tuple is unpacked (`username, password = value`), or under 8 letters in code
    (`_reads_as_code`); elsewhere (`password = tiger`, an INI file's `password = sunshine`) it
    is a value. In prose the name must begin its clause ("my password is ...", not "no
    username or password is present", "if password is None")."""
    sign, start = m.group("sign"), m.start("value")
    if "\n" in text[m.end("name") : start]:
        return True
    # The line's start, looked for over 200 characters at most (a text of one long line).
    lo = max(0, m.start() - 200)
    line_start = max(text.rfind("\n", lo, m.start()) + 1, lo)
    if sign == ":":
        before = text[line_start : m.start()]
        glued = not text[m.end("sign")].isspace()
        namespaced = glued and len(value) < 8 and not _lists_credentials(before, m)
        typed = value[0].isupper() and before.count("(") > before.count(")")
        return namespaced or typed
    if sign == "=":
        spaced = text[m.start("sign") - 1].isspace()
        lower_var = value.islower() and text[m.start()].islower()
        if not ((plain or elsewhere) and spaced and lower_var):
            return False
        if "," in text[line_start : m.start()]:
            return True  # a tuple unpacked (`ph, pw = paddings`), at any length
        return len(value.rstrip(".")) < 8 and _reads_as_code(text, line_start, m)
    if sign is None and plain:  # prose: "name is value"
        return not _begins_its_clause(text, line_start, m.start())
    return False


# A credential listed with its name glued to a colon: the name starts its line, follows a list's
# mark or a sign, or another pair (`user:bob password:tiger`).
_LISTED_AFTER = re.compile(r"[,;(]$|^(?:[-*•>]|\d+[.)])$|[^\W_]+[:=][^\s:=]+$")


def _lists_credentials(before: str, m: re.Match) -> bool:
    """Does `password:word` (glued) list a credential rather than name a namespace's member?
    A name in a script without spaces (`密码：tiger`: a full-width colon is glued there), or a
    full English name (`password`, `passphrase`; `pw:api`, `passwd:gecos` are members) spaced
    from what comes before it on its line (not `auth:password:reset`) and its line's first
    item, a list's, or one after a sign or another pair ("user:bob password:tiger"; not "php
    artisan password:update")."""
    name = m.group("name").lower()
    if _CJK_NAME.fullmatch(name):
        return True
    if name not in ("password", "passphrase"):
        return False
    if before and not before[-1].isspace():
        return False
    words = before.split()
    return not words or _LISTED_AFTER.search(words[-1]) is not None


# Code near a lower-case name given a lower-case word with a spaced `=`: brackets and braces,
# a statement's `;` at a line's end, comparisons and arrows, and the keywords that begin a
# definition, an import or a block (`if ok:`) at a line's start.
_CODE_NEARBY = re.compile(
    r"[(){}]|;[ \t]*$|[=!<>]=|=>|->|::"
    r"|^[ \t]*(?:def|class|import|from|return|elif|const|var|let|function|func|fn|public"
    r"|private|static)\b|^[ \t]*(?:if|for|while|with|try|else)\b.*:[ \t]*$",
    re.M,
)


def _reads_as_code(text: str, line_start: int, m: re.Match) -> bool:
    """Is `password = tiger` (a lower-case name, a spaced `=`, a lower-case word of fewer than
    8 letters) code that gives the password a variable? In a Python or a JavaScript file it
    may be; in a prompt, an INI file or a shell's `.conf` it gives a value. So it is read as
    code by its context only: the name an identifier's or an attribute's last part
    (`db_password`, `self.password`, `$password`), a declaration's keyword before it (`let`,
    `var`, `const`), or code within 300 characters (`def`, `import`, brackets, `;`, `==`)."""
    before = text[line_start : m.start()]
    if before and not before[-1].isspace():
        return True
    if before.split()[-1:] in (["let"], ["var"], ["const"], ["val"], ["auto"], ["dim"]):
        return True
    return _CODE_NEARBY.search(text, max(0, m.start() - 300), m.end() + 300) is not None


# A passphrase is words (`passphrase is correct horse battery staple`): one value when 3 to 8
# words of letters run from the name to the end of the sentence or line, none a word of prose
# (`PHRASE_WORDS`) or one with a describing ending ("stored encrypted locally"). At least 3,
# because password managers' generators give no fewer (Bitwarden's minimum) and two words
# read as a phrase ("too short", "not set"); at most 8, because diceware's advice is 6 words
# (the EFF's) and a longer run is likelier a heading or a list than a passphrase. A single
# word is read as a password's (`passphrase: sunshine42`, above).
_PASSPHRASE = re.compile(
    r"(?im)passphrase[\"']?(?:[ \t]*[:=][ \t]*|[ \t]+is(?:[ \t]*:)?[ \t]+)[\"'“‘]?"
    r"(?P<words>[^\W\d_]+(?:[ \t]+[^\W\d_]+){2,7})(?=[ \t]*(?:[.!?,;)\"'”’]|$))"
)


def _passphrases(text: str) -> Iterator[tuple[int, int]]:
    for m in _PASSPHRASE.finditer(text):
        words = m.group("words").lower().split()
        if not any(w in PHRASE_WORDS or _DESCRIBING_ENDING.search(w) for w in words):
            yield m.span("words")


# A password as an XML element's text (`<password>s3cr3t</password>`, `<DbPassword>`,
# `<ns:passwd>`, `<Passwort>`): an element is a value's place, so a plain word there is a
# value at any length, unless it describes a password or names a type (web services' sample
# requests show `<password>string</password>`). A self-closing or empty element holds none.
# `<pass>` and `<pw>` are not read (a mountain pass, a test's pass), nor keys' and tokens'
# elements (`<token>` holds a word in a linguistic corpus; a random-looking key is still
# found by its shape).
_ELEMENT = re.compile(
    r"(?i)<(?P<tag>[\w.:-]*?(?:password|passwd|passphrase)"
    rf"|(?:[\w.:-]*[_.:-])?(?:pwd|{PASSWORD_WORDS}))"
    r"(?:\s[^<>]*(?<!/))?>[ \t]*(?P<value>[^\s<>]+)[ \t]*</(?P=tag)\s*>"
)


def _element_values(text: str) -> Iterator[tuple[int, int]]:
    for m in _ELEMENT.finditer(text):
        if _is_value(m.group("value"), prose=False, plain=True, glued=True):
            yield m.span("value")


# MySQL's and MariaDB's clients take the password glued to `-p` (`mysql -u root -pS3cret db`,
# `-p'S3cret'`); `-p` alone, or `-p` and a space, makes them prompt for it (the next word is
# the database), so no value is there. `-P` is the port. `--password=...` is a name given a
# value (above). The command's line is read up to a pipe, a `;`, a `&` or a quote, and over
# 200 characters at most (a text of one long line is not read again for every client's name).
_MYSQL_PASSWORD_FLAG = re.compile(
    r"(?<![\w-])(?:mysql(?:dump|admin|import|check|show|slap)?|mariadb(?:-dump|-admin)?)(?![\w-])"
    r"[^\n|;&\"'`]{0,200}?[ \t]-p"
    r"(?:\"(?P<double>[^\"\n]+)\"|'(?P<single>[^'\n]+)'|(?P<bare>[^\s\"'`|;&]+))"
)


def _mysql_values(text: str) -> Iterator[tuple[int, int]]:
    # Tried only where a client's name (typed in lower case) starts, found by `str.find`:
    # scanning the whole text with the pattern would cost a third of this module's time.
    for name in ("mysql", "mariadb"):
        at = text.find(name)
        while at != -1:
            m = _MYSQL_PASSWORD_FLAG.match(text, at)
            if m:
                group = "double" if m.group("double") else "single" if m.group("single") else "bare"
                if not placeholder(m.group(group)):  # `-p"$MYSQL_PWD"`, `-p<password>`
                    yield m.span(group)
            at = text.find(name, at + 1)
