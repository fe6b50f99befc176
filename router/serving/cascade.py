"""Cascade serving: the cheap model answers, the answer is judged, the large model answers
instead when it looks wrong (docs/cascades.md).

Whether a request is cascaded is the policy's decision (`policy.cascade_decision`, pure); this
module acts on it. The flow is written once, as a generator that yields what it needs done
(`Chain`: run the fallback chain for a model; `Pull`: the next chunk of a held stream;
`Close`; `Judge`: ask the LLM verifier; `Start`, `Await`, `Cancel`: a speculative large call)
and is sent the outcome. `arun` drives it with awaited calls, for `Router.achat` and so for
the proxy and the synchronous `Router.chat` (which runs `achat` on the SDK's background
loop).

Rules (the same for the SDK and the proxy, which only forwards):
- non-streaming: the cheap answer is held until judged, then returned or replaced;
- streaming: up to `buffer_tokens` chunks are held (the whole answer when `max_tokens` is at
  most that, or for a tool-call or JSON-mode request); the verdict comes before the first
  chunk is handed on, and after that the model never changes;
- a tool-call answer is accepted unjudged (`tool_calls: accept`) or escalated;
- a whole answer with no text is escalated, whatever the verifier would say, and so is one
  that only declares it has none ("I don't know.", `answers.declares_no_answer`);
- in JSON mode an answer that does not parse is escalated (`invalid_json: escalate`);
- when the escalation itself fails, the held cheap answer is returned (it is still an answer)
  and the failed attempts are recorded before the cheap one, which answered and stays last;
- speculation (`speculate_tokens`): once that many tokens of the cheap answer are in and the
  verifier is already below the threshold on them, the large model's call starts while the
  rest of the cheap answer comes; the verdict then awaits it (escalated) or cancels it (kept),
  and a cancelled call's cost is counted. A non-streamed request reads the cheap answer as a
  stream for this (its response is rebuilt from the chunks).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import Any

from router.core.config import Cascade, ModelSpec
from router.core.decision import Attempt, Decision
from router.core.policy import CompiledPolicy
from router.core.request import Message, request_facts
from router.core.verifier import AnswerCase, AnswerVerifier, load_verifier
from router.serving import tracing
from router.serving.answers import (
    JUDGE_PARAMS,
    HeldAnswer,
    _get,
    _json_mode,
    _parses_as_json,
    declares_no_answer,
    judge_messages,
    judge_probability,
)
from router.serving.calls import ModelCalls
from router.serving.closing import aclose, closes
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


@dataclass(frozen=True)
class Start:
    """Start the fallback chain for `decision` with `params` without waiting for it (the
    speculative large call); sends back a handle for `Await` or `Cancel`."""

    decision: Decision
    params: dict[str, Any]


@dataclass(frozen=True)
class Await:
    """Wait for a started chain; sends back (result, decision) or raises its error."""

    handle: Any


@dataclass(frozen=True)
class Cancel:
    """Give up a started chain: stop it if it still runs (close its stream if it answered).
    Sends back (response, decision) when it had already answered without streaming, a
    `Failed` when it had failed, else None (stopped, or its stream closed)."""

    handle: Any


@dataclass(frozen=True)
class Failed:
    """A speculative call that had already failed when the verdict gave it up: every model of
    its chain errored or could not be called, so there is no answer to pay for."""

    error: str


END = object()


def is_judged(decision: Decision) -> bool:
    """Does this decision send the request through the cascade (cheap answer, then verdict)?"""
    return decision.cascade is not None and decision.cascade.get("mode") == "judged"


@functools.cache
def verifier_at(spec: str) -> AnswerVerifier:
    """The verifier of a policy's `cascade.verifier` ("default" or a resolved directory),
    loaded once per process."""
    return load_verifier(spec)


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


def _speculates(spec: Cascade, first: ModelSpec, params: dict[str, Any]) -> bool:
    """May this request start the large call early? A trained verifier (an LLM judge per
    prefix would cost more than it saves), a first model that streams, no tools (a tool-call
    answer is judged by rule, not read)."""
    return (
        spec.speculate_tokens is not None
        and spec.verifier != "llm"
        and "streaming" in first.capabilities
        and not (params.get("tools") or params.get("functions"))
    )


def large_decision(decision: Decision, large: ModelSpec, facts: Any) -> Decision:
    """The decision once the cascade escalates to `large` (the cache's hit on an escalated
    answer takes it too, `sdk/caching.py`)."""
    return replace(
        decision,
        model=large.name,
        tier=large.tier,
        escalated=True,
        # A session turn that escalates moves the session up: it did not stay on its model,
        # and the session must remember that it escalated.
        sticky=None if decision.sticky is None else False,
        fallbacks=[f for f in decision.fallbacks if f not in (large.name, decision.model)],
        attempts=[],
        cost_estimate=large.cost(facts.prompt_tokens, facts.output_tokens),
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
    large = calls.config.model(info.get("large") or compiled.reference_large.name)
    speculate = _speculates(spec, first_spec, params)
    # A non-streamed request reads the cheap answer as a stream when it may speculate: the
    # first tokens can then be judged while the rest is generated.
    as_stream = stream or speculate

    first_params = dict(params)
    added_logprobs = spec.logprobs and not params.get("logprobs")
    if added_logprobs:
        first_params.update(logprobs=True, top_logprobs=2)
    if as_stream and not stream:
        first_params.update(stream=True, stream_options={"include_usage": True})
    client_logprobs = bool(params.get("logprobs"))
    result, d1 = yield Chain(decision, first_params)
    if d1.model != decision.model:
        # The first model failed and the chain moved on: that answer is not judged. Not an
        # escalation (no verdict sent it up; the receipt's `escalated` stays as routed, false):
        # a fallback, which the attempts and `wanted` show. The fallback was asked with the
        # cascade's parameters: logprobs it added come off.
        info.update(
            escalated=False,
            note=f"{decision.model} failed; no verdict; {d1.model} answered as its fallback",
        )
        d1.cascade = info
        if stream:
            if added_logprobs:
                _strip_logprobs([result[1]])
                return _without_logprobs(result[0]), d1, [result[1]]
            return result[0], d1, [result[1]]
        if as_stream:  # the fallback's answer came as a stream: read it whole
            return (yield from _whole(result, messages, client_logprobs)), d1, None
        if added_logprobs:
            _strip_logprobs([result])
        return result, d1, None

    # Read what is held: the whole response, or a stream up to the buffer (a non-streamed
    # request read as a stream: all of it); the large call may start on the way.
    held = HeldAnswer()
    chunks: list[Any] | None = None
    finished = True
    spec_handle, spec_info = None, None
    failed_midway = None
    if as_stream:
        if stream:
            it, first_chunk = result
            chunks = [first_chunk]
            held.add_chunk(first_chunk)
        else:
            it, chunks = result, []
        max_out = params.get("max_completion_tokens") or params.get("max_tokens")
        hold_all = (
            not stream
            or bool(params.get("tools") or params.get("functions"))
            or _json_mode(params)
            or (max_out is not None and int(max_out) <= spec.buffer_tokens)
        )
        finished = False
        checked = not speculate
        while hold_all or held.chunks < spec.buffer_tokens:
            if not checked and held.chunks >= spec.speculate_tokens and not held.tool_calls:
                checked = True
                # Weighed against the router's estimate, as the verdict will be.
                p = verifier_at(spec.verifier).probability(
                    AnswerCase(routing_text, held.text, held.logprobs, None, partial=True),
                    info.get("prompt_probability"),
                )
                if p < spec.threshold:  # already unsure: the large model starts now
                    spec_handle = yield Start(large_decision(decision, large, facts), params)
                    spec_info = {"after_tokens": held.chunks, "probability": round(p, 4)}
            try:
                chunk = yield Pull(it)
            except Exception as e:  # noqa: BLE001 - the cheap answer broke off: escalate
                # Streaming or not, nothing of it has gone out yet (the held chunks are the
                # cascade's own), so the large model can still answer in its place.
                failed_midway = e
                break
            if chunk is END:
                finished = True
                break
            chunks.append(chunk)
            held.add_chunk(chunk)
        result = it
        if stream and failed_midway is not None:
            yield Close(it)  # broken: nothing more comes from it
        if not stream and failed_midway is None:
            result = _rebuilt(chunks, messages, client_logprobs)
            chunks = None
    else:
        held.add_response(result)
    verdict_started = tracing.now_ns()
    cheap_cost = _cost(first_spec, held.usage, facts.prompt_tokens, held.text)
    tokens = held.usage[1] if held.usage is not None else held.chunks or len(held.text) // 4

    # The verdict.
    if failed_midway is not None:
        why = f"cheap answer broke off ({type(failed_midway).__name__})"
        verdict = Verdict(False, None, why)
    elif held.tool_calls:
        ok = spec.tool_calls == "accept"
        verdict = Verdict(ok, None, "tool call " + ("accepted unjudged" if ok else "escalated"))
    elif finished and not held.text.strip():
        # Nothing to hand on. A verifier learns nothing of empty answers unless its training
        # answers had some (the shipped one had none: it rated "" above a real answer).
        verdict = Verdict(False, 0.0, "empty answer")
    elif finished and declares_no_answer(held.text):
        # "I don't know." is as empty, and the verifier's `refusal` check, which feeds the
        # shipped verifier as trained, does not look for it.
        verdict = Verdict(False, 0.0, "declared non-answer")
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
    tracing.record_verdict(
        calls.tracer, verdict_started, {**info, "threshold": spec.threshold, "model": d1.model}
    )
    if added_logprobs:
        _strip_logprobs([result] if not stream else chunks)
        if stream:  # the chunks after the held ones carry them too
            result = _without_logprobs(result)

    if verdict.accepted:
        if spec_handle is not None:  # the large call started for nothing: stop it, count it
            done = yield Cancel(spec_handle)
            if isinstance(done, Failed):  # it errored (or was never sent): nothing answered
                wasted = 0.0
                spec_info["failed"] = done.error
            elif done is not None:  # it had answered: all of it, at its model's prices
                h = HeldAnswer().add_response(done[0])
                answered = calls.config.model(done[1].model)
                wasted = _cost(answered, h.usage, facts.prompt_tokens, h.text)
            else:  # stopped early: its prompt was read, little was written
                wasted = large.cost(facts.prompt_tokens, 0)
            spec_info.update(used=False, cost=round(wasted, 10))
            info.update(speculative=spec_info, speculative_cost=round(wasted, 10))
        d1.cascade = info
        return result, d1, chunks

    # Escalate: nothing of the cheap answer has gone out. The cheap stream stays open until
    # the large model answers, so a failed escalation can still hand on the cheap answer.
    reason = (
        f"{decision.reason}; {verdict.why} gave P(right) "
        + ("n/a" if verdict.probability is None else f"{verdict.probability:.2f}")
        + f" < {spec.threshold:g} → escalated to {large.name}"
    )
    try:
        if spec_handle is not None:
            result2, d2 = yield Await(spec_handle)
            spec_info["used"] = True
            info["speculative"] = spec_info
        else:
            result2, d2 = yield Chain(large_decision(decision, large, facts), params)
    except Exception as e:  # noqa: BLE001 - the held cheap answer is still an answer
        if failed_midway is not None:
            # Nothing to fall back on: the cheap answer broke off too. The error's receipt is
            # the escalation's (escalated, as its verdict had it) with the cascade's part.
            failed = getattr(e, "decision", None)
            if isinstance(failed, Decision):
                info["note"] = f"escalation failed ({type(e).__name__})"
                failed.cascade = info
                failed.attempts = d1.attempts + failed.attempts
            raise
        info.update(escalated=False, note=f"escalation failed ({type(e).__name__}); cheap kept")
        d1.cascade = info
        # The large model was called and failed: its attempts are the request's too. They go
        # before the cheap attempt, which answered: the last attempt is the answering one
        # (metrics, receipts and the decision log read it there).
        failed = getattr(getattr(e, "decision", None), "attempts", None)
        failed = failed or [Attempt(large.name, False, type(e).__name__)]
        d1.attempts = d1.attempts[:-1] + failed + d1.attempts[-1:]
        d1.reason += f"; escalation to {large.name} failed, cheap answer kept"
        return result, d1, chunks
    if stream:
        yield Close(result)
    # The large call started with the routing reason (its verdict was not known yet); a note
    # the fallback chain added after it stays.
    d2.reason = reason + d2.reason[len(decision.reason) :]
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


def _whole(it: Any, messages: list[Message], logprobs: bool) -> Generator[Any, Any, Any]:
    """Read a stream to its end; its chunks rebuilt as one response."""
    chunks = []
    while (chunk := (yield Pull(it))) is not END:
        chunks.append(chunk)
    return _rebuilt(chunks, messages, logprobs)


def _rebuilt(chunks: list[Any], messages: list[Message], logprobs: bool) -> Any:
    """A non-streamed response from a stream's chunks (litellm's own builder). The builder
    drops token logprobs: a client that asked for them gets the chunks' back."""
    resp = _litellm().stream_chunk_builder(chunks, messages=messages)
    if logprobs:
        held = HeldAnswer()
        for chunk in chunks:
            held.add_chunk(chunk)
        choices = _get(resp, "choices") or []
        if held.logprobs and choices:
            from litellm.types.utils import ChoiceLogprobs

            choices[0].logprobs = ChoiceLogprobs(content=held.logprobs)
    return resp


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
    started: list[asyncio.Task] = []  # speculative calls not yet awaited or cancelled
    try:
        while True:
            try:
                step = gen.throw(error) if error is not None else gen.send(send)
            except StopIteration as stop:
                return stop.value
            send, error = None, None
            try:
                send = await _arun_step(step, calls, call, litellm, started)
            except Exception as e:  # noqa: BLE001 - handed to the flow, which decides
                error = e
    finally:
        for t in started:  # the flow ended without a verdict on them
            await _acancel(t)


