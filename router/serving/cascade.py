"""Cascade serving: the cheap model answers, the answer is judged, the large model answers
instead when it looks wrong (docs/cascades.md).

Whether a request is cascaded is the policy's decision (`policy.cascade_decision`, pure); this
module acts on it. The flow is written once, as a generator that yields what it needs done
(`Chain`: run the fallback chain for a model; `Pull`: the next chunk of a held stream;
`Close`; `Judge`: ask the LLM verifier) and is sent the outcome. `Router.chat` drives it with
blocking calls and `Router.achat` with awaited ones, so the two can never drift.

Rules (the same for the SDK and the proxy, which only forwards):
- non-streaming: the cheap answer is held until judged, then returned or replaced;
- streaming: up to `buffer_tokens` chunks are held (the whole answer when `max_tokens` is at
  most that, or for a tool-call or JSON-mode request); the verdict comes before the first
  chunk is handed on, and after that the model never changes;
- a tool-call answer is accepted unjudged (`tool_calls: accept`) or escalated;
- in JSON mode an answer that does not parse is escalated (`invalid_json: escalate`);
- when the escalation itself fails, the held cheap answer is returned (it is still an answer).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace
from typing import Any

from router.core.config import Cascade, ModelSpec
from router.core.policy import CompiledPolicy, Decision
from router.core.request import Message, request_facts
from router.core.verifier import AnswerCase, AnswerVerifier, load_verifier
from router.serving.calls import ModelCalls
from router.serving.providers import load_litellm

# ---- what the flow asks its driver to do ----------------------------------------------------


@dataclass(frozen=True)
class Chain:
    """Run the fallback chain for `decision` with `params`; stream or not as the request.
    Sends back (result, decision), or raises the chain's UpstreamError into the flow."""

    decision: Decision
    params: dict[str, Any]


@dataclass(frozen=True)
class Pull:
    """The next chunk of `stream`; sends back the chunk, or `END` when it is exhausted."""

    stream: Any


@dataclass(frozen=True)
class Close:
    """Close `stream` (a discarded cheap answer): nothing more is read from it."""

    stream: Any


@dataclass(frozen=True)
class Judge:
    """Ask the LLM verifier: call `decision.model` (no streaming) with `messages`."""

    decision: Decision
    messages: list[Message]


END = object()


def is_judged(decision: Decision) -> bool:
    """Does this decision send the request through the cascade (cheap answer, then verdict)?"""
    return decision.cascade is not None and decision.cascade.get("mode") == "judged"


@functools.cache
def verifier_at(spec: str) -> AnswerVerifier:
    """The verifier of a policy's `cascade.verifier` ("default" or a resolved directory),
    loaded once per process."""
    return load_verifier(spec)


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
        import math

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


# ---- the flow -------------------------------------------------------------------------------


@dataclass
class Verdict:
    accepted: bool
    probability: float | None
    why: str
    judge_cost: float = 0.0


