"""The fallback chain's step machine (router/serving/chain.py), driven by hand: no I/O, no upstream.

Each test plays the part of a driver, reporting results and exceptions, and checks the steps
the machine asks for and the receipt it builds. The drivers in Router.chat / achat are covered
end to end by test_sdk.py, test_faults.py, test_breaker.py and test_server.py.
"""

from __future__ import annotations

import httpx
import pytest

from router.serving.chain import CIRCUIT_OPEN, Call, Done, Failed, FallbackChain, Sleep
from router.serving.providers import UpstreamError


def litellm_error(kind: str, status: int, headers: dict | None = None):
    import litellm

    response = httpx.Response(
        status, headers=headers or {}, request=httpx.Request("POST", "http://x")
    )
    if kind == "bad":
        return litellm.BadRequestError("bad", "m", "openai", response=response)
    if kind == "429":
        return litellm.RateLimitError(
            "slow down", "openai", "m", response=response, headers=headers
        )
    return litellm.InternalServerError("boom", "openai", "m", response=response)


@pytest.fixture
def flaky(router):
    # keyless (no API key: unavailable), then broken, then large.
    return router.route("What is the capital of France?", policy="flaky")


def test_unavailable_model_is_skipped_then_retry_then_fallback(router, flaky):
    assert [flaky.model, *flaky.fallbacks][:3] == ["keyless", "broken", "large"]
    chain = FallbackChain(router.calls, flaky, {})
    step = chain.start()
    assert isinstance(step, Call) and step.model == "broken"
    assert step.kwargs["max_retries"] == 0 and step.kwargs["model"] == "openai/fail-500"
    step = chain.failed(litellm_error("500", 500))
    assert step == Sleep(0.5)  # one retry (the model's default), after the base backoff
    step = chain.slept()
    assert isinstance(step, Call) and step.model == "broken"
    step = chain.failed(litellm_error("500", 500))
    assert isinstance(step, Call) and step.model == "large"
    step = chain.succeeded("the answer")
    assert isinstance(step, Done) and step.result == "the answer"
    d = step.decision
    assert d.model == "large"
    assert [(a.model, a.ok) for a in d.attempts] == [
        ("keyless", False),
        ("broken", False),
        ("large", True),
    ]
    assert d.attempts[0].error.startswith("ModelUnavailable: ")
    assert d.attempts[1].error.startswith("InternalServerError 500")


def test_retry_after_is_honoured_or_skipped_when_too_long(router):
    d = router.route("hello", model="small-general")
    chain = FallbackChain(router.calls, d, {})
    assert isinstance(chain.start(), Call)
    assert chain.failed(litellm_error("429", 429, {"retry-after": "3"})) == Sleep(3.0)
    d = router.route("hello", model="small-general")
    chain = FallbackChain(router.calls, d, {})
    chain.start()
    step = chain.failed(litellm_error("429", 429, {"retry-after": "3600"}))
    assert not isinstance(step, Sleep)  # too long to wait: the chain moves on


def test_bad_request_is_not_cured_by_another_model(router, flaky):
    chain = FallbackChain(router.calls, flaky, {})
    chain.start()
    step = chain.failed(litellm_error("bad", 400))
    assert isinstance(step, Failed) and isinstance(step.error, UpstreamError)
    assert step.error.status_code == 400
    assert [a.model for a in step.error.decision.attempts] == ["keyless", "broken"]


def test_every_model_failing_gives_one_error_naming_each(router, flaky):
    chain = FallbackChain(router.calls, flaky, {})
    step = chain.start()
    calls = 0
    while isinstance(step, Call | Sleep):
        if isinstance(step, Sleep):
            step = chain.slept()
            continue
        calls += 1
        step = chain.failed(TimeoutError("took too long"))
    assert isinstance(step, Failed) and calls == 2  # time-outs are not retried
    assert step.error.status_code == 504
    assert "keyless" in str(step.error) and "broken" in str(step.error)


def test_open_circuits_are_recorded_without_a_call(router):
    from router import Router
    from router.serving.breaker import Breakers

    r = Router(router.config, router.policies, router.scorer, router.encoder)
    r.breakers = Breakers(1, 60)  # opens after one failure (the shared router's are off)
    r.breakers.failure("small-general")
    d = r.route("hello", model="small-general")
    chain = FallbackChain(r.calls, d, {})
    step = chain.start()
    assert d.attempts == [] and chain.attempts[0].error == CIRCUIT_OPEN
    assert not (isinstance(step, Call) and step.model == "small-general")


def test_reporting_without_a_call_in_progress_is_an_error(router):
    d = router.route("hello", model="small-general")
    chain = FallbackChain(router.calls, d, {})
    with pytest.raises(RuntimeError):
        chain.succeeded("too early")
    chain.start()
    chain.succeeded("ok")
    with pytest.raises(RuntimeError):
        chain.failed(ValueError("after the end"))


def test_an_upstream_failure_maps_to_one_status_everywhere():
    """`failure_status` answers for the chain's last error and for the pass-through
    endpoints: a time-out by any client is 504, the caller's 400 and 429 stay, else 502."""
    import litellm

    from router.serving.providers import failure_status, is_timeout

    timeouts = [
        litellm.Timeout("slow", "m", "openai"),
        httpx.ReadTimeout("slow"),
        TimeoutError(),  # asyncio's, since 3.11
    ]
    assert [failure_status(e) for e in timeouts] == [504, 504, 504]
    assert all(is_timeout(e) for e in timeouts) and not is_timeout(None)
    assert failure_status(litellm_error("bad", 400)) == 400
    assert failure_status(litellm_error("429", 429)) == 429
    assert failure_status(litellm_error("boom", 500)) == 502
    assert failure_status(RuntimeError("no status")) == 502
    assert failure_status(None) == 502
