"""How `router profile` calls a catalogue model: the SDK's own keyword arguments (local GGUF
models on their own llama.cpp server), retried with backoff (tenacity) and nowhere else.

The provider client's hidden retries are off (`max_retries=0`, as the SDK's fallback chain
does): `--retries N` is the number of retries, a 429's `Retry-After` is waited for here, and a
result's latency is that of the one call that answered, not of the retries before it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.core.config import ModelSpec, RouterConfig
from router.core.data import DataError
from router.serving.local import LocalModels
from router.serving.providers import ModelUnavailable, call_kwargs, load_litellm


class ProfileError(DataError):
    """A profile run cannot start (bad model name, nothing to profile, ...)."""


@dataclass
class CallResult:
    text: str
    input_tokens: int
    output_tokens: int
    latency_ms: float
    logprobs: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    tool_calls: list[str] | None = None  # the names of the tools the reply called instead

    def no_answer(self, max_tokens: int) -> str | None:
        """Why a reply without text is no answer of the model's (an error, not a score of 0),
        or None. An empty reply the model ended itself is its answer, graded like any other."""
        if self.text.strip():
            return None
        if self.tool_calls:
            return f"no answer: the reply is a tool call ({', '.join(self.tool_calls)}), no text"
        if self.finish_reason == "length":
            return (
                f"no answer: the budget of {max_tokens} tokens ran out before any text "
                "(a reasoning model thinks first?); raise --max-tokens"
            )
        return None


# Retry waits: exponential from 0.5 s up to BACKOFF_MAX_S; a Retry-After is honoured up to
# RETRY_AFTER_MAX_S (a profile run is patient, but not for hours).
BACKOFF_MAX_S = 20.0
RETRY_AFTER_MAX_S = 120.0


class ModelCaller:
    """Calls catalogue models through litellm, like the SDK does (same keyword arguments,
    local GGUF models on their own llama.cpp server), with tenacity retries."""

    def __init__(
        self,
        config: RouterConfig,
        base_dir: Path,
        retries: int = 3,
        timeout: float | None = None,
        local_timeout: float = 180.0,
        threads: int = 1,
    ) -> None:
        self.threads = threads
        self.config = config
        self.base_dir = base_dir
        self.retries = retries
        self.timeout = timeout
        self.local_timeout = local_timeout
        self.local: LocalModels | None = None

    def start(self, names: Sequence[str]) -> None:
        """Start the llama.cpp servers of the local models among `names` (logprobs on)."""
        specs = [self.config.model(n) for n in names]
        local = [s for s in specs if s.is_local]
        if local:
            # One thread by default: on a busy machine llama.cpp threads wait on each other
            # (measured: 2 threads on 2 loaded cores ran at ~1 token/s).
            self.local = LocalModels(
                local,
                self.base_dir,
                start_timeout=self.local_timeout,
                threads=self.threads,
                logits_all=True,
            ).start()

    def stop(self) -> None:
        if self.local is not None:
            self.local.stop()
            self.local = None

    def kwargs(self, spec: ModelSpec) -> dict[str, Any]:
        try:
            # The SDK's own call arguments (model route, api_base, key, timeout), so a profiled
            # model is called exactly as routing would call it.
            kw = call_kwargs(spec, self.local, {})
        except ModelUnavailable as e:
            raise ProfileError(f"{spec.name}: {e}") from None
        if self.timeout is not None:
            kw["timeout"] = self.timeout
        # Retries are ours (`--retries`, Retry-After aware), not the provider client's hidden
        # ones, which multiplied them and counted their waits as the call's latency.
        kw.setdefault("max_retries", 0)
        return kw

    async def complete(
        self, spec: ModelSpec, messages: list[dict[str, str]], max_tokens: int, logprobs: bool
    ) -> CallResult:
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        litellm = load_litellm()
        kw = self.kwargs(spec)
        params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": 0.0}
        if logprobs:
            params.update(logprobs=True, top_logprobs=5)

        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=_retry_wait,
            retry=retry_if_exception(_retryable),
            reraise=True,
        ):
            with attempt:
                t0 = time.perf_counter()
                resp = await litellm.acompletion(messages=messages, **kw, **params)
                latency = (time.perf_counter() - t0) * 1000
        choice = resp.choices[0]
        message = choice.message
        calls = getattr(message, "tool_calls", None) or []
        usage = getattr(resp, "usage", None)
        return CallResult(
            text=message.content or "",
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            latency_ms=round(latency, 1),
            logprobs=_logprobs(choice) if logprobs else None,
            finish_reason=getattr(choice, "finish_reason", None),
            tool_calls=[str(getattr(getattr(c, "function", None), "name", "?")) for c in calls]
            or None,
        )


def _retry_wait(state: Any) -> float:
    """Seconds before the next attempt: the failure's Retry-After (seconds) when it gives one,
    else 0.5 s, 1 s, 2 s, ... up to BACKOFF_MAX_S."""
    backoff = min(0.5 * 2 ** (state.attempt_number - 1), BACKOFF_MAX_S)
    exc = state.outcome.exception() if state.outcome is not None else None
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    after = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        return min(max(0.0, float(after)), RETRY_AFTER_MAX_S) if after is not None else backoff
    except ValueError:  # an HTTP date: our own backoff
        return backoff


def _retryable(exc: BaseException) -> bool:
    """Retry time-outs, connection errors, 429 and 5xx; not a bad request, and never a
    cancellation (Ctrl-C must stop the run, not be retried)."""
    if not isinstance(exc, Exception):
        return False
    try:
        import litellm
    except ImportError:  # pragma: no cover
        return True
    permanent = (litellm.BadRequestError, litellm.AuthenticationError, litellm.NotFoundError)
    return not isinstance(exc, permanent + (ProfileError,))


def _logprobs(choice: Any) -> list[dict[str, Any]] | None:
    """[{token, logprob, top: {token: logprob}}] from an OpenAI-style choice, if present."""
    lp = getattr(choice, "logprobs", None)
    if lp is None:
        return None
    content = lp.get("content") if isinstance(lp, dict) else getattr(lp, "content", None)
    if not content:
        return None
    out = []
    for t in content:
        get = t.get if isinstance(t, dict) else lambda k, _t=t: getattr(_t, k, None)
        top = get("top_logprobs") or []
        out.append(
            {
                "token": get("token"),
                "logprob": round(float(get("logprob")), 4),
                "top": {
                    (x.get("token") if isinstance(x, dict) else x.token): round(
                        float(x.get("logprob") if isinstance(x, dict) else x.logprob), 4
                    )
                    for x in top
                },
            }
        )
    return out


__all__ = ["CallResult", "ModelCaller", "ProfileError"]
