"""Graders: a model's answer and a row's reference → a score in [0, 1].

A small registry, one function per metric name as the data names it (dcrouter's `metric`
field): `em_mc`, `exact_match`, `f1_score`, `GSM8K`, `MATH`, `commongen_coverage`,
`code_eval`. `grade(row, answer)` picks the grader by the row's `metric`. Rows without a
reference can be graded by a catalogue model (`judge_reference`, `judge_pairwise`); the
judge's prompts are here and in docs/profiling.md, and its cost is returned with the score.

The parsers are deliberately strict where a lenient one would reward a non-answer: a reply
that lists every option, or names one only to reject it ("not B"), scores 0.
"""

from __future__ import annotations

import ast
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from router.evaluation.code_harness import harness_program
from router.evaluation.sandbox import SandboxResult, run_python


class GradingError(ValueError):
    """A row cannot be graded (unknown metric, missing reference, code execution not allowed)."""


@dataclass
class Reference:
    """What a grader may look at besides the answer."""

    ground_truth: Any
    choices: dict[str, list[str]] | None = None  # {"label": [...], "text": [...]}
    prompt: str = ""
    task_id: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


Grader = Callable[[str, Reference], float]


# ---- multiple choice ----------------------------------------------------------------------

_NEGATION = re.compile(
    r"\b(not|isn'?t|never|except|exclude|excluding|rather than|instead of)\W*$", re.I
)


def _labels(ref: Reference) -> list[str]:
    if ref.choices and ref.choices.get("label"):
        return [str(x).strip().upper() for x in ref.choices["label"]]
    return list("ABCDE")


