"""Sticky conversations and tool loops: which model a turn of an ongoing conversation goes to.

The policy routes every request afresh; this module adds what a conversation remembers.

- **Session key.** An explicit id (the `x-session-id` header, the SDK's `session=`), else
  `metadata.session_id`, else `user`, else the conversation itself: the hash of every message up
  to and including its last assistant reply. After each turn the state is stored under the hash
  of the conversation *with* the reply the router gave, so the next turn (which carries that
  reply) finds it and an unrelated conversation that merely opens the same way does not.
- **Stickiness** (`stick`, a pure function like the policy): a turn stays on the session's model
  unless the fresh choice is a larger model (escalation moves the session up) or the policy's
  `session.allow_downgrade` lets it drop back. A model the request cannot use (hard rules, not
  in the policy) is left.
- **Tool loops.** A turn that carries tool results continues on the model that made the calls
  (from the session, or from a fingerprint of the calls themselves), whatever the policy says.
- **Failures.** The fallback chain runs as usual; the state records the model that answered,
  so the session moves with it.

State lives in `router.state` (a `StateStore`: in process, or Redis when `state:` is set),
under `session:<hash>` and `toolcall:<hash>`, expiring after the policy's `session.ttl_s`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from router.core.config import ModelSpec, SessionRules
from router.core.decision import Decision
from router.core.request import Message, RequestError
from router.serving.closing import closes

log = logging.getLogger("router.serving.sessions")

MAX_SESSION_ID = 256
MAX_TOOL_IDS = 64  # tool-call ids kept per session (a parallel batch is far smaller)


# ---- keys ---------------------------------------------------------------------------------


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def _canonical_arguments(arguments: Any) -> str:
    """Tool-call arguments as one canonical JSON text (whitespace and key order do not count:
    the Anthropic API hands them back as an object, re-serialised)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return arguments
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical_calls(calls: Any) -> list[list[str]]:
    out = []
    for c in calls or []:
        if not isinstance(c, Mapping):
            continue
        fn = c.get("function") if isinstance(c.get("function"), Mapping) else {}
        out.append(
            [
                str(c.get("id") or ""),
                str(fn.get("name") or ""),
                _canonical_arguments(fn.get("arguments") or ""),
            ]
        )
    return out


def _canonical_message(m: Message) -> list:
    """What identifies a message in a conversation: role, text, tool calls, tool-call id."""
    content = m.get("content")
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, Mapping) and p.get("type") == "text":
                parts.append(str(p.get("text", "")).strip())
            else:
                parts.append(json.dumps(p, sort_keys=True, default=str))
        text = "\n".join(parts)
    else:
        text = (content or "").strip() if isinstance(content, str) else ""
    calls = _canonical_calls(m.get("tool_calls"))
    if m.get("function_call"):
        fc = m["function_call"]
        calls.append(["", str(fc.get("name", "")), _canonical_arguments(fc.get("arguments", ""))])
    return [m.get("role"), text, calls, m.get("tool_call_id") or ""]


def conversation_hash(messages: list[Message]) -> str:
    """The hash of a conversation (order, roles, texts and tool calls)."""
    return _digest(json.dumps([_canonical_message(m) for m in messages], ensure_ascii=False))


def _last_assistant(messages: list[Message]) -> int | None:
    return next(
        (i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "assistant"), None
    )


@dataclass(frozen=True)
class SessionRef:
    """Where a turn's session state is looked up and stored.

    `id` is what the receipt shows: the explicit id, or for a conversation keyed by its content
    "c-" + a hash that stays the same across its turns. `lookup` is the store key read before
    the turn (None: a new conversation), `store` the one written after it (None: written under
    the hash of the conversation with its reply, known only then).
    """

    id: str
    source: str  # "header", "metadata", "user" or "conversation"
    lookup: str | None
    store: str | None


def _store_key(scope: str | None, kind: str, value: str) -> str:
    return "session:" + _digest(scope or "", kind, value)[:40]


