"""The answer checks of the verifier: what an answer shows about itself, as numbers.

Each check is a small named function of one `AnswerCase` (prompt, answer, logprobs, finish
reason) in `CHECKS`: arithmetic that does not hold, an empty, refusing or truncated answer, its
length, hedges, self-corrections, a final answer that is missing where the prompt asks for one,
or that contradicts the work. Token logprobs, where the model returned them, add their mean,
minimum, first-token margin and share of unlikely tokens. `dense_features` stacks them all; the
verifier (router/core/verifier.py) learns how much each one says.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class AnswerCase:
    """One answer to judge.

    `logprobs`: the answer's tokens as the model returned them, in any of the shapes
    `token_logprobs` reads. `partial`: only a prefix of the answer (a streaming buffer), so the
    checks that need the whole answer (truncated, final answer missing) stay silent.
    """

    prompt: str
    answer: str
    logprobs: Any = None
    finish_reason: str | None = None
    partial: bool = False


# ---- arithmetic --------------------------------------------------------------------------------

_OPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def safe_eval(expr: str) -> float | None:
    """The value of a plain arithmetic expression (numbers, + - * / // % **, parentheses),
    or None for anything else. Nothing is executed: the expression is walked as a syntax tree."""
    text = expr.replace(",", "").replace("$", "").replace("^", "**").strip()
    text = re.sub(r"(?<=[\d)])\s*[x×]\s*(?=[\d(])", "*", text)
    text = text.replace("÷", "/").replace("−", "-")
    text = re.sub(r"(\d+(?:\.\d+)?)\s*%", r"(\1/100)", text)
    if not text or len(text) > 200 or not re.fullmatch(r"[\d\s.+\-*/()%]+", text):
        return None
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            v = walk(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and (abs(right) > 12 or abs(left) > 1e6):
                raise ValueError("exponent too large")
            return _OPS[type(node.op)](left, right)
        raise ValueError("not arithmetic")

    try:
        value = walk(tree)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def _decimals(text: str) -> int:
    m = re.search(r"\.(\d+)\s*$", text.replace(",", "").strip().rstrip("%"))
    return len(m.group(1)) if m else 0


def equation_holds(left: str, right: str) -> bool | None:
    """Does `left = right` hold (None: one side is not arithmetic)? A result rounded to the
    decimals it shows holds ("10/3 = 3.33"), as does one within 0.5% (rounded money); a whole
    number must be exact ("5/2 = 3" does not hold)."""
    lv, rv = safe_eval(left), safe_eval(right)
    if lv is None or rv is None:
        return None
    d = _decimals(right)
    tol = max(0.5 * 10**-d if d else 0.0, 0.005 * abs(lv), 1e-9)
    if "%" in right and "%" not in left:
        # "0.25 = 25%" reads the percent sign as a unit.
        return abs(lv - rv) <= tol or abs(lv - rv * 100) <= max(tol, 0.005 * abs(lv))
    return abs(lv - rv) <= tol


_ANNOTATION = re.compile(r"<<([^<>=]+)=([^<>=]+)>>")
_NUM = r"\$?\d[\d,]*(?:\.\d+)?%?"
_OP = r"\s*(?:[-+*/×÷x^]|\*\*)\s*"
_EXPR = rf"\(?\s*{_NUM}\s*\)?(?:{_OP}\(?\s*{_NUM}\s*\)?)*"
# "a op b = r", where r may itself be an expression, and chains "a op b = c = d".
_PLAIN = re.compile(rf"(?<![\w.<=:/-])({_EXPR}(?:\s*=\s*{_EXPR})+)")


def arithmetic_claims(answer: str) -> list[tuple[str, str]]:
    """Every `left = right` the answer asserts: `<<a*b=c>>` annotations (GSM8K style) and plain
    "a op b = c" in the text (annotations are removed first so nothing is counted twice)."""
    claims = [(m.group(1), m.group(2)) for m in _ANNOTATION.finditer(answer)]
    annotated = {_plain_form(lhs) for lhs, _ in claims}
    plain = _ANNOTATION.sub(" ", answer)
    for m in _PLAIN.finditer(plain):
        sides = [s.strip() for s in m.group(1).split("=")]
        if not any(re.search(r"\d\s*(?:[-+*/×÷x^])\s*[\d($]", s) for s in sides):
            continue  # "x = 5", "2019-2020": no calculation
        for lhs, rhs in zip(sides, sides[1:], strict=False):
            if _plain_form(lhs) not in annotated:  # "a = <<a=b>>b" says it once
                claims.append((lhs, rhs))
    return claims


def _plain_form(expr: str) -> str:
    return re.sub(r"[\s$,]", "", expr).replace("x", "*").replace("×", "*")


def arithmetic_errors(case: AnswerCase) -> float:
    """How many of the answer's arithmetic claims do not hold (capped at 3)."""
    bad = sum(equation_holds(lhs, rhs) is False for lhs, rhs in arithmetic_claims(case.answer))
    return float(min(bad, 3))


def arithmetic_shown(case: AnswerCase) -> float:
    """log(1 + the number of arithmetic claims the answer makes): it shows its work."""
    return math.log1p(len(arithmetic_claims(case.answer)))


# ---- the answer's shape ----------------------------------------------------------------------

_REFUSAL = re.compile(
    r"\b(i\s*(?:'m| am)\s*(?:sorry|unable|not able)|i\s*(?:can(?:'|no)t|cannot|won't)\s+"
    r"(?:help|assist|answer|provide|do that|comply)|as an ai\b|i do not have (?:access|the ability))",
    re.IGNORECASE,
)
_HEDGES = re.compile(
    r"\b(however|but|can't|cannot|not sure|unsure|unclear|approximately|roughly|assum(?:e|ing)|"
    r"it depends|might|may be|possibly|probably|i think|i believe|seems?)\b",
    re.IGNORECASE,
)
_SELF_CORRECTION = re.compile(
    r"\b(wait|actually|oops|i made (?:a|an) (?:mistake|error)|let me (?:re|try again|correct)|"
    r"correction|mistake in)\b",
    re.IGNORECASE,
)


def empty_answer(case: AnswerCase) -> float:
    """1 when the answer has no visible text."""
    return float(not case.answer.strip())


def refusal(case: AnswerCase) -> float:
    """1 when the answer declines ("I'm sorry, but I can't help with that")."""
    return float(bool(_REFUSAL.search(case.answer[:400])))


def truncated(case: AnswerCase) -> float:
    """1 when the answer was cut off: the model stopped on its token limit, or a code block was
    left open. A partial answer (streaming buffer) is not judged on this."""
    if case.partial:
        return 0.0
    if case.finish_reason == "length":
        return 1.0
    return float(case.answer.count("```") % 2 == 1)


def answer_length(case: AnswerCase) -> float:
    """log(1 + words): very short or very long answers are often wrong."""
    return math.log1p(len(case.answer.split()))


def hedges(case: AnswerCase) -> float:
    """Hedging words per 100 words ("however", "can't", "approximately", "I think" ...)."""
    words = max(1, len(case.answer.split()))
    return min(10.0, 100.0 * len(_HEDGES.findall(case.answer)) / words)


def self_corrections(case: AnswerCase) -> float:
    """How often the answer corrects itself ("wait", "actually", "I made a mistake"), capped."""
    return float(min(3, len(_SELF_CORRECTION.findall(case.answer))))


_ASKS_NUMBER = re.compile(
    r"\b(how (?:many|much|long|far|old|fast)|what (?:is|was) the (?:total|number|sum|"
    r"difference|product|average|cost|price|value|amount)|calculate|compute|how many)\b",
    re.IGNORECASE,
)
_ASKS_CHOICE = re.compile(r"(?m)^\s*\(?[A-D][).:]\s+\S")
_ASKS_MARKER = re.compile(r"(####|\\boxed|final answer)", re.IGNORECASE)
_FINAL_NUMBER = re.compile(
    r"(?:####\s*|\\boxed\{\s*|answer(?: is|:)\s*\**\s*)(-?\$?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def final_answer_missing(case: AnswerCase) -> float:
    """1 when the prompt asks for a final answer (a number, a lettered choice, or a marker such
    as "####" / \\boxed / "final answer") and the end of the answer does not give one."""
    if case.partial:
        return 0.0
    tail = case.answer[-300:]
    marker = _ASKS_MARKER.search(case.prompt)
    if marker:
        wanted = marker.group(1).lower()
        return float(wanted not in case.answer.lower() and not _FINAL_NUMBER.search(tail))
    if _ASKS_CHOICE.search(case.prompt):
        return float(not re.search(r"\b[A-D]\b", tail))
    if _ASKS_NUMBER.search(case.prompt):
        return float(not _NUMBER.search(tail))
    return 0.0


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("$", ""))
    except ValueError:
        return None


def final_answer_inconsistent(case: AnswerCase) -> float:
    """1 when the answer declares a final number ("#### 3", "the answer is 3") that none of its
    own calculations produced, although it calculated (it gave up on its work, or rounded it
    away)."""
    found = list(_FINAL_NUMBER.finditer(case.answer))
    if not found:
        return 0.0
    m = found[-1]
    final = _number(m.group(1))
    claims = arithmetic_claims(case.answer[: m.start()])
    if final is None or not claims:
        return 0.0
    seen = [v for _, rhs in claims if (v := safe_eval(rhs)) is not None]
    return float(not any(abs(v - final) <= max(1e-6, 1e-6 * abs(final)) for v in seen))


# The answer checks, by name: each a small function of one case (feature order is this order).
CHECKS: dict[str, Callable[[AnswerCase], float]] = {
    "arithmetic_errors": arithmetic_errors,
    "arithmetic_shown": arithmetic_shown,
    "empty_answer": empty_answer,
    "refusal": refusal,
    "truncated": truncated,
    "answer_length": answer_length,
    "hedges": hedges,
    "self_corrections": self_corrections,
    "final_answer_missing": final_answer_missing,
    "final_answer_inconsistent": final_answer_inconsistent,
}


# ---- token logprobs ----------------------------------------------------------------------------


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def token_logprobs(raw: Any) -> tuple[list[float], float | None]:
    """(each token's logprob, the first token's margin over its runner-up or None).

    Reads a list of floats; `router profile`'s rows [{token, logprob, top: {token: logprob}}];
    OpenAI's `choice.logprobs` ({"content": [{token, logprob, top_logprobs: [...]}]}, a dict or
    the client's objects)."""
    if raw is None:
        return [], None
    content = _get(raw, "content") if not isinstance(raw, list) else raw
    if not content:
        return [], None
    values: list[float] = []
    margin = None
    for i, t in enumerate(content):
        if isinstance(t, int | float):
            values.append(float(t))
            continue
        lp = _get(t, "logprob")
        if lp is None:
            continue
        values.append(float(lp))
        if i == 0:
            top = _get(t, "top")
            if isinstance(top, dict):
                alts = sorted((float(v) for v in top.values()), reverse=True)
            else:
                alts = sorted(
                    (float(_get(x, "logprob")) for x in _get(t, "top_logprobs") or []), reverse=True
                )
            if len(alts) >= 2:
                margin = alts[0] - alts[1]
    return values, margin


LOGPROB_FEATURES = ("lp_present", "lp_mean", "lp_min", "lp_first_margin", "lp_low_share")


def logprob_features(case: AnswerCase) -> list[float]:
    """[present, mean, minimum, first-token margin, share of tokens below p=0.5]; zeros (with
    present 0) when the model returned none."""
    values, margin = token_logprobs(case.logprobs)
    if not values:
        return [0.0] * len(LOGPROB_FEATURES)
    v = np.maximum(np.array(values), -30.0)
    return [
        1.0,
        float(v.mean()),
        float(v.min()),
        float(min(margin, 30.0)) if margin is not None else 0.0,
        float((v < math.log(0.5)).mean()),
    ]


FEATURE_NAMES = tuple(CHECKS) + LOGPROB_FEATURES


def dense_features(cases: Sequence[AnswerCase]) -> np.ndarray:
    """(n, len(FEATURE_NAMES)): every answer check, then the logprob features."""
    return np.array(
        [[fn(c) for fn in CHECKS.values()] + logprob_features(c) for c in cases], dtype=np.float64
    ).reshape(len(cases), len(FEATURE_NAMES))
