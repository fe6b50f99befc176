"""Calling catalogue models: litellm's arguments per model, which errors fall back or count
against a breaker, and the fallback chain driven with blocking or awaited calls.

The rules of the chain live in `FallbackChain` (sans-I/O); `ModelCalls` drives it and is what
the SDK, the cascade and the proxy's pass-through call models through.
"""

from __future__ import annotations

import asyncio
import copy
import os
from collections.abc import Callable, Iterable
from typing import Any

from router.core.config import RouterConfig
from router.core.decision import Attempt, Decision
from router.core.request import CONTEXT_LENGTH_EXCEEDED
from router.serving import tracing
from router.serving.breaker import Breakers
from router.serving.chain import CIRCUIT_OPEN, Call, Done, FallbackChain, Sleep
from router.serving.local import LocalModels
from router.serving.providers import (
    MODEL_UNAVAILABLE,
    UNAVAILABLE,
    UNSUPPORTED_PARAMETER,
    ModelUnavailable,
    UnsupportedParams,
    UpstreamError,
    call_kwargs,
    failure_status,
    is_context_overflow,
    is_fault,
    retry_after_of,
)
from router.serving.scrub import hide_quote, quotes_of


def all_unavailable(attempts: list[Attempt]) -> bool:
    """Whether there were attempts and none of their models could be called at all (no key,
    local server down): nothing was sent upstream."""
    return bool(attempts) and all((a.error or "").startswith(UNAVAILABLE) for a in attempts)


class ModelCalls:
    """The catalogue's models as something to call: arguments, breakers, local servers."""

    def __init__(self, config: RouterConfig, breakers: Breakers | None = None) -> None:
        self.config = config
        self.breakers = breakers or Breakers(config.breaker.failures, config.breaker.cooldown_s)
        # Local GGUF models' servers (router/serving/local.py), once started.
        self.local: LocalModels | None = None
        # OpenTelemetry (router/serving/tracing.py): a span per call; None when tracing is off.
        self.tracer = tracing.tracer_for(config.tracing)
        # A request's prompt texts (`hiding`), and the quotes made of them once needed.
        self._quote_texts: Iterable[str] = ()
        self._quotes: list[str] | None = None

    def kwargs(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        return call_kwargs(self.config.model(name), self.local, params)

    def available(self, name: str) -> bool:
        """Can model `name` be called now (its key set, its local server up)?"""
        try:
            self.kwargs(name, {})
        except ModelUnavailable:
            return False
        return True

    def hiding(self, quotes: Iterable[str]) -> ModelCalls:
        """These calls (the same breakers, servers and tracer) for one request whose prompt
        is `quotes`: an upstream error that quotes it is described without the quote, so no
        attempt, reason, trace span or log row carries the prompt."""
        view = copy.copy(self)
        view._quote_texts, view._quotes = tuple(quotes), None  # sorted on the first failure
        return view

    def provider_keys(self) -> list[str]:
        """The catalogue's provider keys (the values of its `api_key_env`s), longest first."""
        keys = {os.environ.get(m.api_key_env, "") for m in self.config.models if m.api_key_env}
        return sorted((k for k in keys if k), key=len, reverse=True)

    def redact(self, text: str) -> str:
        """`text` with every provider key hidden, and every quote of the request's prompt
        (`hiding`): upstream errors may quote what they were sent, and the attempts, reasons
        and spans made from them leave the process."""
        for key in self.provider_keys():
            text = text.replace(key, "***")
        if self._quotes is None:
            self._quotes = quotes_of(self._quote_texts)
        for quote in self._quotes:
            text = hide_quote(text, quote)
        return text

    def finish(self, decision: Decision, name: str, attempts: list[Attempt]) -> Decision:
        """The decision of the model that answered, with every attempt and a plain note."""
        if name == decision.model:
            decision.attempts = attempts
            return decision
        failed = [a for a in attempts if not a.ok]
        note = f"fell back to {name} after " + ", ".join(f"{a.model} ({a.error})" for a in failed)
        # Only unavailable models before it (no key, local server down): say so plainly.
        if all_unavailable(failed):
            whys = [(a.model, (a.error or "").removeprefix(UNAVAILABLE)) for a in failed]
            why = whys[0][1] if len(whys) == 1 else ", ".join(f"{m}: {w}" for m, w in whys)
            note = f"wanted {decision.model}, unavailable ({why}); answered by {name}"
        return decision.answered_by(name, self.config.model(name).tier, attempts, note)

    def fail(
        self, decision: Decision, attempts: list[Attempt], last: Exception | None
    ) -> UpstreamError:
        decision.attempts = attempts
        detail = "; ".join(f"{a.model}: {a.error}" for a in attempts)
        code = failure_status(last)
        if attempts and all(a.error == CIRCUIT_OPEN for a in attempts):
            code = 503  # nothing was called: every model's breaker is open
        message = f"every model in the chain failed: {detail}"
        if is_context_overflow(last):
            return UpstreamError(message, decision, code, CONTEXT_LENGTH_EXCEEDED, "messages")
        if isinstance(last, UnsupportedParams):
            return UpstreamError(message, decision, 400, UNSUPPORTED_PARAMETER, last.names[0])
        if all_unavailable(attempts):
            # Nothing was called (no key, local server down): the router's own configuration
            # or state, not a model that misbehaved (a 502), as the pass-through endpoints say.
            message = f"no model in the chain can be called: {detail}"
            return UpstreamError(message, decision, 503, MODEL_UNAVAILABLE)
        failed = UpstreamError(message, decision, code)
        if code == 429:
            failed.retry_after = retry_after_of(last)  # the client is told to wait as long
        return failed

    def breaker_failure(self, name: str, exc: Exception) -> None:
        if is_fault(exc):
            self.breakers.failure(name)
        else:
            # Not the model's fault, but a half-open trial slot must not stay claimed.
            self.breakers.release(name)

    async def arun_chain(self, decision: Decision, params: dict, call: Callable[[dict], Any]):
        """Try `await call(litellm kwargs)` on the chosen model, then down the fallback chain
        (the rules are `FallbackChain`'s; this drives it)."""
        chain = FallbackChain(self, decision, params)
        step = chain.start()
        tries = 0
        while True:
            if isinstance(step, Call):
                tries += 1
                span = tracing.start_attempt(self.tracer, step.model, tries)
                try:
                    with tracing.use(span):
                        result = await call(step.kwargs)
                except Exception as e:  # noqa: BLE001 - every upstream failure is recorded
                    tracing.end_attempt(span, e, self.redact)
                    step = chain.failed(e)
                else:
                    tracing.end_attempt(span)
                    step = chain.succeeded(result)
            elif isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                step = chain.slept()
            elif isinstance(step, Done):
                return step.result, step.decision
            else:
                raise step.error
