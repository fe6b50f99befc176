"""Do two questions differ where it matters? The semantic cache's guard against wrong answers.

Embeddings cannot tell these pairs apart: "Is aspirin safe during pregnancy?" and "Is aspirin
not safe during pregnancy?" are at cosine 0.986 with the cache's encoder, a paraphrase pair only
at 0.94. So a semantic cache hit must also pass `difference(cached, asked)`, which is None when
the two questions agree on everything a similarity cannot see, else the first reason they do
not:

- **numbers** (digits with their sign, and number words, as a multiset: "17 * 23" is not
  "17 * 24", "-5" is not "5");
- **operators** (+, -, *, /, ^, =, <, >, %, ==, !=, <=, >= and their words: "17 + 23" is not
  "17 * 23");
- **names** (capitalised words that are not sentence-initial common words, acronyms,
  quoted strings: "the capital of Peru" is not "the capital of Chile");
- **negation** (the count of not/no/never/n't/without ..., and un-/in-/dis- antonyms of a
  word the other text uses: "safe" is not "unsafe");
- **code** (fenced or inline code, compared exactly but for trailing spaces);
- **order**: the same numbers or names in another order ("17 - 23" / "23 - 17", "100 USD to
  EUR" / "100 EUR to USD", "Is Peru bigger than Chile?" / "Is Chile bigger than Peru?"), and,
  where a word of direction (than, to, from, minus ...) is among them, the same words in
  another order ("Is a dog faster than a cat?" / "Is a cat faster than a dog?"). A paraphrase
  that moves one name ("the capital of Peru" / "Peru's capital") keeps its order;
- **a swapped word**: a word of one that the other replaces with a word of its own ("sort" /
  "reverse", "largest" / "smallest": nothing else differs, and even six-layer vectors put such
  pairs above 0.95). Added or dropped words (a polite prefix, "city" in "Which city is Peru's
  capital?") are not a swap, nor are question words, inflections ("sort" / "sorted") and
  interchangeable instruction verbs ("calculate" / "compute");
- **a long shared prefix**: when the two share a prefix longer than the encoder's window sees
  whole, the vectors mostly see that prefix, so the parts after it must agree word for word
  (case, punctuation and stop words aside).

Words are words of any script; one written without spaces (Chinese, Japanese) gives a word per
run of letters, so that a changed character is a changed word. It errs towards a miss: a false
miss costs one model call, a false hit a wrong answer.
Pure and fast (regular expressions over the two last user turns).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

# Function words: a paraphrase after a long shared prefix may change these and nothing else.
STOP = frozenset(
    """
    a an the this that these those it its i we you me my our your is are was were be been am
    do does did can could would should will shall may might must have has had and or but so
    then also in on at of for to from by with about as into please up out off just only very
    really quite
    """.split()
)

_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_NUMBER_WORDS.update(
    {
        w: str(10 * (i + 3))
        for i, w in enumerate("thirty forty fifty sixty seventy eighty ninety".split())
    }
)
_NUMBER_WORDS.update(
    {"hundred": "100", "thousand": "1000", "million": "1e6", "billion": "1e9", "half": "0.5"}
)
_NUMBER_WORDS.update({"twice": "2", "double": "2", "triple": "3", "dozen": "12"})
# A minus sign is part of its number ("-5", "(-5)", "= -5"); after a word, a digit or a
# bracket it is a hyphen or a subtraction ("COVID-19", "10-20", "(x)-5").
_NUMBER = re.compile(r"(?:(?<![\w)\]])[-−])?\d+(?:[.,]\d+)*")
_OPERATOR_SYMBOLS = re.compile(r"(?<=[\w)\s])(==|!=|<=|>=|[+*/^=<>%×÷≤≥≠])(?=[\s(\w.-])")
# "-" is subtraction when spaced ("x - y") or between digits ("17-4"); else a hyphen.
_MINUS = re.compile(r"\w\s+-\s+\w|\d-\d")
_OPERATOR_WORDS = {
    "plus": "+",
    "minus": "-",
    "subtract": "-",
    "times": "*",
    "multiplied": "*",
    "divided": "/",
    "squared": "^",
    "cubed": "^",
    "equals": "=",
    "percent": "%",
    "×": "*",
    "÷": "/",
    "≤": "<=",
    "≥": ">=",
    "≠": "!=",
}
_NEGATIONS = frozenset(
    "not no never none nobody nothing neither nor without cannot nowhere hardly barely "
    "isnt arent wasnt werent dont doesnt didnt cant couldnt wont wouldnt shouldnt "
    "mustnt havent hasnt hadnt aint".split()
)
_ANTONYM_PREFIXES = ("un", "in", "im", "il", "ir", "dis", "non")
# A word of any script ("Перу", "Österreich"); a script written without spaces (Chinese,
# Japanese, Thai) gives one word per run of letters, so that a changed character is a changed
# word ("如何用Python排序列表" / "如何用Python反转列表").
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’-])*")
_CODE_FENCE = re.compile(r"```.*?(?:```|$)", re.S)
_CODE_INLINE = re.compile(r"`[^`\n]+`")
_OPENERS = frozenset(".!?:;\n\"'(*-#>")  # a word after one of these starts a sentence
_QUOTED = re.compile(r"\"([^\"\n]{1,80})\"|“([^”\n]{1,80})”")

# How many characters of shared prefix make the vectors mostly about the prefix: the shipped
# encoder sees 128 tokens (about 500 characters) of a text, its head and its tail.
LONG_PREFIX_CHARS = 200


_CONTRACTIONS = [
    (re.compile(r"(?i)\b(what|who|where|how|when|why|it|that|there|here|he|she)'s\b"), r"\1 is"),
    (re.compile(r"(?i)\bwon't\b"), "will not"),
    (re.compile(r"(?i)\bcan't\b"), "can not"),
    (re.compile(r"(?i)\bshan't\b"), "shall not"),
    (re.compile(r"(?i)n't\b"), " not"),
    (re.compile(r"(?i)'re\b"), " are"),
    (re.compile(r"(?i)'ll\b"), " will"),
    (re.compile(r"(?i)'ve\b"), " have"),
    (re.compile(r"(?i)\bI'm\b"), "I am"),
    (re.compile(r"(?i)'d\b"), " would"),
]


def normalise(text: str) -> str:
    """NFKC, curly quotes straightened, contractions spelled out ("what's" is "what is"),
    whitespace runs made single spaces."""
    text = unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'")
    if "'" in text:
        for pattern, full in _CONTRACTIONS:
            text = pattern.sub(full, text)
    return " ".join(text.split())


def numbers(text: str) -> Counter[str]:
    """Numbers in a text, digits and number words, as a multiset of canonical strings."""
    out: Counter[str] = Counter()
    for m in _NUMBER.finditer(text):
        raw = m.group().replace("−", "-")
        # "1,000" and "1000" are one number; "3,5" (a decimal comma) is 3.5.
        if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", raw):
            raw = raw.replace(",", "")
        raw = raw.replace(",", ".")
        try:
            out[repr(float(raw))] += 1
        except ValueError:
            out[raw] += 1
    for w in _WORD.findall(text.lower()):
        if w in _NUMBER_WORDS:
            out[repr(float(_NUMBER_WORDS[w]))] += 1
    return out


def operators(text: str) -> Counter[str]:
    """Arithmetic operators, symbols and words, as a multiset ("times" counts as "*")."""
    out: Counter[str] = Counter(
        _OPERATOR_WORDS.get(m.group(1), m.group(1)) for m in _OPERATOR_SYMBOLS.finditer(text)
    )
    out["-"] += len(_MINUS.findall(text))
    for w in _WORD.findall(text.lower()):
        if w in _OPERATOR_WORDS:
            out[_OPERATOR_WORDS[w]] += 1
    return +out  # drops zero counts


def names(text: str, initial: bool = True) -> set[str]:
    """Named things, lower-cased: capitalised words inside a sentence, acronyms and mixed-case
    words anywhere ("HTML", "iPhone"), quoted strings; possessives dropped. A capitalised word
    that starts a sentence is not taken for a name ("Compose", "Quick question:"): it may be
    a name, and the embedding then has to tell. `initial`: the text starts a sentence."""
    out: set[str] = set()
    for m in _QUOTED.finditer(text):
        out.add("“" + (m.group(1) or m.group(2)).strip().lower())
    for m in _WORD.finditer(text):
        w = m.group()
        if not w[0].isupper():
            if any(c.isupper() for c in w[1:]):
                out.add(w.lower())  # "iPhone", "eBay"
            continue
        if w.endswith(("'s", "’s")):
            w = w[:-2]
        w = w.strip("'’-")
        if not w or w in ("I", "I'm"):
            continue
        j = m.start() - 1
        while j >= 0 and text[j] == " ":
            j -= 1
        starts = initial if j < 0 else text[j] in _OPENERS
        if starts and not any(c.isupper() for c in w[1:]):
            continue
        out.add(w.lower())
    return out


def negations(text: str) -> int:
    n = 0
    for w in _WORD.findall(text.lower()):
        w = w.replace("'", "").replace("’", "")
        if w in _NEGATIONS:
            n += 1
    return n


def _base(word: str) -> str:
    """The word without a possessive ending ("Peru's" is "Peru")."""
    return word[:-2] if word.endswith(("'s", "’s")) else word


def _words(text: str) -> set[str]:
    """Lower-cased words, possessives dropped."""
    return {_base(w.lower()).strip("'’-") for w in _WORD.findall(text)}


def antonym(a: set[str], b: set[str]) -> str | None:
    """A word of one text whose un-/in-/dis- form is in the other ("safe" / "unsafe")."""
    for x, y in ((a, b), (b, a)):
        for w in x - y:
            for p in _ANTONYM_PREFIXES:
                if w.startswith(p) and len(w) > len(p) + 3 and w[len(p) :] in y:
                    return w
    return None


def code(text: str) -> list[str]:
    spans = _CODE_FENCE.findall(text) + _CODE_INLINE.findall(_CODE_FENCE.sub(" ", text))
    return ["\n".join(line.rstrip() for line in s.strip("`").strip().splitlines()) for s in spans]


def _content_words(text: str) -> list[str]:
    return [w for w in (x.lower().strip("'’-") for x in _WORD.findall(text)) if w not in STOP]


# Words a rewording may swap for one another without changing the question.
_QUESTION_WORDS = frozenset("what which who whom whose where when why how".split())
_INTERCHANGEABLE = [
    frozenset("calculate compute find determine evaluate work".split()),
    frozenset("write compose draft".split()),
    frozenset("list name enumerate".split()),
    frozenset("give provide tell".split()),
    frozenset("show display print".split()),
    frozenset("explain describe".split()),
    frozenset("make create build".split()),
    frozenset("big large".split()),
    frozenset("small little".split()),
]
_SUFFIXES = ("ing", "ed", "es", "s")


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


_INTERCHANGEABLE_STEMS = [frozenset(_stem(w) for w in group) for group in _INTERCHANGEABLE]


def swapped(a: str, b: str) -> tuple[str, str] | None:
    """A content word of `a` and one of `b` that each lacks, when neither is a question word,
    another form of the other's word or an interchangeable verb: one word replaced."""
    ca = Counter(_stem(_base(w)) for w in _content_words(a) if w not in _QUESTION_WORDS)
    cb = Counter(_stem(_base(w)) for w in _content_words(b) if w not in _QUESTION_WORDS)
    only_a, only_b = list((ca - cb).elements()), list((cb - ca).elements())
    for x in only_a:
        for y in only_b:
            if not any(x in group and y in group for group in _INTERCHANGEABLE_STEMS):
                return x, y
    return None


