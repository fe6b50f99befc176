"""What an SDK call that no model answered reports, when the chain's own error would mislead:
a prompt too long for every model that could be called is the caller's 400, not an outage."""

from __future__ import annotations

from typing import Any

from router.core.request import (
    CONTEXT_LENGTH_EXCEEDED,
    Message,
    context_overflow,
    request_facts,
)
from router.serving.providers import MODEL_UNAVAILABLE, UpstreamError


def window_error(
    router: Any,  # the SDK's Router (its policies and calls)
    e: UpstreamError,
    messages: str | list[Message],
    params: dict[str, Any],
) -> UpstreamError | None:
    """A routed call whose models were all unavailable (no key, local server down), while
    the models that could be called were left out because the prompt is too long for
    them, failed for the prompt's length: OpenAI's 400 `context_length_exceeded`, on which
    agents shorten the conversation, not an outage the client retries. None otherwise."""
    d = e.decision
    # MODEL_UNAVAILABLE: the chain called nothing (`ModelCalls.fail`).
    if d is None or params.get("model") or e.code != MODEL_UNAVAILABLE:
        return None
    tokens = request_facts(messages, params).prompt_tokens
    callable_short = [
        m
        for m in router.policy(d.policy).models
        if m.context_window < tokens and router.calls.available(m.name)
    ]
    if not callable_short:
        return None
    windows = ", ".join(f"{m.name}: {m.context_window}" for m in callable_short)
    unavailable = "; ".join(f"{a.model}: {a.error}" for a in d.attempts)
    widest = max(m.context_window for m in callable_short)
    return UpstreamError(
        f"{context_overflow(widest, tokens)} The prompt ({tokens} tokens) is longer than the "
        f"context window of every model that can be called now ({windows}); the models it "
        f"fits cannot be called ({unavailable})",
        d,
        400,
        CONTEXT_LENGTH_EXCEEDED,
        "messages",
    )