def _norm_words(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def extract_choice(answer: str, labels: list[str], texts: list[str] | None = None) -> str | None:
    """The one option label an answer commits to, or None (no answer, or several)."""
    a = answer.strip()
    if not a:
        return None
    label_set = "".join(re.escape(x) for x in labels if len(x) == 1)
    if not label_set:
        return None
    up = a.upper()
    # 1. The whole reply is a label: "B", "b", "(B)", "B.", "[b]".
    m = re.fullmatch(rf"[\(\[\s]*([{label_set}])[\)\]\.\:\s]*", up)
    if m:
        return m.group(1)
    # 2. An explicit statement: "the answer is (B)", "Answer: B", "correct option is b".
    # "option"/"choice" need the "is": "Option A is wrong" names an option, it does not answer.
    stated = [
        m.group(1).upper()
        for m in re.finditer(
            rf"(?:answer\s*(?:is|:|=|would be|should be)?|(?:option|choice)\s*"
            rf"(?:is|:|=|would be|should be))\s*(?:option\s*)?[\(\[]?([{label_set}])(?![A-Za-z])",
            a,
            flags=re.I,
        )
        # "the answer is a city ...": the article, not option A (nor "i" the pronoun).
        if not (m.group(1) in "ai" and re.match(r"\s+[A-Za-z]", a[m.end() :]))
    ]
    if stated and len(set(stated)) == 1:
        return stated[0]
    if len(set(stated)) > 1:
        return None
    # 3. The reply opens with a label: "B. Paris", "(C) because ...", "D: ...". Not when it
    # opens a list of options ("A. Paris\nB. London ...", "(A) Paris (B) London"): that is
    # the question restated, not option A chosen.
    m = re.match(rf"[\(\[]?([{label_set}])[\)\]\.\:](?:\s|$)", a)
    markers = set(re.findall(rf"^\s*[\(\[]?([{label_set}])[\)\]\.\:](?=\s|$)", a, re.M))
    markers |= set(re.findall(rf"\(([{label_set}])\)", a))
    if m and len(markers) < 2 and not re.match(r"[A-Z]\.\s*[A-Z]\.", a):  # not "J. R."
        return m.group(1)
    # 4. The reply names one option's text (and no other's).
    if texts:
        na = _norm_words(a)
        # A text named only to reject it ("not Paris") does not count, as for labels (step 5).
        hits = [
            lab
            for lab, t in zip(labels, texts, strict=False)
            if _norm_words(t)
            and any(
                not _NEGATION.search(na[: h.start()][-20:])
                for h in re.finditer(rf"(?<!\w){re.escape(_norm_words(t))}(?!\w)", na)
            )
        ]
        # An option whose text is part of another matched one's does not count on its own:
        # "New York City" names C, not also "New York".
        named = {h: _norm_words(texts[labels.index(h)]) for h in hits}
        hits = [h for h in hits if not any(o != h and named[h] in named[o] for o in hits)]
        if len(set(hits)) == 1:
            return hits[0]
        if len(set(hits)) > 1:
            return None
    # 5. Standalone capital labels in the text, not negated; exactly one distinct one.
    found = []
    for m in re.finditer(rf"(?<![A-Za-z'])([{label_set}])(?![A-Za-z'])", a):
        lab = m.group(1)
        after = a[m.end() : m.end() + 2]
        if lab in "AI" and re.match(r"\s[a-z]", after):  # the article "A", the pronoun "I"
            continue
        if _NEGATION.search(a[: m.start()][-20:]):
            continue
        found.append(lab)
    return found[0] if len(set(found)) == 1 else None


def em_mc(answer: str, ref: Reference) -> float:
    """Multiple choice: 1 when the answer commits to the reference label, and only to it."""
    labels = _labels(ref)
    texts = ref.choices.get("text") if ref.choices else None
    got = extract_choice(answer, labels, texts)
    return float(got is not None and got == str(ref.ground_truth).strip().upper())


# ---- short answers (SQuAD-style) -------------------------------------------------------------


_ASCII_PUNCTUATION = frozenset(string.punctuation)


def _is_punctuation(ch: str) -> bool:
    # SQuAD's ASCII set, and Unicode's too: chat models write “Paris” and ‘Paris’.
    return ch in _ASCII_PUNCTUATION or unicodedata.category(ch).startswith("P")


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles (a, an, the), single spaces (SQuAD's rule)."""
    text = text.lower()
    text = "".join(ch for ch in text if not _is_punctuation(ch))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _references(truth: Any) -> list[str]:
    if isinstance(truth, list | tuple):
        return [str(t) for t in truth if str(t).strip()]
    if isinstance(truth, str) and truth.lstrip().startswith("["):
        try:
            parsed = ast.literal_eval(truth)
            if isinstance(parsed, list) and parsed:
                return [str(t) for t in parsed]
        except (ValueError, SyntaxError):
            pass
    return [str(truth)] if truth is not None else []


def _first_line(answer: str) -> str:
    lines = [ln for ln in answer.strip().splitlines() if ln.strip()]
    return lines[0] if lines else ""


def exact_match(answer: str, ref: Reference) -> float:
    """1 when the answer's first line equals a reference after normalisation."""
    got = normalize_answer(_first_line(answer))
    return float(
        bool(got) and any(got == normalize_answer(r) for r in _references(ref.ground_truth))
    )


def _f1(pred: str, truth: str) -> float:
    p, t = normalize_answer(pred).split(), normalize_answer(truth).split()
    if not p or not t:
        return float(p == t and bool(p))
    common = Counter(p) & Counter(t)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(t)
    return 2 * precision * recall / (precision + recall)


def f1_score(answer: str, ref: Reference) -> float:
    """Token F1 of the answer's first line against the best-matching reference."""
    pred = _first_line(answer)
    return max((_f1(pred, r) for r in _references(ref.ground_truth)), default=0.0)


# ---- numbers (GSM8K) --------------------------------------------------------------------------

MAX_NUMBER_CHARS = 64  # longer digit strings are not a plausible answer (and slow to parse)
# Unicode minus signs (U+2212, and its small and full-width forms): "−3" is -3, not 3.
_MINUS = str.maketrans({"\u2212": "-", "\ufe63": "-", "\uff0d": "-"})
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def parse_number(text: str) -> Fraction | None:
    """A number written as 1,234 / $5 / 3.50 / -2 / 3/4 / 50% / 1e3, as an exact Fraction."""
    t = (
        text.translate(_MINUS)
        .strip()
        .replace("$", "")
        .replace("\\$", "")
        .replace("%", "")
        .replace("\\%", "")
    )
    t = t.replace(",", "").rstrip(".").strip()
    t = re.sub(r"^\\?\(|\\?\)$", "", t)
    if not t or len(t) > MAX_NUMBER_CHARS:
        return None
    try:
        if re.fullmatch(r"-?\d+/\d+", t):
            num, den = t.split("/")
            return Fraction(int(num), int(den)) if int(den) else None
        return Fraction(t)
    except (ValueError, ZeroDivisionError):
        try:
            return Fraction(float(t)) if re.fullmatch(r"-?[\d.]+e-?\d+", t, re.I) else None
        except (ValueError, OverflowError):
            return None


# Two numbers offered as alternatives: "18 or 19", "18, or maybe 19", "either 18 or 19".
_HEDGE = re.compile(
    rf"(?:{_NUMBER.pattern})\s*,?\s*(?:or|maybe|perhaps|possibly)\b\D{{0,20}}?(?:{_NUMBER.pattern})",
    re.I,
)


def _stated_number(span: str) -> Fraction | None:
    """The one number a statement gives ("18", "$1,000", "9 * 2 = 18"); None when it offers
    several ("18 or 19", "between 18 and 20")."""
    span = re.split(r"\n|\.(?:\s|$)", span.strip(), maxsplit=1)[0]  # its sentence
    if "=" in span:
        span = span.rsplit("=", 1)[1]  # a worked equation: the result
    values = {parse_number(n) for n in _NUMBER.findall(span)}
    values.discard(None)
    return values.pop() if len(values) == 1 else None


def final_number(text: str) -> Fraction | None:
    """The answer's final number: after '####', else after 'answer is', else the last one.
    An answer naming two candidates ("The answer is 18 or 19") has none."""
    if not text:
        return None
    text = text.translate(_MINUS)
    for marker in (r"####", r"answer is", r"answer:"):
        parts = re.split(marker, text, flags=re.I)
        if len(parts) > 1:
            if _NUMBER.search(parts[-1]):
                return _stated_number(parts[-1])
            if marker == "####":
                return None
    boxed = last_boxed(text)
    if boxed is not None:
        n = parse_number(boxed)
        if n is not None:
            return n
    last_line = [ln for ln in text.strip().splitlines() if ln.strip()][-1]
    if _HEDGE.search(last_line):
        return None
    nums = _NUMBER.findall(text)
    return parse_number(nums[-1]) if nums else None


def gsm8k(answer: str, ref: Reference) -> float:
    """GSM8K: the answer's final number equals the reference's (after '####')."""
    truth = final_number(str(ref.ground_truth))
    got = final_number(answer)
    return float(truth is not None and got is not None and got == truth)


# ---- MATH (boxed answers) ---------------------------------------------------------------------


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} or \\fbox{...}, braces balanced; None if absent or
    unbalanced."""
    found, pos = None, 0
    for m in re.finditer(r"\\(?:boxed|fbox)", text):
        if m.start() < pos:
            continue  # inside the previous box: the outer box is the answer
        rest = text[m.end() :]
        if not rest.lstrip().startswith("{"):
            bare = re.match(r"\s+([^\s${}]+)", rest)  # "\boxed 5"
            if bare:
                found, pos = bare.group(1), m.end() + bare.end()
            continue
        start = m.end() + rest.index("{")
        depth, end = 0, None
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    end = i
                    break
        if end is None:
            return None  # an unbalanced last box: no answer
        found, pos = text[start + 1 : end], end + 1
    return found


def _fix_fracs(s: str) -> str:
    # \frac12 -> \frac{1}{2}, \frac1{2} -> \frac{1}{2}, \frac{1}2 -> \frac{1}{2}
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac\{([^{}]*)\}(\d)", r"\\frac{\1}{\2}", s)
    return s


def normalize_math(s: str) -> str:
    """A MATH answer in a canonical spelling: no spaces, \\dfrac → \\frac, no \\left/\\right,
    no degrees, units or dollar signs, 0.50 → 0.5, 5.0 → 5, 'x = 3' → 3, simple a/b → \\frac."""
    s = s.translate(_MINUS).strip().replace("\n", "").replace("{,}", ",")  # 1{,}000 is 1,000
    s = s.replace("\\!", "").replace("\\,", "").replace("\\;", "").replace("\\ ", "")
    s = re.sub(r"\\(?:d|t)frac", r"\\frac", s)
    s = s.replace("\\left", "").replace("\\right", "")
    s = re.sub(r"\^\s*\{?\\circ\}?", "", s).replace("°", "")
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = re.sub(r"\\text\{\s*([^{}]*)\}", r"\1", s)
    s = re.sub(r"\\mbox\{\s*([^{}]*)\}", r"\1", s)
    s = re.sub(r"\\(?:mathrm|mathbf|textbf)\{([^{}]*)\}", r"\1", s)
    # A trailing unit word after a number: "5 cm", "12 dollars".
    s = re.sub(r"^(-?[\d.,]+)\s*[a-zA-Z ]+$", r"\1", s)
    s = s.replace(" ", "")
    s = re.sub(r"^[a-zA-Z]\w*=", "", s) if s.count("=") == 1 and len(s.split("=")[0]) <= 2 else s
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    s = _fix_fracs(s)
    if re.fullmatch(r"-?\d+/\d+", s):
        num, den = s.split("/")
        s = f"\\frac{{{num}}}{{{den}}}"
    if (
        re.fullmatch(r"-?[\d,]+(\.\d+)?", s)
        and "," in s
        and re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s)
    ):
        s = s.replace(",", "")
    if re.fullmatch(r"-?\d*\.\d+", s):
        s = s.rstrip("0").rstrip(".") or "0"
        if s.startswith("."):
            s = "0" + s
        if s.startswith("-."):
            s = "-0" + s[1:]
    s = s.rstrip(".")
    return s


def _math_value(s: str) -> Fraction | None:
    """The exact value of a normalised answer that is a plain number or \\frac{a}{b}."""
    m = re.fullmatch(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}", s)
    if m:
        num, den = int(m.group(2)), int(m.group(3))
        return Fraction(num, den) * (-1 if m.group(1) else 1) if den else None
    return parse_number(s) if re.fullmatch(r"-?\d+(\.\d+)?", s) else None


def math_answer(text: str) -> str | None:
    """A model's MATH answer: the last \\boxed{}, else what follows 'answer is' or 'answer:',
    else None."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    # The statement ends at a full stop followed by a space or the line's end, so the point in
    # "3.5" does not end it.
    m = re.findall(
        r"answer(?: is|:)[:\s*]*(?:\\?\$)?([^\n$]+?)\**\$?\**\s*(?:\.(?=\s|$)|$)",
        text,
        flags=re.I | re.M,
    )
    return m[-1] if m else None


def math_equiv(answer: str, ref: Reference) -> float:
    """MATH: the answer's boxed expression equals the reference's, after normalisation (and by
    value, when both are numbers or simple fractions)."""
    truth_raw = str(ref.ground_truth)
    truth = last_boxed(truth_raw)
    if truth is None:
        truth = truth_raw  # agentverse-mgsm gives the bare answer
    got = math_answer(answer)
    if got is None:
        return 0.0
    a, b = normalize_math(got), normalize_math(truth)
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    va, vb = _math_value(a), _math_value(b)
    return float(va is not None and vb is not None and va == vb)


# ---- CommonGen -----------------------------------------------------------------------------


def inflections(word: str) -> set[str]:
    """A word and its regular inflections: -s, -ed, -ing, by the spelling rules (drive: drives,
    driving; stop: stopped; fry: fries). A superset, never a stem: "care" is no form of "car"."""
    w = word.lower()
    forms = {w, w + "s"}
    if w.endswith("ie"):  # tie: tied, tying
        forms |= {w + "d", w[:-2] + "ying"}
    elif w.endswith("e"):  # drive: driving; but dye: dyeing (dying is die's), see: seeing
        forms.add(w + "ing" if w[-2:-1] in "aeiouy" else w[:-1] + "ing")
        if not re.fullmatch(r"[^aeiou]*ee", w):  # agreed; but "seed" is no past of "see"
            forms.add(w + "d")
        if w.endswith("fe"):  # knife: knives
            forms.add(w[:-2] + "ves")
    elif len(w) > 1 and w.endswith("y") and w[-2] not in "aeiou":  # fry: fries, fried
        forms |= {w[:-1] + "ies", w[:-1] + "ied", w + "ing"}
    else:
        if re.search(r"(?:s|x|z|ch|sh|o)$", w):  # dish: dishes
            forms.add(w + "es")
        if re.search(r"(?:l|a)f$", w):  # leaf: leaves, wolf: wolves
            forms.add(w[:-1] + "ves")
        doubled = {w + w[-1] + "ed", w + w[-1] + "ing"}
        plain = {w + "ed", w + "ing"}
        if re.search(r"(?:^|[^aeiou])[aeiou][^aeiouwxy]$", w):
            # Consonant-vowel-consonant: one syllable doubles (stop: stopped; hoping is hope's),
            # longer words may or may not (visited, beginning).
            forms |= doubled if len(re.findall(r"[aeiou]+", w)) == 1 else doubled | plain
        else:
            forms |= plain
    return forms


def commongen_coverage(answer: str, ref: Reference) -> float:
    """CommonGen: the share of the concepts (comma-separated reference) that the answer uses,
    in any regular inflection (drive / drives / driving; use / used; fry / fries)."""
    concepts = [c.strip().lower() for c in str(ref.ground_truth).split(",") if c.strip()]
    if not concepts:
        raise GradingError("commongen_coverage: the reference lists no concepts")
    words = {w.lower() for w in re.findall(r"[a-zA-Z]+", answer)}

    def used(concept: str) -> bool:
        return not inflections(concept).isdisjoint(words)

    hit = sum(1 for c in concepts if all(used(w) for w in c.split()))
    return hit / len(concepts)


# ---- code ---------------------------------------------------------------------------------


def extract_code(answer: str) -> str:
    """The Python in an answer: its fenced blocks (```python ...```), else the whole text."""
    blocks = re.findall(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|$)", answer, flags=re.S)
    blocks = [b for b in blocks if b.strip()]
    if blocks:
        with_def = [b for b in blocks if re.search(r"^\s*def ", b, flags=re.M)]
        return "\n\n".join(with_def or blocks)
    return answer


def entry_point(prompt: str) -> str | None:
    """HumanEval: the function to implement is the last one the prompt defines."""
    names = re.findall(r"^def\s+([A-Za-z_]\w*)\s*\(", prompt, flags=re.M)
    return names[-1] if names else None


def code_program(answer: str, ref: Reference) -> str:
    """The program to run: the generated code, then the dataset's tests, in the harness of
    `code_harness.py` (the tests in a namespace of their own, comparing plain data only).

    HumanEval (a `check(candidate)` reference): the prompt's imports and helpers come first;
    when the answer only continues the function body, the prompt's signature is kept. The
    tests take the prompt's helpers (`poly`) from the prompt, not from the answer.
    MBPP (a list of asserts): the code, then every assert.
    """
    code = extract_code(answer)
    truth = ref.ground_truth
    tests = _references(truth) if not (isinstance(truth, str) and "def check" in truth) else None
    if tests is not None:
        return harness_program(code, "\n".join(tests) + "\n")
    name = entry_point(ref.prompt)
    if name is None:
        raise GradingError("code_eval: no function to check in the prompt")
    head = ref.prompt[: re.search(rf"^def\s+{re.escape(name)}\s*\(", ref.prompt, re.M).start()]
    if re.search(rf"^\s*def\s+{re.escape(name)}\s*\(", code, flags=re.M):
        program = head + "\n" + code
    else:
        program = ref.prompt + code
    tests = str(truth) + f"\n\ncheck({name})\n"
    return harness_program(program, tests, entry=name, prompt=head if head.strip() else None)


@dataclass
class CodeGrader:
    """`code_eval`, with its sandbox settings; refuses unless code execution is allowed."""

    allow_exec: bool = False
    timeout: float = 10.0
    memory_mb: int = 512
    last: SandboxResult | None = None

    def __call__(self, answer: str, ref: Reference) -> float:
        if not self.allow_exec:
            raise GradingError("code_eval runs generated code: allow it with --allow-code-exec")
        if not answer.strip():
            return 0.0
        # `passed` is the sandbox's own verdict: exit status 0 *and* the program ran to its
        # end, signalled on a pipe the program cannot forge (sandbox.py). Nothing it prints
        # counts, so an early `os._exit(0)` after printing anything does not pass.
        self.last = run_python(
            code_program(answer, ref), timeout=self.timeout, memory_mb=self.memory_mb
        )
        return float(self.last.passed)


def code_eval(answer: str, ref: Reference, allow_exec: bool = False) -> float:
    return CodeGrader(allow_exec=allow_exec)(answer, ref)


# ---- registry -----------------------------------------------------------------------------

GRADERS: dict[str, Grader] = {
    "em_mc": em_mc,
    "exact_match": exact_match,
    "f1_score": f1_score,
    "GSM8K": gsm8k,
    "MATH": math_equiv,
    "commongen_coverage": commongen_coverage,
    "code_eval": code_eval,
}


def reference_of(row: dict[str, Any], prompt: str = "") -> Reference:
    """The grading reference of a routing-data row (its `ground_truth`, `choices`, ...)."""
    return Reference(
        ground_truth=row.get("ground_truth"),
        choices=row.get("choices"),
        prompt=prompt,
        task_id=row.get("task_id"),
        extra=row,
    )


def grader_for(metric: str, allow_code_exec: bool = False) -> Grader:
    """The grader of a metric name; code_eval with the sandbox when allowed."""
    if metric == "code_eval":
        return CodeGrader(allow_exec=allow_code_exec)
    try:
        return GRADERS[metric]
    except KeyError:
        raise GradingError(f"unknown metric {metric!r}; known: {sorted(GRADERS)}") from None


def grade(
    row: dict[str, Any], answer: str, prompt: str = "", allow_code_exec: bool = False
) -> float:
    """Score `answer` for a row that carries `metric` and `ground_truth`."""
    metric = row.get("metric")
    if not metric:
        raise GradingError("the row has no 'metric' to grade with")
    if row.get("ground_truth") is None:
        raise GradingError("the row has no 'ground_truth' to grade against")
    score = grader_for(metric, allow_code_exec)(answer or "", reference_of(row, prompt))
    return min(1.0, max(0.0, float(score)))


# ---- LLM judge ------------------------------------------------------------------------------

JUDGE_REFERENCE_PROMPT = """\
You are grading an AI assistant's answer to a user's question against a reference answer.
Judge correctness first (does it reach the same result as the reference?), then helpfulness.
Ignore length and style. Reply with a one-sentence reason, then the rating on its own line as
"Rating: [[N]]" with N an integer from 1 (wrong or no answer) to 10 (correct and complete).

[Question]
{question}

[Reference answer]
{reference}

[Assistant's answer]
{answer}"""

JUDGE_PAIRWISE_PROMPT = """\
You are comparing two AI assistants' answers to a user's question. Judge which answer is more
correct and helpful. Do not let the order of the answers, their length or the assistants'
names influence you. Reply with a one-sentence reason, then the verdict on its own line:
"[[A]]" if answer A is better, "[[B]]" if answer B is better, "[[C]]" for a tie.

[Question]
{question}

[Answer A]
{a}

[Answer B]
{b}"""

# A judge call: messages in, (reply text, USD cost of the call) out.
JudgeCall = Callable[[list[dict[str, str]]], tuple[str, float]]


@dataclass
class Judgement:
    score: float | None  # None: the judge gave no parsable verdict
    cost: float  # USD spent on the judge's calls
    replies: list[str]


def parse_rating(reply: str) -> float | None:
    """'Rating: [[7]]' → (7 − 1) / 9; None when there is no single rating in 1..10."""
    found = re.findall(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]", reply)
    if len(set(found)) != 1:
        return None
    v = float(found[0])
    return (v - 1) / 9 if 1 <= v <= 10 else None


def parse_verdict(reply: str) -> str | None:
    found = set(re.findall(r"\[\[\s*([ABC])\s*\]\]", reply))
    return found.pop() if len(found) == 1 else None


def judge_reference(question: str, answer: str, reference: str, call: JudgeCall) -> Judgement:
    """A catalogue model rates `answer` against `reference` (1-10, mapped to [0, 1])."""
    prompt = JUDGE_REFERENCE_PROMPT.format(question=question, reference=reference, answer=answer)
    reply, cost = call([{"role": "user", "content": prompt}])
    return Judgement(parse_rating(reply), cost, [reply])


def judge_pairwise(question: str, answer: str, large_answer: str, call: JudgeCall) -> Judgement:
    """A catalogue model compares `answer` with the large model's, in both orders (a judge
    favours a position); the score is the share of wins, ties counting half: 0.5 means as
    good as the large model."""
    points, replies, cost = [], [], 0.0
    for a, b, ours in ((answer, large_answer, "A"), (large_answer, answer, "B")):
        reply, c = call(
            [{"role": "user", "content": JUDGE_PAIRWISE_PROMPT.format(question=question, a=a, b=b)}]
        )
        cost += c
        replies.append(reply)
        v = parse_verdict(reply)
        if v is not None:
            points.append(0.5 if v == "C" else float(v == ours))
    score = sum(points) / len(points) if points else None
    return Judgement(score, cost, replies)