def session_ref(
    messages: list[Message],
    params: Mapping[str, Any],
    explicit: str | None = None,
    scope: str | None = None,
    rules: SessionRules | None = None,
) -> SessionRef | None:
    """The session of a request: explicit id, `metadata.session_id`, `user`, else the
    conversation's own hash (None when the rules turn that off). `scope` keeps callers apart
    (the proxy passes the API key's name): the same id under two keys is two sessions."""
    rules = rules or SessionRules()
    if explicit is not None:
        _check_id(explicit, "session")
        key = _store_key(scope, "id", explicit)
        return SessionRef(explicit, "header", key, key)
    meta = params.get("metadata")
    if isinstance(meta, Mapping) and isinstance(meta.get("session_id"), str) and meta["session_id"]:
        sid = meta["session_id"]
        _check_id(sid, "metadata.session_id")
        key = _store_key(scope, "id", sid)
        return SessionRef(sid, "metadata", key, key)
    user = params.get("user")
    if rules.key_from_user and isinstance(user, str) and user:
        # `user` is OpenAI's end-user id, whatever its length or characters: one that cannot
        # be a session id (and a header) stands in by its digest, never refuses the request.
        if len(user) > MAX_SESSION_ID - len("user:") or not user.isprintable():
            user = "#" + hashlib.sha256(user.encode("utf-8", "replace")).hexdigest()[:32]
        key = _store_key(scope, "user", user)
        return SessionRef(f"user:{user}", "user", key, key)
    if not rules.key_from_prefix:
        return None
    a = _last_assistant(messages)
    lookup = None
    if a is not None:
        lookup = _store_key(scope, "conversation", conversation_hash(messages[: a + 1]))
    # A provisional id for a new conversation; a found session brings its own.
    return SessionRef("c-" + conversation_hash(messages)[:16], "conversation", lookup, None)


def reply_key(messages: list[Message], reply: Message, scope: str | None) -> str:
    """Where a conversation-keyed session is stored after `reply`: the next turn carries it."""
    return _store_key(scope, "conversation", conversation_hash([*messages, reply]))


def _check_id(value: str, param: str) -> None:
    if not value or len(value) > MAX_SESSION_ID or not value.isprintable():
        raise RequestError(
            f"{param}: a session id is 1-{MAX_SESSION_ID} printable characters", param
        )


# ---- state --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionState:
    """What a session remembers between turns (stored as JSON)."""

    id: str
    model: str
    turns: int = 0
    escalated: bool = False
    tool_calls: tuple[str, ...] = ()  # ids of the calls its last answer made
    updated: float = 0.0

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "model": self.model,
            "turns": self.turns,
            "escalated": self.escalated,
            "tool_calls": list(self.tool_calls),
            "updated": self.updated,
        }

    @classmethod
    def from_json(cls, data: Any) -> SessionState | None:
        """None for anything that is not a state this module wrote (a store shared with others)."""
        if not isinstance(data, Mapping):
            return None
        try:
            return cls(
                id=str(data["id"]),
                model=str(data["model"]),
                turns=int(data.get("turns", 0)),
                escalated=bool(data.get("escalated", False)),
                tool_calls=tuple(str(i) for i in data.get("tool_calls", ())),
                updated=float(data.get("updated", 0.0)),
            )
        except (KeyError, TypeError, ValueError):
            return None


def tool_loop_calls(messages: list[Message]) -> list[dict] | None:
    """The tool calls a turn answers, when it carries tool results (its last messages are,
    with only user text after them); else None."""
    i = len(messages) - 1
    # Text sent with the results, before any answer to them, is the same turn of the loop:
    # Claude Code adds <system-reminder> blocks to its tool_result turns, which litellm's
    # Anthropic adapter turns into a user message after the tool messages.
    while i >= 0 and messages[i]["role"] == "user":
        i -= 1
    if i < 0 or messages[i]["role"] not in ("tool", "function"):
        return None
    while i >= 0 and messages[i]["role"] in ("tool", "function"):
        i -= 1
    if i < 0 or messages[i]["role"] != "assistant":
        return None
    m = messages[i]
    calls = [c for c in (m.get("tool_calls") or []) if isinstance(c, Mapping)]
    if m.get("function_call"):
        calls.append({"id": "", "function": m["function_call"]})
    return calls or None


def _call_key(scope: str | None, call: Mapping) -> str:
    [cid, name, args] = _canonical_calls([call])[0]
    return "toolcall:" + _digest(scope or "", cid, name, args)[:40]


# ---- the decision (pure) ------------------------------------------------------------------


def rank(spec: ModelSpec) -> tuple[bool, float]:
    """How large a model is: the large tier above the small one, then by price."""
    return (spec.tier == "large", spec.input_price + spec.output_price)


