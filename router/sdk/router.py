"""The SDK: `Router.route()` decides, `chat()` / `achat()` call the chosen model (directly for
an OpenAI-compatible endpoint, through litellm otherwise: router/serving/upstream.py).

Upstream calls follow the decision's fallback chain on errors and time-outs; the Decision that
comes back with the answer records every attempt.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from router.core.config import (
    DecisionLogSpec,
    RouterConfig,
    check_default_policy,
    load_config,
    load_policies,
)
from router.core.data import domain_names
from router.core.decision import Decision
from router.core.drift import DriftMonitor
from router.core.encoder import load_encoder
from router.core.policy import CompiledPolicy
from router.core.privacy import detect, prompt_of, redact_call, redact_messages
from router.core.request import (
    Message,
    RequestError,
    RequestFacts,
    message_text,
    normalise_messages,
    request_facts,
    routing_text,
)
from router.core.scorer import ScoreBatch, Scorer, configured_scorer_path
from router.sdk import caching, logged
from router.sdk.checks import (
    check_call_params,
    check_litellm_settings,
    check_params,
    check_parts,
    check_session,
    checked_conversation,
    checked_messages,
    unknown_policy,
)
from router.sdk.estimates import comparable_pairs, incomparable_pairs, success_columns
from router.sdk.failures import window_error
from router.sdk.streams import AsyncRoutedStream, RoutedStream, ask_usage, carries_nothing, prepend
from router.serving import cascade, tracing, upstream
from router.serving.background import run_sync
from router.serving.breaker import Breakers
from router.serving.budget import Budgets
from router.serving.cache import ResponseCache, open_cache
from router.serving.calls import ModelCalls
from router.serving.local import LocalModels
from router.serving.media_urls import guard_media_urls
from router.serving.providers import EmptyStream, UpstreamError
from router.serving.sessions import Sessions, reply_of, session_ref, stick, tool_loop_calls
from router.serving.state import StateStore, open_state

if TYPE_CHECKING:  # sqlalchemy loads only when a log is opened: fast cold starts
    from router.serving.decision_log import DecisionLog

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

log = logging.getLogger("router.sdk")


@dataclass
class Routed:
    """One routed request: its decision, the facts the hard rules saw, and the routing vector
    (None without text), which the semantic cache reuses."""

    decision: Decision
    facts: RequestFacts
    vector: np.ndarray | None


class Router:
    """Embed, score, decide; then call the chosen model with fallbacks. `from_config(path)`
    builds one from a config file; the constructor takes the parts that loads."""

    def __init__(
        self,
        config: RouterConfig | None = None,
        policies: dict | None = None,
        scorer: Scorer | None = None,
        encoder: Any = None,
    ) -> None:
        check_parts(config, policies, scorer, encoder)  # else: Router.from_config(path)
        self.config = config
        self.policies = policies
        self.scorer = scorer
        self.encoder = encoder
        # Model calls: arguments, breakers, fallback chains, local servers (router/serving).
        self.calls = ModelCalls(config)
        self.base_dir = Path.cwd()  # where relative gguf paths start; from_config: its folder
        # Shared state (router/serving/state.py): session state and counters; in process by default,
        # in Redis with `state: redis://...` (falls back to in process during an outage).
        self.state: StateStore = getattr(self, "state", None) or open_state(config.state)
        # Sticky conversations and tool loops (router/serving/sessions.py), applied around route().
        self.sessions = Sessions(self)
        # Rows of chat() / achat() calls and their feedback (open_decision_log); off: None.
        self.decision_log: DecisionLog | None = None
        if config.default_policy not in policies:
            raise RequestError(f"default_policy {config.default_policy!r} has no policy file")
        domains = scorer.domains_
        self._compiled = {
            n: CompiledPolicy(p, config.models, domains, config.privacy)
            for n, p in policies.items()
        }
        # Answers served again (router/serving/cache.py); None when no policy caches. A hot
        # reload hands the old cache over when the cache settings and encoder stay.
        self.response_cache: ResponseCache | None = getattr(
            self, "response_cache", None
        ) or open_cache(config.cache, policies.values())
        # Which scorer success column stands for each catalogue model: its own (by profile or
        # name), else a stand-in that every receipt names (`unprofiled`).
        self._success_col, self.unprofiled = success_columns(config, scorer.models_)
        self.comparable = comparable_pairs(self._success_col, scorer)
        for name, compiled in self._compiled.items():
            # A policy weighing success against cost compares its models' estimates directly.
            if compiled.policy.escalation.cost_weight is None:
                continue
            pairs = incomparable_pairs(compiled.names, self._success_col, self.comparable)
            if pairs:
                log.warning(
                    "policy %r weighs success estimates learned on different prompts (%s): "
                    "their base rates differ as much as the requests do; profile these models "
                    "on the same prompts (router profile) for cost_weight to compare them",
                    name,
                    ", ".join(f"{a} / {b}" for a, b in pairs),
                )
        # Budget controllers of the policies with a `budget:` (the proxy syncs their counters).
        self.budgets = Budgets(policies)
        # Live scores against the scorer's training distributions (no-op for an old scorer).
        ds = config.drift
        self.drift = DriftMonitor(
            getattr(scorer, "training_distributions_", None),
            ds.window,
            ds.threshold,
            ds.min_samples,
        )
        self.config_path: Path | None = None  # from_config: the file, for hot reload
        self.closed = False  # close(): chat() refuses, resources released

    @classmethod
    def from_config(cls, path: str | Path = "config.yaml", start_local: bool = False) -> Router:
        """Load the catalogue, policies, encoder and scorer named by a `config.yaml`.

        `start_local=True` also starts the llama.cpp servers of its GGUF models (`start_local`).
        """
        path = Path(path)
        config = load_config(path)
        base = path.resolve().parent
        policies = load_policies(base / config.policies_dir, config, domain_names())
        check_default_policy(path, config, policies)
        enc = load_encoder(
            config.encoder.name,
            config.encoder.max_tokens,
            config.encoder.cache_size,
            threads=config.encoder.threads,
        )
        scorer_path = configured_scorer_path(config.scorer, base)
        scorer = Scorer.load(scorer_path, encoder_identity=enc.identity)
        router = cls(config, policies, scorer, enc)
        router.base_dir = base
        router.config_path = path.resolve()
        router.warm_up()
        if start_local:
            router.start_local()
        return router

    @property
    def breakers(self) -> Breakers:
        return self.calls.breakers

    @breakers.setter
    def breakers(self, value: Breakers) -> None:
        self.calls.breakers = value

    @property
    def tracer(self) -> Any:
        """The OpenTelemetry tracer of `tracing:` (router/serving/tracing.py); None when off."""
        return self.calls.tracer

    @tracer.setter
    def tracer(self, value: Any) -> None:
        self.calls.tracer = value

    @property
    def local(self) -> LocalModels | None:
        """Local GGUF models' servers, once `start_local()` ran."""
        return self.calls.local

    @local.setter
    def local(self, value: LocalModels | None) -> None:
        self.calls.local = value

    # ---- local models -----------------------------------------------------------------------

    @property
    def local_models(self) -> list[str]:
        """Catalogue models served from a GGUF file by a server the router starts."""
        return [m.name for m in self.config.models if m.is_local]

    def start_local(self, timeout: float = 120.0, strict: bool = True) -> LocalModels | None:
        """Start (once) a llama.cpp server per GGUF model; waits until each answers.

        Stopped by `stop_local()` or at interpreter exit. Until started, such a model is
        unavailable and its fallbacks answer. `strict=False`: a server that does not come up
        is retried in the background instead of raising.
        """
        if self.local is None and self.local_models:
            self.local = LocalModels(self.config.models, self.base_dir, start_timeout=timeout)
            try:
                self.local.start(strict=strict)
            except Exception:
                self.local = None
                raise
        return self.local

    def stop_local(self) -> None:
        if self.local is not None:
            self.local.stop()
            self.local = None

    # ---- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Release what the router holds: its decision log (flushed), the local model servers,
        the response cache and the shared-state connections. Afterwards `route()` still works; `chat()` raises.
        `with Router.from_config(...) as router:` closes it at the end of the block. This is
        `aclose()` run on the SDK's background loop, where `chat()` ran."""
        if not self.closed:
            run_sync(self.aclose())

    async def aclose(self) -> None:
        """`close()` for asyncio (`async with`): the blocking part runs in a worker thread."""
        if self.closed:
            return
        self.closed = True
        log_, self.decision_log = self.decision_log, None
        try:
            if log_ is not None:
                await asyncio.to_thread(log_.close)
        finally:
            await asyncio.to_thread(self.stop_local)
            if self.response_cache is not None:
                await self.response_cache.close()  # its own Redis connections, if any
            await self.state.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def warm_up(self) -> None:
        """Run one text through encoder and scorer, and load the answer verifiers the policies'
        cascades name, so the first real request is not slow: a verifier loads in about a
        second, which the cascade's flow would otherwise spend on the event loop."""
        text = "warm-up"
        self.scorer.predict(self.encoder.encode([text]), [text])
        self.encoder._cache.pop(text, None)
        for compiled in self._compiled.values():
            spec = compiled.policy.cascade
            if spec is not None and spec.verifier != "llm":
                cascade.verifier_at(spec.verifier)

    # ---- routing ----------------------------------------------------------------------------

    def policy(self, name: str | None = None) -> CompiledPolicy:
        name = name or self.config.default_policy
        try:
            return self._compiled[name]
        except KeyError:
            raise unknown_policy(name, self._compiled) from None

    def text_of(self, messages: str | list[Message]) -> str:
        rt = self.config.routing_text
        return routing_text(messages, rt.max_chars, rt.context_chars, rt.system_chars)

    def _check_size(self, messages: list[Message]) -> None:
        size = sum(len(message_text(m)) for m in messages)
        if size > self.config.routing_text.max_input_chars:
            raise RequestError(
                f"messages hold {size} characters of text, over the limit of "
                f"{self.config.routing_text.max_input_chars}",
                "messages",
            )

    def route(
        self,
        messages: str | list[Message],
        policy: str | None = None,
        model: str | None = None,
        **params: Any,
    ) -> Decision:
        """Decide which model should answer; no model is called.

        `model` pins a catalogue model (the hard rules listed before `pin` still apply);
        `params` are the OpenAI request parameters the hard rules look at (tools,
        response_format, max_tokens, stream). The session (`session=`, `session_scope=`, else
        `metadata.session_id`, `user` or the conversation) applies as `chat()` would apply it,
        read only: the decision is the one `chat()` would make now, and no turn is recorded.
        A turn whose session may hold state (a session id, a conversation with a reply, a tool
        loop) is `aroute` run on the SDK's background event loop, where the state is read; any
        other is routed in the caller's thread.
        """
        session, scope = params.pop("session", None), params.pop("session_scope", None)
        check_session(session, scope)
        msgs = checked_messages(messages)
        check_call_params(params)
        rules = self.sessions.rules(policy)
        ref = session_ref(msgs, params, session, scope, rules)
        if (ref is not None and ref.lookup is not None) or tool_loop_calls(msgs):
            return run_sync(
                self.aroute(msgs, policy, model, session=session, session_scope=scope, **params)
            )
        # Nothing stored can apply: `stick` (as `Sessions.open` calls it) only names the session.
        d = self.routed([msgs], policy, model, params)[0].decision
        return stick(d, ref, None, None, rules, {}, (), (0, 0), pinned=model is not None)

    async def aroute(
        self,
        messages: str | list[Message],
        policy: str | None = None,
        model: str | None = None,
        **params: Any,
    ) -> Decision:
        """`route()` for asyncio: routing runs in a worker thread so the loop never blocks."""
        session, scope = params.pop("session", None), params.pop("session_scope", None)
        check_session(session, scope)
        msgs = checked_messages(messages)
        check_call_params(params)
        turn = await self.sessions.open(msgs, policy, model, params, session, scope)
        return turn.decision

    def decide_inputs(self, batch: ScoreBatch, r: int) -> dict[str, Any]:
        """What the policy's `decide` takes from row `r` of a scored batch, by name: the scores,
        each catalogue model's success estimate and its evidence, the unprofiled models and
        the pairs of estimates that may be multiplied."""
        cols = self._success_col
        evidence = {}
        if batch.evidence is not None:
            # A stand-in's estimate is borrowed: none of its evidence is this model's.
            evidence = {
                name: {"rows": 0, "neighbours": 0.0}
                if name in self.unprofiled
                else {
                    "rows": int(batch.rows[col]),
                    "neighbours": round(float(batch.evidence[r, col]), 2),
                }
                for name, col in cols.items()
            }
        return {
            "domain_probs": batch.domain_probs[r],
            "difficulty": float(batch.difficulty[r]),
            "success": {name: float(batch.success[r, col]) for name, col in cols.items()},
            "gain": float(batch.gain[r]),
            "evidence": evidence,
            "unprofiled": self.unprofiled,
            "comparable": self.comparable,
        }

    def route_many(
        self,
        conversations: list[str | list[Message]],
        policy: str | None = None,
        model: str | None = None,
        **params: Any,
    ) -> list[Decision]:
        """Route several requests with one encoder call (what a busy proxy wants)."""
        if isinstance(conversations, list | tuple):  # else `routed` says what it takes
            conversations = [checked_conversation(i, c) for i, c in enumerate(conversations)]
        check_call_params(params)
        return [r.decision for r in self.routed(conversations, policy, model, params)]

    def routed(
        self,
        conversations: list[str | list[Message]],
        policy: str | None,
        model: str | None,
        params: dict[str, Any],
    ) -> list[Routed]:
        """`route_many`, with each request's facts and routing vector."""
        t0 = time.perf_counter()
        if not isinstance(conversations, list | tuple):
            # A string would be routed one character at a time.
            raise RequestError(
                "route_many takes a list of conversations (each a string or a list of chat "
                "messages); route() takes one",
                "messages",
            )
        check_params(params)
        compiled = self.policy(policy)
        msgs = [normalise_messages(c) for c in conversations]
        for m in msgs:
            self._check_size(m)
        privacy = compiled.privacy
        facts = [
            request_facts(
                m,
                params,
                self.config.expected_output_tokens,
                pinned_model=model,
                private=detect(prompt_of(m, params), privacy.detect)
                if privacy.action != "off"
                else (),
            )
            for m in msgs
        ]
        texts = [self.text_of(m).strip() for m in msgs]
        with_text = [i for i, t in enumerate(texts) if t]
        batch = vectors = None
        if with_text:
            scored = [texts[i] for i in with_text]
            vectors = self.encoder.encode(scored)
            batch = self.scorer.predict(vectors, scored)
        out: list[Decision] = []
        row_of = {i: r for r, i in enumerate(with_text)}
        budget = self.budgets.get(compiled.policy.name)
        for i, f in enumerate(facts):
            r = row_of.get(i)
            # A budget's moved threshold is an input of the (pure) policy.
            esc = budget.escalation(compiled.policy) if budget is not None else None
            if r is None:
                d = compiled.decide(f, None, None, {}, escalation=esc, unprofiled=self.unprofiled)
            else:
                d = compiled.decide(f, escalation=esc, **self.decide_inputs(batch, r))
            if budget is not None:
                budget.record(d, esc)
            # Drift compares the scorer's own outputs with its training distributions: the
            # gain head's, not the receipt's blend of it (`gain_estimate`).
            head_gain = None if r is None else float(batch.gain[r])
            self.drift.observe(d.domain, d.difficulty, head_gain)
            vector = None if r is None else np.array(vectors[r], dtype=np.float32)
            out.append(Routed(d, f, vector))
        elapsed = (time.perf_counter() - t0) * 1000 / max(1, len(out))
        for routed in out:
            routed.decision.routing_ms = round(elapsed, 3)
        return out

    # ---- privacy ----------------------------------------------------------------------------

    def outgoing(self, messages: list[Message], decision: Decision, params: dict) -> tuple:
        """The messages and parameters that leave for the models: with `privacy.action:
        redact`, each private value replaced by a typed placeholder (a `prediction` too)."""
        p = decision.privacy
        if not p or not p.get("redacted"):
            return messages, params
        return redact_call(messages, params, self.policy(decision.policy).privacy.detect)

    def loggable_text(self, messages: list[Message], decision: Decision | None) -> str:
        """The routing text as the decision log may keep it: never a detected private value."""
        if decision is not None and decision.privacy:
            detected = self.policy(decision.policy).privacy.detect
            messages = redact_messages(messages, detected)
        return self.text_of(messages).strip()

    # ---- the decision log and feedback -------------------------------------------------------

    def open_decision_log(self, location: str | Path | None = None) -> DecisionLog:
        """Record a row for every `chat()` / `achat()` call, so `feedback()` can score it.

        `location` (a SQLite path or postgresql:// URL) defaults to the config's
        `decision_log` section; a relative path starts at the config's folder. The HTTP proxy
        keeps a log of its own: a Router handed to `create_app` needs none.
        """
        spec = self.config.decision_log or DecisionLogSpec()
        where = location if location is not None else spec.url
        if "://" not in str(where) and not Path(where).is_absolute():
            where = self.base_dir / where
        if self.decision_log is not None:
            self.decision_log.close()
        from router.serving.decision_log import open_decision_log

        self.decision_log = open_decision_log(where, spec, self, base_dir=self.base_dir)
        return self.decision_log

    def feedback(self, request_id: str, score: float | str, model: str | None = None) -> None:
        """Score the answer to a request (`decision.request_id`): a number in [0, 1], or
        "up" / "down". The last call per request (and model) wins. Raises KeyError for an
        unknown id, ValueError for a bad score, RuntimeError without a decision log."""
        if self.decision_log is None:
            raise RuntimeError("feedback needs a decision log: call open_decision_log() first")
        from router.serving.decision_log import feedback_score

        self.decision_log.record_outcome(request_id, feedback_score(score), "feedback", model)

    # ---- calling models ---------------------------------------------------------------------

    def chat(self, messages: str | list[Message], policy: str | None = None, **params: Any):
        """Route, then call the model (OpenAI parameters pass through); `.decision` is attached.

        `model` in params pins a catalogue model. With `stream=True` the result is an iterator
        of chunks with `.decision`; a failure before the first chunk falls back, one after it
        is raised (part of the answer is already out). A cache hit calls no model. This is
        `achat` run on the SDK's background event loop (router/serving/background.py).
        """
        result = run_sync(self.achat(messages, policy, **params))
        if isinstance(result, AsyncRoutedStream):
            return RoutedStream(result)
        return result

    async def achat(
        self,
        messages: str | list[Message],
        policy: str | None = None,
        *,
        body_checked: bool = False,
        **params: Any,
    ):
        """Route, then call the model: `chat()` for asyncio. Routing runs in a worker thread so
        the loop never blocks. `body_checked`: the proxy's call, whose JSON body its schema
        checked (router/server/schema.py), so the Python values checked here cannot occur, and
        a field it passes on unjudged is not a typo of a parameter's name."""
        if self.closed:
            raise RuntimeError(
                "this Router is closed: chat() and achat() need an open router (route() works)"
            )
        if not body_checked:
            messages = checked_messages(messages)
            check_call_params(params)
            await check_litellm_settings(params)  # and litellm's own: `fallbacks` ...
        with tracing.span(self.tracer, tracing.CHAT) as span:
            routed: list[Decision] = []  # the decision, once made
            try:
                result = await self._achat(messages, policy, routed, **params)
            except asyncio.CancelledError as e:
                # The caller gave up before the answer. The decision goes with the
                # cancellation, so a caller that records it (the proxy's 499 row) can name the
                # model, and the SDK's own log keeps the row as the proxy's does.
                e.decision = routed[0] if routed else None
                if routed and self.decision_log is not None:
                    msgs = normalise_messages(messages)
                    logged.log_call(
                        self, routed[0], msgs, status=499, error="cancelled before the answer"
                    )
                raise
            except UpstreamError as e:
                failure = window_error(self, e, messages, params) or e
                tracing.annotate(span, failure.decision)
                seq = logged.log_failure(self, failure, messages)  # as the proxy's row
                if seq is not None:
                    await self.decision_log.adurable(seq)
                if failure is e:
                    raise
                raise failure from None
            tracing.annotate(span, result.decision)
            return result

    async def _achat(
        self,
        messages: str | list[Message],
        policy: str | None,
        routed: list[Decision],
        **params: Any,
    ):

        pin = params.pop("model", None)
        msgs = normalise_messages(messages)
        session, scope = params.pop("session", None), params.pop("session_scope", None)
        check_session(session, scope)
        # No URL a model call would fetch may reach this machine or its network (SSRF).
        await guard_media_urls(msgs, self.config.server.private_url_hosts)
        with tracing.span(self.tracer, tracing.ROUTE) as span:
            turn = await self.sessions.open(msgs, policy, pin, params, session, scope)
            tracing.annotate(span, turn.decision)
        cp = await caching.plan(self, turn.decision, msgs, params, turn.vector, turn.private, scope)
        if cp.hit is not None:
            result = await self._from_cache(turn, cp, msgs, params)
            if params.get("stream"):
                stream = AsyncRoutedStream(cp.decision, result[0], _aiter(result[1:]))
                # What the hit's tokens were, as a routed stream counts the usage it did not
                # pass on: else its cost and all-large counterfactual would be estimated.
                stream.usage = caching.usage_of(cp.hit)
                return stream
            return result
        decision = cp.decision
        routed.append(decision)
        # The chain reads litellm (parameters, error mapping): imported here in a worker
        # thread, not by the first call on the caller's loop, timed as its first attempt.
        await upstream.litellm_ready()
        send, params = self.outgoing(msgs, decision, params)  # redacted when the rule says
        calls = self.calls.hiding(message_text(m) for m in send)  # errors quote the prompt
        if params.get("stream"):
            params, asked = ask_usage(params)

            async def open_stream(kw: dict):
                # Direct for an OpenAI-compatible endpoint (router/serving/upstream.py).
                it = (await upstream.acompletion(send, **kw)).__aiter__()
                first = await it.__anext__()
                if carries_nothing(first):
                    # litellm makes up one empty "stop" chunk for a body that was not SSE.
                    try:
                        nxt = await it.__anext__()
                    except StopAsyncIteration:
                        raise EmptyStream("the upstream stream carried no answer") from None
                    it = prepend(nxt, it)
                return it, first

            if cascade.is_judged(decision):  # the cheap answer is held and judged first
                it, decision, held = await cascade.arun(
                    calls,
                    self.policy(decision.policy),
                    decision,
                    send,
                    params,
                    open_stream,
                    self.text_of(send),
                )
                first, it = held[0], cascade.aheld_then(held[1:], it)
            else:
                (it, first), decision = await calls.arun_chain(decision, params, open_stream)
            rest = caching.astore_stream(
                self, cp, decision, turn.follow(decision, it, first), first
            )
            if self.decision_log is None:
                return AsyncRoutedStream(decision, first, rest, hide_usage=not asked)
            seq, end = logged.log_start(self, decision, msgs)
            await self.decision_log.adurable(seq)
            routed = AsyncRoutedStream(
                decision, first, logged.alogged(rest, end), hide_usage=not asked
            )
            weakref.finalize(routed, end, 499, None, "stream left unread")
            return routed

        async def call(kw: dict):
            return await upstream.acompletion(send, **kw)  # direct httpx for OpenAI-compatible

        if cascade.is_judged(decision):
            resp, decision, _ = await cascade.arun(
                calls,
                self.policy(decision.policy),
                decision,
                send,
                params,
                call,
                self.text_of(send),
            )
        else:
            resp, decision = await calls.arun_chain(decision, params, call)
        return await self._answered(turn, cp, decision, msgs, resp)

    async def _from_cache(self, turn: Any, cp: caching.CachePlan, msgs: list, params: dict):
        """A cache hit: the answer (or its stream chunks) with no model called; the session
        and the decision log see the turn as any other."""
        decision = cp.decision
        await upstream.litellm_ready()  # the answer is litellm's type; its import is seconds
        resp = await self._answered(
            turn, cp, decision, msgs, caching.response_of(cp.hit, decision.model)
        )
        if params.get("stream"):
            return caching.chunks_of(cp.hit, decision.model, params)
        return resp

    async def _answered(
        self, turn: Any, cp: caching.CachePlan, decision: Decision, msgs: list, resp: Any
    ):
        """A whole answer, before the caller gets it: the session remembers it, the cache
        keeps it (not a hit again), and the decision log holds its row durably."""
        await turn.close(decision, reply_of(resp))
        await caching.store(self, cp, decision, resp)
        seq = logged.log_call(self, decision, msgs, getattr(resp, "usage", None))
        if self.decision_log is not None:
            await self.decision_log.adurable(seq)
        resp.decision = decision
        return resp


async def _aiter(items: list):
    for item in items:
        yield item
