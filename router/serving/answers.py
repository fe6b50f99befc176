"""What a cascade reads of an answer, and the LLM verifier's prompt and verdict
(router/serving/cascade.py uses both; docs/cascades.md quotes the prompt)."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from router.core.request import Message

# ---- reading answers ----------------------------------------------------------------------------


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


@dataclass
class HeldAnswer:
    """The cheap model's answer as far as it was read: text, tool calls, finish, usage."""

    text: str = ""
    tool_calls: bool = False
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None
    logprobs: list[Any] | None = None
    chunks: int = 0  # content-bearing chunks (≈ tokens) of a stream

    def add_response(self, resp: Any) -> HeldAnswer:
        choice = (_get(resp, "choices") or [None])[0]
        msg = _get(choice, "message") if choice is not None else None
        self.text = (_get(msg, "content") if msg is not None else None) or ""
        self.tool_calls = bool(msg is not None and _get(msg, "tool_calls"))
        self.finish_reason = _get(choice, "finish_reason") if choice is not None else None
        lp = _get(choice, "logprobs") if choice is not None else None
        content = _get(lp, "content") if lp is not None else None
        self.logprobs = list(content) if content else None
        self._usage(resp)
        return self

    def add_chunk(self, chunk: Any) -> None:
        self._usage(chunk)
        for choice in _get(chunk, "choices") or []:
            delta = _get(choice, "delta")
            if delta is not None:
                text = _get(delta, "content")
                if text:
                    self.text += text
                    self.chunks += 1
                if _get(delta, "tool_calls") or _get(delta, "function_call"):
                    self.tool_calls = True
                    self.chunks += 1
            if _get(choice, "finish_reason"):
                self.finish_reason = _get(choice, "finish_reason")
            lp = _get(choice, "logprobs")
            content = _get(lp, "content") if lp is not None else None
            if content:
                self.logprobs = (self.logprobs or []) + list(content)

    def _usage(self, obj: Any) -> None:
        u = _get(obj, "usage")
        if u is not None and _get(u, "completion_tokens") is not None:
            self.usage = (int(_get(u, "prompt_tokens") or 0), int(_get(u, "completion_tokens")))


def _json_mode(params: dict[str, Any]) -> bool:
    rf = params.get("response_format")
    return isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema")


def _parses_as_json(text: str) -> bool:
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.DOTALL)
    try:
        json.loads(fenced.group(1) if fenced else body)
    except ValueError:
        return False
    return True


# ---- a declared non-answer ---------------------------------------------------------------------

_ABOUT = r"(?:(?:that|this|it)(?: question)?|(?:the|your) question)"
# What an answer that declines says: "I don't know", "I'm not sure", "I cannot answer that",
# "I don't have enough information (to answer that)", and the plainest French, Spanish and
# German forms. Matched against a whole clause, never found inside one.
_DECLINES = re.compile(
    rf"i (?:do not|don't|dont) know(?: (?:the answer(?: to {_ABOUT})?|about {_ABOUT}|{_ABOUT}))?"
    r"|i have no idea"
    rf"|i(?:'?m| am) not (?:sure|certain)(?: (?:about|of) {_ABOUT})?"
    rf"|i(?: cannot| can't| can not|(?:'?m| am) (?:unable|not able) to) (?:answer|say|tell)"
    rf"(?: {_ABOUT})?"
    r"|i (?:do not|don't) have enough (?:information|context|data|details)"
    rf"(?: to (?:answer|say|tell)(?: {_ABOUT})?)?"
    r"|je ne sais pas|je n'en sais rien|je ne suis pas (?:s[uû]re?|certaine?)"
    r"|no (?:lo )?s[eé]|no estoy segur[oa]"
    r"|ich wei(?:ß|ss) (?:es )?nicht|ich bin (?:mir )?nicht sicher"
)
_APOLOGY = re.compile(r"(?:i'?m |i am )?sorry|unfortunately|apologies|désolée?|lo siento|leider")
_CLAUSE_END = re.compile(r"[.!?…,;:]+")


def declares_no_answer(text: str) -> bool:
    """Is the whole answer a statement that it has none ("I don't know.", "Sorry, I'm not
    sure.")? Every clause must decline or apologise: "I'm not sure whether it rains, but take
    an umbrella" goes on to answer, and is left to the verifier."""
    if len(text) > 300:
        return False
    norm = unicodedata.normalize("NFC", text).lower().replace("\u2019", "'")
    norm = re.sub(r"[*_\"\u201c\u201d]", "", norm)  # emphasis and quotes around it
    clauses = [" ".join(c.split()) for c in _CLAUSE_END.split(norm)]
    clauses = [c for c in clauses if c]
    if not all(_DECLINES.fullmatch(c) or _APOLOGY.fullmatch(c) for c in clauses):
        return False
    return any(_DECLINES.fullmatch(c) for c in clauses)


# ---- the LLM verifier (AutoMix-style self/peer verification) ------------------------------

JUDGE_PROMPT = """You check another assistant's answer.

Question:
{question}

Answer:
{answer}

Is the answer correct and complete? Reply with one word: Yes or No."""


# One word is enough; the first token's logprobs give P(Yes) where the judge returns them.
JUDGE_PARAMS = {"max_tokens": 2, "logprobs": True, "top_logprobs": 5}


def judge_messages(question: str, answer: str) -> list[Message]:
    """The LLM verifier's prompt (docs/cascades.md quotes it)."""
    return [
        {
            "role": "user",
            "content": JUDGE_PROMPT.format(question=question[-6000:], answer=answer[-6000:]),
        }
    ]


def judge_probability(resp: Any) -> float | None:
    """P(right) from the judge's reply: from the first token's logprobs over Yes/No when it
    returned them, else 1.0 for "yes" and 0.0 for "no"; None when it said neither."""
    held = HeldAnswer().add_response(resp)
    first = (held.logprobs or [None])[0]
    if first is not None:
        top = _get(first, "top_logprobs") or []
        p = {"yes": 0.0, "no": 0.0}
        for alt in top:
            tok = str(_get(alt, "token") or "").strip().lower()
            if tok in p:
                p[tok] += math.exp(float(_get(alt, "logprob")))
        if p["yes"] + p["no"] > 0:
            return p["yes"] / (p["yes"] + p["no"])
    word = re.match(r"\W*(\w+)", held.text or "")
    if word is None:
        return None
    w = word.group(1).lower()
    return 1.0 if w == "yes" else 0.0 if w == "no" else None