def _middles(a: str, b: str) -> tuple[int, str, str]:
    """(characters of the shared prefix, and the words of `a` and `b` between their shared
    prefix and shared suffix, with one shared word of context on each side)."""
    ta, tb = a.split(" "), b.split(" ")
    n = min(len(ta), len(tb))
    p = 0
    while p < n and ta[p] == tb[p]:
        p += 1
    s = 0
    while s < n - p and ta[len(ta) - 1 - s] == tb[len(tb) - 1 - s]:
        s += 1
    lo, hi_a, hi_b = max(0, p - 1), len(ta) - max(0, s - 1), len(tb) - max(0, s - 1)
    shared = len(" ".join(ta[:p]))
    return shared, " ".join(ta[lo:hi_a]), " ".join(tb[lo:hi_b])


# Words that give a question a direction: swapping what stands on either side of one turns it
# into another question ("faster than", "from ... to ...", "minus", "divided by").
_DIRECTION = frozenset(
    "than to from into onto towards over under above below before after versus vs minus "
    "divided by per beats".split()
)


def _tokens(text: str, text_names: set[str]) -> list[tuple[str, bool]]:
    """The text's numbers and words in order, canonical (numbers as `numbers` has them, words
    lower-cased, stemmed, possessives dropped), each marked True when it is an anchor: a
    number, a quoted string or one of `text_names` (the text's `names`)."""
    named = {n for n in text_names if not n.startswith("“")}
    found: list[tuple[int, str, bool]] = [
        (m.start(), "“" + (m.group(1) or m.group(2)).strip().lower(), True)
        for m in _QUOTED.finditer(text)
    ]
    for m in _NUMBER.finditer(text):
        found.append((m.start(), next(iter(numbers(m.group()))), True))
    for m in _WORD.finditer(text):
        w = _base(m.group().lower()).strip("'’-")
        if w in _NUMBER_WORDS:
            found.append((m.start(), repr(float(_NUMBER_WORDS[w])), True))
        elif w and w not in STOP and w not in _QUESTION_WORDS:
            found.append((m.start(), _stem(w), w in named))
    return [(t, anchor) for _, t, anchor in sorted(found)]


