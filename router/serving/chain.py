"""The fallback chain as a sans-I/O step machine, driven by `ModelCalls.run_chain` and
`ModelCalls.arun_chain` (router/serving/calls.py).

Like h11 and httpcore keep the protocol apart from the sockets, `FallbackChain` holds every
rule of the chain (breakers, retries with Retry-After, which errors fall back, the attempts
and the receipt) and performs no I/O: it tells its driver what to do next and is told what
happened. The sync and the async driver are a dozen lines each, so the two can never drift.

    chain = FallbackChain(calls, decision, params)
    step = chain.start()
    while True:
        if isinstance(step, Call):   # call model step.model with step.kwargs (litellm kwargs)
            try:
                result = call(step.kwargs)
            except Exception as e:
                step = chain.failed(e)
            else:
                step = chain.succeeded(result)
        elif isinstance(step, Sleep):  # wait, then retry the same model
            time.sleep(step.seconds)
            step = chain.slept()
        else:                        # Done: the answer and its Decision; or Failed: raise
            ...
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from router.core.config import RouterConfig
from router.core.decision import Attempt, Decision
from router.serving.breaker import Breakers
from router.serving.providers import (
    ModelUnavailable,
    falls_back,
    in_router_terms,
    retry_after_of,
)


@dataclass(frozen=True)
class Call:
    """Call `model` with these keyword arguments (litellm's: model, timeout, api_base ...)."""

    model: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Sleep:
    """Wait this long, then report `slept()`: the same model is tried again."""

    seconds: float


@dataclass(frozen=True)
class Done:
    """The chain succeeded: the call's result and the Decision of the model that answered."""

    result: Any
    decision: Decision


@dataclass(frozen=True)
class Failed:
    """Every model failed (or one failed in a way another cannot cure): raise `error`."""

    error: Exception


Step = Call | Sleep | Done | Failed


class Calls(Protocol):
    """What the chain needs of its driver (`router.serving.calls.ModelCalls`)."""

    config: RouterConfig
    breakers: Breakers

    def kwargs(self, name: str, params: dict[str, Any]) -> dict[str, Any]: ...

    def finish(self, decision: Decision, name: str, attempts: list[Attempt]) -> Decision: ...

    def fail(
        self, decision: Decision, attempts: list[Attempt], last: Exception | None
    ) -> Exception: ...

    def breaker_failure(self, name: str, exc: Exception) -> None: ...

    def redact(self, text: str) -> str: ...


class FallbackChain:
    """One request's walk down `decision.model, *decision.fallbacks`; no I/O inside."""

    def __init__(self, calls: Calls, decision: Decision, params: dict[str, Any]) -> None:
        self.calls = calls
        self.decision = decision
        self.params = params
        self.attempts: list[Attempt] = []
        self._names = iter([decision.model, *decision.fallbacks])
        self._name: str | None = None  # the model being tried
        self._kwargs: dict[str, Any] = {}
        self._dropped: tuple[str, ...] = ()  # parameters the current model's call leaves out
        self._tried = 0  # retries of the current model so far
        self._t0 = 0.0  # when the current model's first try started (its Attempt's time)
        self._last: Exception | None = None
        self._over = False

    # ---- what the driver reports ----------------------------------------------------------

    def start(self) -> Step:
        """The first step."""
        return self._next_model()

    def succeeded(self, result: Any) -> Step:
        """The last `Call` returned `result`."""
        name = self._current()
        self.calls.breakers.success(name)
        self.attempts.append(Attempt(name, True, None, _ms(self._t0), self._dropped))
        self._over = True
        return Done(result, self.calls.finish(self.decision, name, self.attempts))

    def failed(self, exc: Exception) -> Step:
        """The last `Call` raised `exc`: retry it, move down the chain, or give up."""
        name = self._current()
        wait = _retry_delay(exc, self._tried, self.calls.config.model(name).retries)
        if wait is not None:
            self._tried += 1
            return Sleep(wait)
        return self._give_up_on(name, exc)

    def slept(self) -> Step:
        """The `Sleep` is over: the same model again."""
        return Call(self._current(), self._kwargs)

    # ---- the rules --------------------------------------------------------------------------

    def _current(self) -> str:
        if self._name is None or self._over:
            raise RuntimeError("no call is in progress in this chain")
        return self._name

    def _next_model(self) -> Step:
        calls = self.calls
        for name in self._names:
            if not calls.breakers.allow(name):
                self.attempts.append(Attempt(name, False, CIRCUIT_OPEN, 0.0))
                continue
            self._name, self._tried, self._t0 = name, 0, time.perf_counter()
            try:
                kwargs = calls.kwargs(name, self.params)
            except Exception as e:  # noqa: BLE001 - e.g. ModelUnavailable: recorded, next
                return self._give_up_on(name, e)
            # Retries are ours (Retry-After aware), not the provider client's hidden ones.
            kwargs.setdefault("max_retries", 0)
            self._kwargs = kwargs
            self._dropped = tuple(k for k in self.params if k not in kwargs)
            return Call(name, kwargs)
        self._over = True
        return Failed(calls.fail(self.decision, self.attempts, self._last))

    def _give_up_on(self, name: str, exc: Exception) -> Step:
        """Record `name`'s failure; fall back to the next model unless `exc` forbids it."""
        calls = self.calls
        exc = in_router_terms(exc, calls.config.model(name), self.params)
        self.attempts.append(Attempt(name, False, _describe(exc, calls.redact), _ms(self._t0)))
        if self._last is None or not isinstance(exc, ModelUnavailable):
            # A model that answered with an error says more than one that could not be called:
            # a prompt too long for the local model stays a 400 when the large one has no key.
            self._last = exc
        calls.breaker_failure(name, exc)
        if not falls_back(exc):
            self._over = True
            return Failed(calls.fail(self.decision, self.attempts, exc))
        return self._next_model()


# The error of an Attempt skipped because the model's circuit breaker is open.
CIRCUIT_OPEN = "circuit open"

# Backoff between retries of one model: 0.5 s, 1 s, 2 s ...; a Retry-After longer than
# RETRY_MAX_WAIT_S is not waited for: the fallback chain moves on instead.
RETRY_BASE_S = 0.5
RETRY_MAX_WAIT_S = 10.0


def _retry_delay(e: Exception, tried: int, retries: int) -> float | None:
    """Seconds to wait before retrying after `e`, or None when it should not be retried.

    Only 429 and 5xx are retried (time-outs are not: they already cost the full timeout).
    """
    status = getattr(e, "status_code", None)
    if tried >= retries or not isinstance(status, int) or not (status == 429 or status >= 500):
        return None
    wait = retry_after_of(e)  # None for an HTTP date too: then our own backoff
    if wait is not None:
        return wait if wait <= RETRY_MAX_WAIT_S else None
    return min(RETRY_BASE_S * 2**tried, RETRY_MAX_WAIT_S)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


def _describe(e: Exception, redact: Callable[[str], str]) -> str:
    """An attempt's error: type, status, first line; secrets hidden before the line is cut (a
    key across the cut would keep its first part)."""
    status = getattr(e, "status_code", None)
    msg = redact(str(e).splitlines()[0])[:200] if str(e) else type(e).__name__
    return f"{type(e).__name__}{f' {status}' if status else ''}: {msg}"