def stick(
    fresh: Decision,
    ref: SessionRef | None,
    state: SessionState | None,
    tool_model: str | None,
    rules: SessionRules,
    catalogue: Mapping[str, ModelSpec],
    usable: Collection[str],
    tokens: tuple[int, int],
    pinned: bool = False,
) -> Decision:
    """The decision for a turn of a conversation, from the policy's fresh decision and what the
    session remembers. Pure: no I/O, no clock.

    `usable` are the models this request may go to (the policy's models its hard rules leave);
    `tokens` (prompt, output) price a kept model. `sticky` on the result is None without a
    session, True when the turn stays on the session's (or the tool loop's) model, else False.
    """
    sid = state.id if state is not None else (ref.id if ref is not None else None)
    out = replace(fresh, session=sid, sticky=None if ref is None and tool_model is None else False)
    if pinned:
        return out  # the caller named the model
    if tool_model is not None:
        if tool_model not in usable:
            why = (
                "it is not in the policy"
                if tool_model not in catalogue
                else "hard rules exclude it"
            )
            return replace(out, reason=f"{fresh.reason}; tool loop leaves {tool_model} ({why})")
        note = "tool loop: continues on the model that made the call"
        escalated = state.escalated if state is not None and state.model == tool_model else None
        return _keep(out, tool_model, note, escalated, catalogue, usable, tokens)
    if ref is None or state is None or not rules.sticky:
        return out
    old = state.model
    note = f"session turn {state.turns + 1}: stays on {old}"
    if old == fresh.model:
        return _keep(out, old, note, fresh.escalated, catalogue, usable, tokens)
    if old not in usable:
        why = "it is not in the policy" if old not in catalogue else "hard rules exclude it"
        return replace(out, reason=f"{fresh.reason}; session leaves {old} ({why})")
    new = catalogue.get(fresh.model)
    if new is not None and old in catalogue and rank(new) > rank(catalogue[old]):
        return replace(out, reason=f"{fresh.reason}; session moves up from {old}")
    if rules.allow_downgrade:
        return replace(out, reason=f"{fresh.reason}; session moves from {old} (allow_downgrade)")
    return _keep(out, old, note, state.escalated, catalogue, usable, tokens)


def _keep(
    fresh: Decision,
    model: str,
    note: str,
    escalated: bool | None,
    catalogue: Mapping[str, ModelSpec],
    usable: Collection[str],
    tokens: tuple[int, int],
) -> Decision:
    """`fresh` moved onto `model`: the policy's own choice and its chain become the fallbacks."""
    spec = catalogue[model]
    if fresh.model == model:
        reason = f"{note}; {fresh.reason}"
    else:
        reason = f"{note}; the policy alone would pick {fresh.model}: {fresh.reason}"
    chain = [m for m in [fresh.model, *fresh.fallbacks] if m != model and m in usable]
    return replace(
        fresh,
        model=model,
        tier=spec.tier,
        reason=reason,
        fallbacks=list(dict.fromkeys(chain)),
        cost_estimate=spec.cost(*tokens),
        escalated=spec.tier == "large" if escalated is None else escalated,
        sticky=True,
        # A cascade planned for the policy's choice (its cheap answer judged) does not apply
        # to another model: the session decided.
        cascade=fresh.cascade if fresh.model == model else None,
    )


# ---- the SDK side: read state, decide, write state ----------------------------------------


class Sessions:
    """Applies `stick` for a Router: reads the session before a turn, writes it after."""

    def __init__(self, router: Any) -> None:
        self.router = router

    def rules(self, policy: str | None) -> SessionRules:
        return self.router.policy(policy).policy.session or SessionRules()

    @property
    def store(self):
        return self.router.state

    async def _get(self, key: str) -> Any:
        """A stored value, or None when the store fails: an outage costs stickiness, never the
        request (a Redis store degrades to memory itself; any other store may not)."""
        try:
            return await self.store.get(key)
        except Exception:  # noqa: BLE001
            log.warning("session state not read", exc_info=True)
            return None

    async def open(
        self,
        messages: list[Message],
        policy: str | None,
        pin: str | None,
        params: dict[str, Any],
        session: str | None = None,
        scope: str | None = None,
    ) -> Turn:
        """Route a turn and apply the session to the decision. Routing and the hashing of the
        conversation run in a worker thread: a long conversation never blocks the loop."""
        router = self.router
        compiled = router.policy(policy)
        rules = compiled.policy.session or SessionRules()

        def prepare():
            ref = session_ref(messages, params, session, scope, rules)
            routed = router.routed([messages], policy, pin, params)[0]
            # The models this request may use: the hard rules (the privacy rule among them)
            # without the pin.
            facts = replace(routed.facts, pinned_model=None)
            mask, _, _ = compiled.eligible(facts)
            usable = {n for n, ok in zip(compiled.names, mask, strict=True) if ok}
            return ref, routed, usable, (facts.prompt_tokens, facts.output_tokens)

        ref, routed, usable, tokens = await asyncio.to_thread(prepare)
        fresh = routed.decision
        state = None
        if ref is not None and ref.lookup is not None:
            state = SessionState.from_json(await self._get(ref.lookup))
        calls = tool_loop_calls(messages)
        tool_model = None
        if calls:
            ids = {str(c.get("id", "")) for c in calls}
            if state is not None and ids & set(state.tool_calls):
                tool_model = state.model
            else:
                for c in calls:
                    found = await self._get(_call_key(scope, c))
                    if isinstance(found, Mapping) and isinstance(found.get("model"), str):
                        tool_model = found["model"]
                        break
        catalogue = {m.name: m for m in router.config.models}
        decision = stick(
            fresh, ref, state, tool_model, rules, catalogue, usable, tokens, pinned=pin is not None
        )
        turn = Turn(self, messages, ref, state, rules, scope, decision)
        turn.vector, turn.private = routed.vector, routed.facts.private
        return turn