def _cost(spec: ModelSpec, usage: tuple[int, int] | None, prompt_tokens: int, text: str) -> float:
    """USD of one call: reported usage, else the prompt estimate and ~4 characters a token."""
    if usage is not None:
        return spec.cost(*usage)
    return spec.cost(prompt_tokens, max(1, len(text) // 4) if text else 0)


def _with_judge(decision: Decision, spec: Cascade) -> Decision:
    return replace(
        decision,
        model=spec.judge,
        fallbacks=[],
        attempts=[],
        cascade=None,
        reason=f"cascade verifier {spec.judge}",
    )


def flow(
    calls: ModelCalls,
    compiled: CompiledPolicy,
    decision: Decision,
    messages: list[Message],
    params: dict[str, Any],
    routing_text: str,
) -> Generator[Any, Any, tuple[Any, Decision, list | None]]:
    """The cascade for one request whose decision is in mode "judged". Returns (result,
    decision, held): for a stream, `result` is the open stream and `held` the chunks already
    read from it, which come first; otherwise `result` is the response and `held` None."""
    spec: Cascade = compiled.policy.cascade
    info = dict(decision.cascade or {})
    stream = bool(params.get("stream"))
    facts = request_facts(messages, params, calls.config.expected_output_tokens)
    first_spec = calls.config.model(decision.model)
    large_name = info.get("large") or compiled.reference_large.name

    first_params = dict(params)
    added_logprobs = spec.logprobs and not params.get("logprobs")
    if added_logprobs:
        first_params.update(logprobs=True, top_logprobs=2)
    result, d1 = yield Chain(decision, first_params)
    if d1.model != decision.model:
        # The first model failed and the chain moved on: that answer is not judged.
        info.update(escalated=d1.tier == "large", note=f"{decision.model} failed; no verdict")
        d1.cascade = info
        return (result[0], d1, [result[1]]) if stream else (result, d1, None)

    # Read what is held: the whole response, or a stream up to the buffer.
    held = HeldAnswer()
    chunks: list[Any] | None = None
    finished = True
    if stream:
        it, first_chunk = result
        chunks = [first_chunk]
        held.add_chunk(first_chunk)
        max_out = params.get("max_completion_tokens") or params.get("max_tokens")
        hold_all = (
            bool(params.get("tools") or params.get("functions"))
            or _json_mode(params)
            or (max_out is not None and int(max_out) <= spec.buffer_tokens)
        )
        finished = False
        while hold_all or held.chunks < spec.buffer_tokens:
            chunk = yield Pull(it)
            if chunk is END:
                finished = True
                break
            chunks.append(chunk)
            held.add_chunk(chunk)
        result = it
    else:
        held.add_response(result)
    cheap_cost = _cost(first_spec, held.usage, facts.prompt_tokens, held.text)
    tokens = held.usage[1] if held.usage is not None else held.chunks or len(held.text) // 4

    # The verdict.
    if held.tool_calls:
        ok = spec.tool_calls == "accept"
        verdict = Verdict(ok, None, "tool call " + ("accepted unjudged" if ok else "escalated"))
    elif _json_mode(params) and finished and not _parses_as_json(held.text):
        ok = spec.invalid_json == "accept"
        verdict = Verdict(ok, 0.0, "answer is not valid JSON")
    elif spec.verifier == "llm":
        judge_d = _with_judge(decision, spec)
        try:
            resp, judge_d = yield Judge(judge_d, judge_messages(routing_text, held.text))
        except Exception as e:  # noqa: BLE001 - a failed judge must not fail the request
            verdict = Verdict(False, None, f"LLM verifier failed ({type(e).__name__}): escalated")
        else:
            p = judge_probability(resp)
            jh = HeldAnswer().add_response(resp)
            asked = sum(len(m["content"]) for m in judge_messages(routing_text, held.text)) // 4
            jcost = _cost(calls.config.model(judge_d.model), jh.usage, asked, jh.text)
            verdict = Verdict(
                p is not None and p >= spec.threshold,
                p,
                f"LLM verifier {judge_d.model}",
                jcost,
            )
    else:
        case = AnswerCase(
            prompt=routing_text,
            answer=held.text,
            logprobs=held.logprobs,
            finish_reason=held.finish_reason,
            partial=not finished,
        )
        # The answer weighed against the router's own estimate, which falls back towards
        # the prompt side when the answer looks unlike the verifier's training answers.
        reading = verifier_at(spec.verifier).verdicts([case], [info.get("prompt_probability")])
        weighed = reading.one()
        p = weighed.pop("probability")
        weighed.pop("prompt_probability")  # already in the receipt, as the decision made it
        info.update(weighed)
        verdict = Verdict(p >= spec.threshold, p, "verifier" + ("" if finished else " (prefix)"))

    info.update(
        probability=None if verdict.probability is None else round(verdict.probability, 4),
        escalated=not verdict.accepted,
        verdict=verdict.why,
        judged_tokens=tokens,
        whole_answer=finished,
        cheap_cost=round(cheap_cost, 10),
        judge_cost=round(verdict.judge_cost, 10) if verdict.judge_cost else None,
        cheap_tokens_wasted=0,
    )
    if added_logprobs:
        _strip_logprobs([result] if not stream else chunks)

    if verdict.accepted:
        d1.cascade = info
        return result, d1, chunks

    # Escalate: nothing of the cheap answer has gone out. The cheap stream stays open until
    # the large model answers, so a failed escalation can still hand on the cheap answer.
    large = calls.config.model(large_name)
    d2 = replace(
        decision,
        model=large.name,
        tier=large.tier,
        escalated=True,
        fallbacks=[f for f in decision.fallbacks if f not in (large.name, decision.model)],
        attempts=[],
        reason=f"{decision.reason}; {verdict.why} gave P(right) "
        + ("n/a" if verdict.probability is None else f"{verdict.probability:.2f}")
        + f" < {spec.threshold:g} → escalated to {large.name}",
        cost_estimate=large.cost(facts.prompt_tokens, facts.output_tokens),
    )
    try:
        result2, d2 = yield Chain(d2, params)
    except Exception as e:  # noqa: BLE001 - the held cheap answer is still an answer
        info.update(escalated=False, note=f"escalation failed ({type(e).__name__}); cheap kept")
        d1.cascade = info
        d1.reason += f"; escalation to {large.name} failed, cheap answer kept"
        return result, d1, chunks
    if stream:
        yield Close(result)
    d2.attempts = d1.attempts + d2.attempts
    info["cheap_tokens_wasted"] = tokens
    d2.cascade = info
    if stream:
        return result2[0], d2, [result2[1]]
    h2 = HeldAnswer().add_response(result2)
    info["large_cost"] = round(
        _cost(calls.config.model(d2.model), h2.usage, facts.prompt_tokens, h2.text), 10
    )
    return result2, d2, None


def _strip_logprobs(objs: list[Any]) -> None:
    """Remove logprobs the cascade asked for and the client did not."""
    for obj in objs:
        for choice in _get(obj, "choices") or []:
            try:
                choice.logprobs = None
            except (AttributeError, TypeError):
                if isinstance(choice, dict):
                    choice.pop("logprobs", None)


# ---- drivers ----------------------------------------------------------------------------------


def run(
    calls: ModelCalls,
    compiled: CompiledPolicy,
    decision: Decision,
    messages,
    params,
    call,
    routing_text: str,
):
    """Drive `flow` with blocking calls. `call(kw)` is the SDK's call for these messages (for
    a stream it returns (iterator, first chunk)). Returns (result, decision, held chunks)."""
    litellm = _litellm()
    gen = flow(calls, compiled, decision, messages, params, routing_text)
    send: Any = None
    error: Exception | None = None
    while True:
        try:
            step = gen.throw(error) if error is not None else gen.send(send)
        except StopIteration as stop:
            return stop.value
        send, error = None, None
        try:
            if isinstance(step, Chain):
                send = calls.run_chain(step.decision, step.params, call)
            elif isinstance(step, Pull):
                send = next(step.stream, END)
            elif isinstance(step, Close):
                close = getattr(step.stream, "close", None)
                if close is not None:
                    close()
            elif isinstance(step, Judge):

                def judge_call(kw, m=step.messages):
                    try:
                        return litellm.completion(messages=m, **kw)
                    except litellm.BadRequestError:  # no logprobs there: the word will do
                        kw = {k: v for k, v in kw.items() if "logprobs" not in k}
                        return litellm.completion(messages=m, **kw)

                send = calls.run_chain(step.decision, JUDGE_PARAMS, judge_call)
        except Exception as e:  # noqa: BLE001 - handed to the flow, which decides
            error = e


async def arun(
    calls: ModelCalls,
    compiled: CompiledPolicy,
    decision: Decision,
    messages,
    params,
    call,
    routing_text: str,
):
    """`run` for coroutines: `call(kw)` is awaited; a stream is an async iterator."""
    litellm = _litellm()
    gen = flow(calls, compiled, decision, messages, params, routing_text)
    send: Any = None
    error: Exception | None = None
    while True:
        try:
            step = gen.throw(error) if error is not None else gen.send(send)
        except StopIteration as stop:
            return stop.value
        send, error = None, None
        try:
            if isinstance(step, Chain):
                send = await calls.arun_chain(step.decision, step.params, call)
            elif isinstance(step, Pull):
                try:
                    send = await step.stream.__anext__()
                except StopAsyncIteration:
                    send = END
            elif isinstance(step, Close):
                close = getattr(step.stream, "aclose", None)
                if close is not None:
                    await close()
            elif isinstance(step, Judge):

                async def ajudge_call(kw, m=step.messages):
                    try:
                        return await litellm.acompletion(messages=m, **kw)
                    except litellm.BadRequestError:  # no logprobs there: the word will do
                        kw = {k: v for k, v in kw.items() if "logprobs" not in k}
                        return await litellm.acompletion(messages=m, **kw)

                send = await calls.arun_chain(step.decision, JUDGE_PARAMS, ajudge_call)
        except Exception as e:  # noqa: BLE001
            error = e


def _litellm():
    return load_litellm()


def held_then(chunks: list[Any] | None, rest: Iterator) -> Iterator:
    """The held chunks, then the rest of the stream."""
    yield from chunks or []
    yield from rest


async def aheld_then(chunks: list[Any] | None, rest: Any):
    for c in chunks or []:
        yield c
    async for c in rest:
        yield c