async def _arun_step(step: Any, calls: ModelCalls, call, litellm, started: list) -> Any:
    """One step of `flow`, awaited."""
    if isinstance(step, Chain):
        return await calls.arun_chain(step.decision, step.params, call)
    if isinstance(step, Pull):
        try:
            return await step.stream.__anext__()
        except StopAsyncIteration:
            return END
    if isinstance(step, Close):
        await aclose(step.stream)
        return None
    if isinstance(step, Start):
        task = asyncio.ensure_future(calls.arun_chain(step.decision, step.params, call))
        started.append(task)
        await asyncio.sleep(0)  # let it begin (up to its first I/O) before the cheap answer goes on
        return task
    if isinstance(step, Await):
        started.remove(step.handle)
        return await step.handle
    if isinstance(step, Cancel):
        started.remove(step.handle)
        return await _acancel(step.handle)
    if isinstance(step, Judge):

        async def ajudge_call(kw, m=step.messages):
            try:
                return await litellm.acompletion(messages=m, **kw)
            except litellm.BadRequestError:  # no logprobs there: the word will do
                kw = {k: v for k, v in kw.items() if "logprobs" not in k}
                return await litellm.acompletion(messages=m, **kw)

        return await calls.arun_chain(step.decision, JUDGE_PARAMS, ajudge_call)
    raise TypeError(f"unknown cascade step {step!r}")


async def _acancel(task: asyncio.Task) -> Any:
    """Give up a speculative call: stopped if it still runs; (response, decision) if it had
    already answered (not streamed), `Failed` if it had failed, else None; a stream it opened
    is closed."""
    if not task.done():
        task.cancel()
        await asyncio.wait([task])  # let it unwind (its connection goes back or is closed)
        return None
    if task.cancelled():
        return None
    if (error := task.exception()) is not None:
        d = getattr(error, "decision", None)  # the chain's attempts say why (redacted)
        why = "; ".join(f"{a.model}: {a.error}" for a in getattr(d, "attempts", None) or [])
        return Failed(why or type(error).__name__)
    result, decision = task.result()
    if isinstance(result, tuple):
        await aclose(result[0])
        return None
    return result, decision


def _litellm():
    return load_litellm()


@closes("chunks")
async def _without_logprobs(chunks: Any):
    """A stream's chunks without the logprobs the cascade asked for and the client did not."""
    async for c in chunks:
        _strip_logprobs([c])
        yield c


@closes("rest")
async def aheld_then(chunks: list[Any] | None, rest: Any):
    for c in chunks or []:
        yield c
    async for c in rest:
        yield c
