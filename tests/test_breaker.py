"""Circuit breakers: the state machine on a fake clock, then in the SDK's fallback chain.

No test sleeps: time is a fake clock, moved by hand.
"""

from __future__ import annotations

import threading

import pytest

from router.core.config import BreakerSpec, Policy, RouterConfig
from router.sdk.router import Router
from router.serving.breaker import CLOSED, HALF_OPEN, OPEN, Breakers
from router.serving.chain import CIRCUIT_OPEN
from router.serving.providers import UpstreamError


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def state(b: Breakers, model: str) -> str:
    return b.snapshot()[model]["state"]


def test_opens_after_n_consecutive_failures_only():
    b = Breakers(failures=3, cooldown_s=30, clock=Clock())
    for _ in range(2):
        b.failure("m")
    b.success("m")  # the run is broken: counting starts again
    b.failure("m")
    b.failure("m")
    assert b.allow("m") and state(b, "m") == CLOSED
    b.failure("m")
    assert state(b, "m") == OPEN and not b.allow("m")
    assert b.snapshot()["m"]["trips"] == 1
    assert b.allow("other")  # one model's breaker is its own


def test_half_open_after_cooldown_lets_one_trial_through():
    clock = Clock()
    b = Breakers(failures=1, cooldown_s=30, clock=clock)
    b.failure("m")
    clock.t += 29.9
    assert not b.allow("m") and b.retry_after("m") == pytest.approx(0.1)
    clock.t += 0.1
    assert state(b, "m") == HALF_OPEN
    assert b.allow("m")  # the trial
    assert not b.allow("m")  # only one at a time
    b.success("m")
    assert state(b, "m") == CLOSED and b.allow("m") and b.allow("m")


def test_failed_trial_opens_for_a_full_cooldown_again():
    clock = Clock()
    b = Breakers(failures=1, cooldown_s=10, clock=clock)
    b.failure("m")
    clock.t += 10
    assert b.allow("m")
    b.failure("m")
    assert state(b, "m") == OPEN and b.retry_after("m") == pytest.approx(10)
    clock.t += 10
    assert b.allow("m")
    assert b.snapshot()["m"]["trips"] == 1  # re-opening from half-open is the same trip


def test_a_lost_or_released_trial_frees_the_slot():
    clock = Clock()
    b = Breakers(failures=1, cooldown_s=10, clock=clock)
    b.failure("m")
    clock.t += 10
    assert b.allow("m")  # the trial's caller is cancelled and never reports
    assert not b.allow("m")
    clock.t += 10
    assert b.allow("m")  # a cool-down later, another trial may go
    b.release("m")  # e.g. it ended in a client error: no verdict
    assert b.allow("m")


def test_zero_failures_turns_it_off():
    b = Breakers(failures=0)
    for _ in range(100):
        b.failure("m")
    assert b.allow("m") and b.snapshot() == {}


def test_thread_safe_counting():
    b = Breakers(failures=10_000, cooldown_s=30, clock=Clock())

    def hammer() -> None:
        for _ in range(1000):
            b.failure("m")

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b.snapshot()["m"]["failures"] == 8000


def test_config_section():
    cfg = RouterConfig.model_validate(
        {
            "models": [
                {
                    "name": "a",
                    "litellm_model": "openai/a",
                    "input_price": 0,
                    "output_price": 0,
                    "context_window": 10,
                }
            ],
            "breaker": {"failures": 2, "cooldown_s": 5},
        }
    )
    assert cfg.breaker == BreakerSpec(failures=2, cooldown_s=5)
    assert RouterConfig.model_fields["breaker"].default == BreakerSpec(failures=5, cooldown_s=30)
    with pytest.raises(ValueError):
        BreakerSpec(cooldown_s=0)


# ---- in the SDK's chain -------------------------------------------------------------------


@pytest.fixture
def breaking_router(router):
    """The session router's config and artifacts with breakers on (2 faults, 60 s), fake clock."""
    cfg = router.config.model_copy(update={"breaker": BreakerSpec(failures=2, cooldown_s=60)})
    allbroken = Policy(name="allbroken", default=("broken",), large=("broken",))
    policies = {**router.policies, "allbroken": allbroken}
    r = Router(cfg, policies, router.scorer, router.encoder)
    clock = Clock()
    r.breakers.clock = clock
    return r, clock


def test_chain_skips_an_open_model_and_tries_it_later(breaking_router, upstream):
    r, clock = breaking_router
    msgs = [{"role": "user", "content": "hello there"}]
    calls = lambda: sum(1 for b in upstream.requests if b.get("model") == "fail-500")  # noqa: E731
    before = calls()
    for _ in range(2):  # flaky: keyless (no key), broken (500), then large answers
        resp = r.chat(msgs, policy="flaky")
        assert resp.decision.model == "large"
    assert calls() - before == 4  # two requests x (one try + one retry)
    resp = r.chat(msgs, policy="flaky")
    attempts = [(a.model, a.error) for a in resp.decision.attempts]
    assert attempts[1] == ("broken", CIRCUIT_OPEN) and resp.decision.model == "large"
    assert calls() - before == 4  # not called while open
    assert r.breakers.snapshot()["keyless"]["failures"] == 0  # a missing key is no fault
    clock.t += 60  # half-open: one trial reaches the upstream again
    r.chat(msgs, policy="flaky")
    assert calls() - before == 6
    assert r.breakers.snapshot()["broken"]["state"] == OPEN  # the trial failed


async def test_async_chain_and_503_when_every_model_is_open(breaking_router):
    r, _ = breaking_router
    msgs = [{"role": "user", "content": "hi"}]
    for _ in range(2):
        with pytest.raises(UpstreamError) as e:
            await r.achat(msgs, policy="allbroken")
        assert e.value.status_code == 502
    with pytest.raises(UpstreamError) as e:
        await r.achat(msgs, policy="allbroken")
    assert e.value.status_code == 503
    assert [a.error for a in e.value.decision.attempts] == [CIRCUIT_OPEN]
