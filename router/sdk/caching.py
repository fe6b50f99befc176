"""The response cache on the SDK's path (`Router.chat` / `achat`): looked up after routing and
before any model is called, filled after an answer, streams served as streams.

A semantic lookup compares vectors of the cache's own encoder (`cache.encoder`, all six layers
of MiniLM by default: the routing vectors keep too little of a question's meaning), made only in
semantic mode and only for requests the cache does not bypass; `cache.encoder: routing` reuses
the routing vector (`Turn.vector`) instead. Which requests bypass the cache is
`cache_keys.bypass_reason`'s rule; answers that came from a fallback after a failure are not
stored (the next request tries the chosen model again). An answer is filed under the key of
the model that gave it: an escalated cascade's large answer under the large model's key, so a
request the router sends to the cheap model is never served it.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from router.core.cache_keys import CacheKey, bypass_reason, cache_key, model_identity
from router.core.config import CacheSpec
from router.core.decision import Decision
from router.core.privacy import detect, prompt_of, texts_of
from router.core.request import Message, request_facts
from router.serving import cascade
from router.serving.cache import Hit, ResponseCache
from router.serving.closing import closes

STREAM_PIECE_CHARS = 64  # a cached answer is streamed in pieces of about this many characters


@dataclass
class CachePlan:
    """What the cache said about one request: the decision with its `cache` receipt, the key
    to store the answer under (None: not stored), and the hit, if any. `key` names the routed
    model (`decision.model`); `key_for` makes the request's key for another catalogue model."""

    decision: Decision
    key: CacheKey | None = None
    vector: np.ndarray | None = None
    hit: Hit | None = None
    key_for: Callable[[str], CacheKey] | None = None


def settings(spec: CacheSpec, router: Any, policy: str) -> tuple[str, float, tuple[str, ...]]:
    """(mode, similarity, allowed) for a policy: its own `cache:` over config.yaml's."""
    rules = router.policy(policy).policy.cache
    mode = rules.mode if rules is not None and rules.mode is not None else spec.mode
    sim = (
        rules.similarity if rules is not None and rules.similarity is not None else spec.similarity
    )
    return mode, sim, rules.allow if rules is not None else ()


async def plan(
    router: Any,
    decision: Decision,
    messages: list[Message],
    params: dict[str, Any],
    vector: np.ndarray | None,
    private: tuple[str, ...],
    scope: str | None,
) -> CachePlan:
    """Look the request up; the returned decision carries the receipt (`decision.cache`)."""
    cache: ResponseCache | None = router.response_cache
    if cache is None:
        return CachePlan(decision)
    mode, similarity, allow = settings(cache.spec, router, decision.policy)
    if mode == "off":
        return CachePlan(decision)
    why = bypass_reason(params, allow, private)
    if why is None and not private:  # (the detector only runs for what could be kept)
        # A predicted output is prompt text too: the answer may quote it back (`prompt_of`).
        prompt = prompt_of(messages, params)
        why = bypass_reason(params, allow, await _private_kinds(router, decision.policy, prompt))
    if why is not None:
        return CachePlan(replace(decision, cache={"status": "bypass", "reason": why}))
    key_for = functools.partial(
        _key, router, list(messages), dict(params), None if cache.spec.share_across_keys else scope
    )
    key = key_for(decision.model)
    # An exact entry needs no vector; a semantic one is compared in the cache encoder's space.
    vector = await semantic_vector(router, messages, vector) if mode == "semantic" else None
    found = await cache.lookup(key, vector, mode == "semantic", similarity)
    escalated_to = (decision.cascade or {}).get("large") if cascade.is_judged(decision) else None
    if not isinstance(found, Hit) and escalated_to is not None:
        # A judged cascade's escalated answer is filed under its large model (`key_of`): the
        # cheap model, asked again, would answer as before and be judged as before, so the
        # large model's kept answer is what this request would end with.
        on_large = await cache.lookup(key_for(escalated_to), vector, mode == "semantic", similarity)
        if isinstance(on_large, Hit):
            facts = request_facts(messages, params, router.config.expected_output_tokens)
            large = cascade.large_decision(decision, router.config.model(escalated_to), facts)
            reason = f"{decision.reason}; the cascade escalated this question before"
            found, decision = on_large, replace(large, reason=reason)
    if isinstance(found, Hit):
        entry = found.entry
        receipt = {
            "status": "hit",
            "kind": found.kind,
            "similarity": round(found.similarity, 4),
            "saved_cost": entry.get("cost"),
            "age_s": round(max(0.0, time.time() - float(entry.get("created", time.time()))), 1),
        }
        how = "exact" if found.kind == "exact" else f"semantic, similarity {found.similarity:.3f}"
        hit = replace(
            decision,
            cache=receipt,
            attempts=[],
            cascade=None,
            reason=f"{decision.reason}; answered from the cache ({how})",
        )
        return CachePlan(hit, key, vector, found)
    receipt = {"status": "miss"}
    if found.nearest is not None:
        receipt.update(nearest=found.nearest, guard=found.guard)
    return CachePlan(replace(decision, cache=receipt), key, vector, None, key_for)