def _reordered(seq_a: list[str], seq_b: list[str]) -> bool:
    """Whether the tokens each sequence holds once, and the other too, come in another order."""
    ca, cb = Counter(seq_a), Counter(seq_b)
    once = {t for t in ca if ca[t] == 1 and cb.get(t) == 1}
    return [t for t in seq_a if t in once] != [t for t in seq_b if t in once]


def reordered(a: str, b: str, names_a: set[str], names_b: set[str]) -> bool:
    """The same numbers or names (`names_a`, `names_b`: the two texts' `names`) in another
    order; or, where a word of direction is among them, the same words in another order."""
    ta, tb = _tokens(a, names_a), _tokens(b, names_b)
    if _reordered([t for t, anchor in ta if anchor], [t for t, anchor in tb if anchor]):
        return True
    directed = {w.lower() for w in _WORD.findall(a)} & {w.lower() for w in _WORD.findall(b)}
    return bool(directed & _DIRECTION) and _reordered([t for t, _ in ta], [t for t, _ in tb])


def difference(cached: str, asked: str, long_prefix_chars: int = LONG_PREFIX_CHARS) -> str | None:
    """None when `asked` may be answered with `cached`'s answer (they agree on numbers,
    operators, names, negation, code and, after a long shared prefix, on their remaining
    words); else the first reason they differ.

    Only the parts between the shared prefix and the shared suffix are compared (what the two
    share counts the same on both sides), so a long shared context costs one scan."""
    a, b = normalise(cached), normalise(asked)
    if a == b:
        return None
    shared, ma, mb = _middles(a, b)
    if numbers(ma) != numbers(mb):
        return "numbers differ"
    if operators(ma) != operators(mb):
        return "operators differ"
    if code(cached) != code(asked):
        return "code differs"
    # A name of one question must be a word of the other (where it may start a sentence).
    initial = shared == 0  # else the middles start with a shared word (names sees it)
    na, nb = names(ma, initial), names(mb, initial)
    if na != nb:
        wa, wb = _words(a), _words(b)
        if (
            not {n for n in na if not n.startswith("“")} <= wb
            or not {n for n in nb if not n.startswith("“")} <= wa
            or {n for n in na if n.startswith("“")} != {n for n in nb if n.startswith("“")}
        ):
            return "names differ"
    if negations(ma) != negations(mb):
        return "negation differs"
    if antonym(_words(ma), _words(mb)) is not None:
        return "negation differs"
    if reordered(ma, mb, na, nb):
        return "order differs"
    # The vectors mostly see a long shared part: what follows must say the same words.
    if shared >= long_prefix_chars and Counter(_content_words(ma)) != Counter(_content_words(mb)):
        return "long shared prefix, then another question"
    if swapped(ma, mb) is not None:
        return "a word swapped for another"
    return None