@dataclass
class Turn:
    """One turn of a conversation between routing and the answer; `close()` records it."""

    sessions: Sessions
    messages: list[Message]
    ref: SessionRef | None
    state: SessionState | None
    rules: SessionRules
    scope: str | None
    decision: Decision
    closed: bool = field(default=False)
    # The routing vector (the semantic cache reuses it) and the private kinds detected.
    vector: Any = None
    private: tuple[str, ...] = ()

    async def close(self, decision: Decision, reply: Message | None) -> None:
        """Store what the session should remember: the model that answered (after fallbacks),
        and the calls its answer made. Failures of the store never fail the answer."""
        if self.closed:
            return
        self.closed = True
        store, ttl = self.sessions.store, self.rules.ttl_s
        calls = [c for c in (reply or {}).get("tool_calls") or [] if isinstance(c, Mapping)]
        try:
            for c in calls:
                await store.set(_call_key(self.scope, c), {"model": decision.model}, ttl)
            if self.ref is None:
                return
            sid = decision.session or self.ref.id
            prior = self.state
            state = SessionState(
                id=sid,
                model=decision.model,
                turns=(prior.turns if prior is not None else 0) + 1,
                escalated=decision.escalated
                if not decision.sticky
                else (prior.escalated if prior is not None else decision.escalated),
                tool_calls=tuple(str(c.get("id", "")) for c in calls)[:MAX_TOOL_IDS],
                updated=time.time(),
            )
            key = self.ref.store
            if key is None:
                if reply is None:
                    return  # a conversation-keyed session is found by its reply
                if _chars(self.messages) > LONG_CHARS:
                    key = await asyncio.to_thread(reply_key, self.messages, reply, self.scope)
                else:
                    key = reply_key(self.messages, reply, self.scope)
            await store.set(key, state.to_json(), ttl)
        except Exception:  # noqa: BLE001 - a store outage costs stickiness, never the answer
            log.warning("session state not stored", exc_info=True)

    @closes("chunks")
    async def follow(
        self, decision: Decision, chunks: AsyncIterator, first: Any = None
    ) -> AsyncIterator:
        """Pass a stream's chunks through (`first` was already taken from it); close the turn
        with the reply they carried."""
        reply = ReplyCollector()
        if first is not None:
            reply.add(first)
        async for chunk in chunks:
            reply.add(chunk)
            yield chunk
        await self.close(decision, reply.message())


LONG_CHARS = 100_000  # a conversation longer than this is hashed in a worker thread


def _chars(messages: list[Message]) -> int:
    return sum(len(m.get("content") or "") for m in messages if isinstance(m.get("content"), str))


def reply_of(response: Any) -> Message | None:
    """The assistant message of a chat completion (litellm ModelResponse or a dict)."""
    choices = _get(response, "choices") or []
    if not choices:
        return None
    msg = _get(choices[0], "message")
    if msg is None:
        return None
    calls = []
    for c in _get(msg, "tool_calls") or []:
        fn = _get(c, "function")
        calls.append(
            {
                "id": _get(c, "id") or "",
                "type": "function",
                "function": {
                    "name": _get(fn, "name") or "",
                    "arguments": _get(fn, "arguments") or "",
                },
            }
        )
    out: Message = {"role": "assistant", "content": _get(msg, "content")}
    if calls:
        out["tool_calls"] = calls
    return out


class ReplyCollector:
    """Accumulates a streamed answer's first choice: its text and its tool calls by index."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict] = {}

    def add(self, chunk: Any) -> None:
        choices = _get(chunk, "choices") or []
        if not choices:
            return
        delta = _get(choices[0], "delta")
        if delta is None:
            return
        content = _get(delta, "content")
        if content:
            self.text.append(content)
        for tc in _get(delta, "tool_calls") or []:
            i = _get(tc, "index") or 0
            call = self.calls.setdefault(i, {"id": "", "name": "", "arguments": ""})
            if _get(tc, "id"):
                call["id"] = _get(tc, "id")
            fn = _get(tc, "function")
            if fn is not None:
                if _get(fn, "name"):
                    call["name"] = _get(fn, "name")
                if _get(fn, "arguments"):
                    call["arguments"] += _get(fn, "arguments")

    def message(self) -> Message:
        out: Message = {"role": "assistant", "content": "".join(self.text) or None}
        if self.calls:
            out["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for _, c in sorted(self.calls.items())
            ]
        return out


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)