# Above this many characters the detector runs off the event loop (about 5 ms at 8,000).
DETECT_INLINE_CHARS = 8_000


async def _private_kinds(router: Any, policy: str, messages: list[Message]) -> tuple[str, ...]:
    """What private data the request carries, for the cache alone: under `privacy.action: off`
    (the default) routing never looked, and the cache must not keep a password or a card
    number in clear, in process or in Redis. (Under another action, routing already did.)"""
    privacy = router.policy(policy).privacy
    if privacy.action != "off":
        return ()
    if sum(len(t) for t in texts_of(messages)) <= DETECT_INLINE_CHARS:
        return detect(messages, privacy.detect)
    return await asyncio.to_thread(detect, messages, privacy.detect)


def _key(
    router: Any, messages: list[Message], params: dict[str, Any], scope: str | None, model: str
) -> CacheKey:
    """The request's key when catalogue model `model` answers it."""
    # The model as the catalogue defines it now: after a reload (or a restart, with Redis)
    # that points the name at another model, the old model's answers are not served.
    return cache_key(messages, model_identity(router.config.model(model)), params, scope)


_ENCODER_LOCK = threading.Lock()


async def semantic_vector(
    router: Any, messages: list[Message], routing_vector: np.ndarray | None
) -> np.ndarray | None:
    """The request's vector for a semantic lookup: the routing vector when the cache encoder
    is the routing one, else its routing text embedded by the cache encoder (loaded on first
    use, off the event loop)."""
    name = router.response_cache.spec.encoder
    if routing_vector is None or name in ("routing", router.config.encoder.name):
        return routing_vector
    text = router.text_of(messages).strip()
    # The encoder is looked up inside the worker thread: its first load takes a while.
    return (await asyncio.to_thread(lambda: _cache_encoder(router, name).encode([text])))[0]


def _cache_encoder(router: Any, name: str) -> Any:
    """The router's cache encoder, loaded once (its config, hence `name`, never changes)."""
    with _ENCODER_LOCK:
        enc = getattr(router, "_cache_encoder", None)
        if enc is None:
            from router.core.encoder import load_encoder

            spec = router.config.encoder
            # One thread: it runs beside the routing encoder's calls on the same cores.
            enc = load_encoder(name, spec.max_tokens, spec.cache_size, threads=1)
            router._cache_encoder = enc
    return enc


# ---- serving a hit ------------------------------------------------------------------------


def response_of(hit: Hit, model: str):
    """A cached answer as a chat completion (a fresh id; the catalogue model's name)."""
    from litellm import ModelResponse

    body = dict(hit.entry["response"])
    body.update(id="chatcmpl-" + uuid.uuid4().hex, created=int(time.time()), model=model)
    return ModelResponse(**body)


def chunks_of(hit: Hit, model: str, params: dict[str, Any]) -> list:
    """A cached answer as stream chunks: per choice, its role and text in pieces, its tool
    calls (each whole, in one delta), then its finish reason; and the usage when the request
    asked for it with stream_options.include_usage."""
    from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices, Usage

    body = hit.entry["response"]
    rid, created = "chatcmpl-" + uuid.uuid4().hex, int(time.time())

    def chunk(index: int, delta: Delta, finish: str | None = None) -> Any:
        c = StreamingChoices(index=index, delta=delta, finish_reason=finish)
        return ModelResponseStream(id=rid, created=created, model=model, choices=[c])

    out = []
    for at, choice in enumerate(body["choices"]):
        index = choice.get("index", at)
        message = choice.get("message") or {}
        pieces = _pieces(message.get("content") or "")
        out.append(chunk(index, Delta(role="assistant", content=pieces[0] if pieces else None)))
        out += [chunk(index, Delta(content=p)) for p in pieces[1:]]
        # A tool call is an answer too: a stream without it would answer nothing.
        calls = [{**c, "index": i} for i, c in enumerate(message.get("tool_calls") or [])]
        if calls:
            out.append(chunk(index, Delta(tool_calls=calls)))
        if message.get("function_call"):
            out.append(chunk(index, Delta(function_call=message["function_call"])))
        out.append(chunk(index, Delta(), choice.get("finish_reason") or "stop"))
    opts = params.get("stream_options") or {}
    if body.get("usage") and opts.get("include_usage"):
        out[-1].usage = Usage(**body["usage"])
    return out


def usage_of(hit: Hit) -> Any:
    """The cached answer's token usage (litellm's `Usage`), or None when it kept none."""
    from litellm.types.utils import Usage

    usage = hit.entry["response"].get("usage")
    return Usage(**usage) if usage else None


