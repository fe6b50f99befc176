"""The SDK's decision-log rows, through the same `DecisionLog` (and spool) as the proxy's:
a whole answer's row before it is handed over, and a stream's write-ahead row (its decision)
before its first chunk, completed when the stream ends, fails or is left unread."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from router.core.request import normalise_messages
from router.sdk.streams import stream_failure_status
from router.serving.closing import ClosingStream

if TYPE_CHECKING:
    from router.core.decision import Decision
    from router.core.request import Message
    from router.serving.providers import UpstreamError

End = Callable[[int, Any, "str | None"], None]  # (status, usage, error) → completes the row


def log_call(
    router: Any,  # the SDK's Router (its decision_log and loggable_text)
    decision: Decision,
    msgs: list[Message],
    usage: Any = None,
    *,
    status: int | None = 200,
    error: str | None = None,
    started_at: float | None = None,
    scrub: Callable[[str | None], str | None] | None = None,
) -> int | None:
    """Spool the row of one SDK call; gives the decision its request id (unless `started_at`,
    the time of the stream's write-ahead row this one completes, whose `scrub` it reuses).
    Returns the spool item for `DecisionLog.durable` (None without a log)."""
    if router.decision_log is None:
        return None
    from router.serving.decision_log import decision_row

    if started_at is None:
        decision.request_id = "req_" + uuid.uuid4().hex
    scrub = scrub or _scrub(router, decision, msgs)
    tokens = None
    if usage is not None and getattr(usage, "prompt_tokens", None) is not None:
        tokens = (usage.prompt_tokens, usage.completion_tokens or 0)
    row = decision_row(
        decision,
        decision.request_id,
        kind="sdk.chat",
        ts=started_at,
        status=status,
        # A stream's write-ahead row carried the text (and so the embedding) already.
        routing_text=None if started_at is not None else router.loggable_text(msgs, decision),
        usage=tokens,
        requested_model="router",
        stream=started_at is not None,
        error=None if error is None else scrub(error)[:300],
        scrub=scrub,
    )
    return router.decision_log.record(row)


def log_failure(router: Any, e: UpstreamError, messages: str | list[Message]) -> int | None:
    """The row of a call that no model answered, as the proxy writes one for every request:
    its decision, every failed attempt, the status and the error."""
    if router.decision_log is None or e.decision is None:
        return None
    msgs = normalise_messages(messages)
    return log_call(router, e.decision, msgs, status=e.status_code, error=str(e))


def _scrub(router: Any, decision: Decision, msgs: list[Message]):
    """The row's error texts (reason, attempts, a failed stream's error) with the provider keys
    and, unless the log keeps the text anyway (`store_text`), quotes of the prompt hidden, as
    the proxy scrubs its rows. A detected private value is hidden whatever `store_text` says."""
    from router.core import privacy
    from router.core.request import message_text
    from router.serving.scrub import scrubber

    quotes = [] if router.decision_log.store_text else [message_text(m) for m in msgs]
    if decision.privacy:
        quotes += privacy.values(msgs, router.policy(decision.policy).privacy.detect)
    return scrubber(router.calls.redact, quotes)


def log_start(router: Any, decision: Decision, msgs: list[Message]) -> tuple[int | None, End]:
    """A stream's write-ahead row, spooled before its first chunk is handed over →
    (spool item, `end(status, usage, error)` that completes the row, once)."""
    from router.serving.decision_log import decision_row

    decision.request_id = "req_" + uuid.uuid4().hex
    ts = time.time()
    scrub = _scrub(router, decision, msgs)
    seq = router.decision_log.start(
        decision_row(
            decision,
            decision.request_id,
            kind="sdk.chat",
            ts=ts,
            status=None,
            routing_text=router.loggable_text(msgs, decision),
            requested_model="router",
            stream=True,
            scrub=scrub,
        )
    )
    ended = False

    def end(status: int, usage: Any, error: str | None) -> None:
        nonlocal ended
        if not ended:
            ended = True
            log_call(
                router,
                decision,
                msgs,
                usage,
                status=status,
                error=error,
                started_at=ts,
                scrub=scrub,
            )

    return seq, end


def alogged(chunks: AsyncIterator, end: End) -> AsyncIterator:
    """Chunks passed through; `end` completes the stream's row when they end (200), fail (504
    for a time-out, else 502, as the proxy says: `stream_failure_status`; with the error) or
    are closed early (499), also before this layer read a chunk (the caller took only the
    first one, read ahead of it, or none)."""
    return _Logged(_alogged(chunks, end), chunks, end)


class _Logged(ClosingStream):
    """`ClosingStream` whose close completes the row: a generator closed before it started
    never runs its `finally`, and the row stayed open for as long as the stream was kept."""

    def __init__(self, gen: AsyncIterator, source: AsyncIterator, end: End) -> None:
        super().__init__(gen, source)
        self._end = end

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            self._end(499, None, "stream closed early")  # a no-op once the row is complete


async def _alogged(chunks: AsyncIterator, end: End) -> AsyncIterator:
    usage, status, error = None, 499, "stream closed early"
    try:
        async for chunk in chunks:
            usage = getattr(chunk, "usage", None) or usage
            yield chunk
        status, error = 200, None
    except GeneratorExit:
        raise
    except Exception as e:
        status, error = stream_failure_status(e), f"{type(e).__name__}: {e}"  # cut once scrubbed
        raise
    finally:
        end(status, usage, error)