def _pieces(text: str) -> list[str]:
    """`text` cut at spaces into pieces of about STREAM_PIECE_CHARS characters."""
    pieces, at = [], 0
    while at < len(text):
        end = text.find(" ", at + STREAM_PIECE_CHARS)
        end = len(text) if end < 0 else end + 1
        pieces.append(text[at:end])
        at = end
    return pieces


# ---- storing an answer --------------------------------------------------------------------


def storable(decision: Decision) -> bool:
    """Only an answer from the plan (the chosen model, or the cascade's verdict) is stored:
    not one a fallback gave after a failure."""
    return all(a.ok for a in decision.attempts)


def key_of(cp: CachePlan, decision: Decision) -> CacheKey | None:
    """Where the answer of `decision` is filed: the plan's key, or, when another model than the
    routed one answered (an escalated cascade), that model's key. Under the routed model's key
    a later request sent to it would get the other model's answer, in its name and at its price.
    """
    if cp.key is None or cp.key_for is None or decision.model == cp.decision.model:
        return cp.key
    return cp.key_for(decision.model)


def entry_of(
    router: Any, key: CacheKey, decision: Decision, body: dict, usage: tuple[int, int] | None
) -> dict | None:
    """What the cache keeps for an answer (None: nothing worth keeping: no choice, an empty
    one, or one that ended for another reason than stop, length or tool calls)."""
    choices = body.get("choices") or []
    if not choices:
        return None
    for c in choices:
        message = c.get("message") or {}
        if not (message.get("content") or message.get("tool_calls")):
            return None
        if c.get("finish_reason") not in ("stop", "length", "tool_calls"):
            return None
    spec = router.config.model(decision.model)
    cost = spec.cost(*usage) if usage is not None else decision.cost_estimate
    return {
        "response": body,
        "question": key.question,
        "model": decision.model,
        "cost": cost,
        "created": time.time(),
    }


def _usage(obj: Any) -> tuple[int, int] | None:
    u = getattr(obj, "usage", None) if not isinstance(obj, dict) else obj.get("usage")
    if u is None:
        return None
    get = u.get if isinstance(u, dict) else (lambda k: getattr(u, k, None))
    return int(get("prompt_tokens") or 0), int(get("completion_tokens") or 0)


async def store(router: Any, cp: CachePlan, decision: Decision, response: Any) -> None:
    """Keep a non-streamed answer under the key of the model that gave it (`key_of`)."""
    key = key_of(cp, decision)
    if key is None or cp.hit is not None or not storable(decision):
        return
    body = (
        response.model_dump(exclude={"decision"}) if hasattr(response, "model_dump") else response
    )
    entry = entry_of(router, key, decision, body, _usage(response))
    if entry is not None:
        await router.response_cache.put(key, cp.vector, entry)


class StreamCapture:
    """Collects a streamed answer (one choice, text) into the body of a chat completion."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.finish: str | None = None
        self.usage: tuple[int, int] | None = None
        self.single = True

    def add(self, chunk: Any) -> None:
        self.usage = _usage(chunk) or self.usage
        for c in getattr(chunk, "choices", None) or []:
            if getattr(c, "index", 0):
                self.single = False
            d = getattr(c, "delta", None)
            if d is not None and (
                getattr(d, "tool_calls", None) or getattr(d, "function_call", None)
            ):
                self.single = False  # tool calls are not kept
            if d is not None and getattr(d, "content", None):
                self.text.append(d.content)
            if getattr(c, "finish_reason", None):
                self.finish = c.finish_reason

    def body(self, model: str) -> dict | None:
        if not self.single or not self.text or self.finish is None:
            return None  # cut short, several choices or tool calls: not kept
        out = {
            "id": "chatcmpl-cached",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(self.text)},
                    "finish_reason": self.finish,
                }
            ],
        }
        if self.usage is not None:
            p, c = self.usage
            out["usage"] = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        return out


async def _store_stream(router: Any, cp: CachePlan, decision: Decision, cap: StreamCapture) -> None:
    body = cap.body(decision.model)
    key = key_of(cp, decision)
    if body is None or key is None or not storable(decision):
        return
    entry = entry_of(router, key, decision, body, cap.usage)
    if entry is not None:
        await router.response_cache.put(key, cp.vector, entry)


@closes("chunks")
async def astore_stream(
    router: Any, cp: CachePlan, decision: Decision, chunks: AsyncIterator, first: Any = None
) -> AsyncIterator:
    """Pass a stream through (`first` was already taken from it); keep the answer once it
    ended complete."""
    cap = StreamCapture()
    if first is not None:
        cap.add(first)
    async for chunk in chunks:
        cap.add(chunk)
        yield chunk
    await _store_stream(router, cp, decision, cap)
