"""The budget controller: it converges, holds through a shift, corrects only outside its band,
shares counts through a StateStore and survives a store outage."""

import asyncio
import time

import numpy as np
import pytest

from router.core.config import Policy
from router.serving.budget import BudgetController, Budgets
from router.serving.state import MemoryStore


def policy(budget: dict, **escalation) -> Policy:
    esc = {"max_gain": 0.2, **escalation}
    return Policy(name="p", default=("cheap",), large=("large",), escalation=esc, budget=budget)


class Sim:
    """Requests every `dt` seconds of simulated time; the policy is `score > threshold`."""

    def __init__(self, ctl: BudgetController, dt: float = 0.5, seed: int = 0) -> None:
        self.ctl, self.dt, self.t = ctl, dt, 1_000_000.0
        self.rng = np.random.default_rng(seed)
        self.large: list[bool] = []

    def run(self, n: int, draw, forced: float = 0.0, cost=(0.001, 0.01)) -> None:
        for _ in range(n):
            self.t += self.dt
            t = self.ctl.threshold()
            score = float(draw(self.rng))
            is_forced = self.rng.random() < forced
            large = is_forced or score > t
            self.ctl.observe(score, large, t, cost[1] if large else cost[0], cost[1], now=self.t)
            self.large.append(large)

    def share(self, last: int) -> float:
        return float(np.mean(self.large[-last:]))


def beta(a, b):
    return lambda rng: rng.beta(a, b)


def test_converges_to_the_target_share():
    ctl = BudgetController(policy({"large_share": 0.3, "window_s": 300}))
    sim = Sim(ctl)
    sim.run(4000, beta(2, 5))  # the policy's own 0.2 threshold would send ~55% large
    assert sim.share(2400) == pytest.approx(0.3, abs=0.01)
    assert ctl.snapshot()["large_share"] == pytest.approx(0.3, abs=0.04)
    assert ctl.threshold() > 0.2  # raised from the policy's threshold


def test_holds_the_target_through_a_distribution_shift():
    ctl = BudgetController(policy({"large_share": 0.25, "window_s": 300}))
    sim = Sim(ctl, seed=1)
    sim.run(3000, beta(2, 6))
    before = ctl.threshold()
    sim.run(3000, beta(6, 2))  # much harder traffic: scores shift up
    assert ctl.threshold() > before + 0.2
    # Settled within two windows (1200 requests) of the shift.
    assert sim.share(1800) == pytest.approx(0.25, abs=0.015)


def test_forced_escalations_are_compensated_by_feedforward_and_feedback():
    ctl = BudgetController(policy({"large_share": 0.3, "window_s": 300}))
    sim = Sim(ctl, seed=2)
    # 12% go large whatever the threshold (low confidence, pins ...).
    sim.run(4000, beta(2, 5), forced=0.12)
    assert sim.share(2400) == pytest.approx(0.3, abs=0.015)


def test_hysteresis_a_wider_band_moves_the_threshold_less_often():
    moves, shares = {}, {}
    for band in (0.002, 0.05):
        ctl = BudgetController(policy({"large_share": 0.3, "window_s": 300, "hysteresis": band}))
        sim = Sim(ctl, seed=3)
        sim.run(4000, beta(2, 5))
        moves[band], shares[band] = ctl.snapshot()["adjustments"], sim.share(2400)
    assert moves[0.05] < moves[0.002] / 3
    # Both hold the target on average; the wide band only tolerates more in between.
    assert shares[0.002] == pytest.approx(0.3, abs=0.02)
    assert shares[0.05] == pytest.approx(0.3, abs=0.05)


def test_no_move_inside_the_band():
    # The policy's own threshold sends ~30% large: inside a wide band around 0.3, it stays.
    ctl = BudgetController(
        policy({"large_share": 0.3, "window_s": 300, "hysteresis": 0.25}, max_gain=0.36)
    )
    sim = Sim(ctl, seed=4)
    sim.run(1000, beta(2, 5))
    assert ctl.threshold() == 0.36 and ctl.snapshot()["adjustments"] == 0
    assert sim.share(1000) == pytest.approx(0.3, abs=0.03)


def test_usd_per_hour_target():
    # 7200 requests an hour at $0.0001 cheap / $0.002 large: $3/h is a large share of ~0.167.
    ctl = BudgetController(policy({"usd_per_hour": 3.0, "window_s": 300}))
    sim = Sim(ctl, dt=0.5, seed=5)
    sim.run(6000, beta(2, 5), cost=(0.0001, 0.002))
    assert ctl.snapshot()["usd_per_hour"] == pytest.approx(3.0, rel=0.1)
    assert sim.share(3600) == pytest.approx((3.0 / 7200 - 0.0001) / 0.0019, abs=0.015)


def test_an_unreachable_spend_target_closes_the_large_tier():
    # Cheap calls alone spend $7.2/h: the best it can do is send nothing large.
    ctl = BudgetController(policy({"usd_per_hour": 2.0, "window_s": 300}))
    sim = Sim(ctl, dt=0.5, seed=6)
    sim.run(2000, beta(2, 5), cost=(0.001, 0.01))
    assert ctl.threshold() == 1.0 and sim.share(600) == 0.0


def test_no_decisions_no_change():
    ctl = BudgetController(policy({"large_share": 0.3}))
    assert ctl.threshold() == 0.2
    assert ctl.update() == 0.2
    snap = ctl.snapshot()
    assert snap["large_share"] is None and snap["target"] == {"large_share": 0.3}
    assert snap["threshold_field"] == "max_gain"


def test_difficulty_threshold_when_the_policy_has_no_gain_threshold():
    p = Policy(
        name="p",
        default=("cheap",),
        large=("large",),
        escalation={"max_difficulty": 0.7},
        budget={"large_share": 0.2},
    )
    ctl = BudgetController(p)
    assert ctl.field == "max_difficulty" and ctl.threshold() == 0.7
    assert ctl.escalation(p).max_difficulty == 0.7


def test_replicas_share_counts_through_the_store():
    store = MemoryStore()
    a = BudgetController(policy({"large_share": 0.3, "window_s": 100}))
    b = BudgetController(policy({"large_share": 0.3, "window_s": 100}))
    now = 5_000_000.0
    for i in range(100):
        a.observe(0.9, True, 0.5, now=now + i * 0.1)  # replica A: all large
        b.observe(0.1, False, 0.5, now=now + i * 0.1)  # replica B: all cheap
    end = now + 10

    async def both():
        assert await a.sync(store, end) and await b.sync(store, end) and await a.sync(store, end)

    asyncio.run(both())
    a.update(end)
    b.update(end)
    # Each sees the fleet's share, not its own.
    assert a.snapshot()["large_share"] == pytest.approx(0.5)
    assert b.snapshot()["large_share"] == pytest.approx(0.5)
    assert a.snapshot()["shared"] and b.window_requests == 200


class BrokenStore:
    async def incr(self, *a, **k):
        raise ConnectionError("redis is down")

    async def get(self, *a, **k):
        raise ConnectionError("redis is down")


def test_a_store_outage_falls_back_to_local_counts():
    ctl = BudgetController(policy({"large_share": 0.3, "window_s": 100}))
    now = 7_000_000.0
    for i in range(80):
        ctl.observe(0.9 if i % 4 == 0 else 0.1, i % 4 == 0, 0.5, now=now + i)
    assert asyncio.run(ctl.sync(BrokenStore(), now + 80)) is False
    ctl.update(now + 80)
    snap = ctl.snapshot()
    assert not snap["shared"] and snap["large_share"] == pytest.approx(0.25, abs=0.02)
    # The unsent counts are kept and go out once the store is back.
    store = MemoryStore()
    assert asyncio.run(ctl.sync(store, now + 81))
    ctl.update(now + 81)
    assert ctl.snapshot()["window_requests"] >= 70


def test_an_outage_is_one_line_however_many_budgets(caplog):
    """Each budgeted policy's controller used to warn on its own: one outage, N lines."""
    budgets = Budgets({n: policy({"large_share": 0.3}) for n in ("a", "b", "c")})
    with caplog.at_level("WARNING", logger="router.serving.budget"):
        for _ in range(3):  # the outage lasts: said once when it begins
            asyncio.run(budgets.sync(BrokenStore()))
    lines = [r.getMessage() for r in caplog.records if "shared state unavailable" in r.message]
    assert lines == [
        "budgets of a, b, c: shared state unavailable (redis is down); their counts wait in "
        "this process until it answers"
    ]
    asyncio.run(budgets.sync(MemoryStore()))  # back, then out again: said again
    with caplog.at_level("WARNING", logger="router.serving.budget"):
        asyncio.run(budgets.sync(BrokenStore()))
    assert sum("shared state unavailable" in r.message for r in caplog.records) == 2


class BlipStore(MemoryStore):
    """A store whose `fail_at`-th increment fails (a Redis time-out in the middle of a push)."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.calls, self.fail_at = 0, fail_at

    async def incr(self, *a, **k):
        self.calls += 1
        if self.calls == self.fail_at:
            raise ConnectionError("blip")
        return await super().incr(*a, **k)


def test_a_push_cut_short_by_an_outage_counts_nothing_twice():
    ctl = BudgetController(policy({"large_share": 0.3, "window_s": 100}))
    now = 7_000_000.0
    for i in range(100):  # over 10 of the window's buckets, a quarter large
        ctl.observe(0.9 if i % 4 == 0 else 0.1, i % 4 == 0, 0.5, 0.001, 0.01, now=now + i / 2)
    store = BlipStore(fail_at=7)  # the first buckets are in the store before the blip
    assert asyncio.run(ctl.sync(store, now + 50)) is False
    assert asyncio.run(ctl.sync(store, now + 50.5))
    ctl.update(now + 50.5)
    snap = ctl.snapshot()
    assert snap["shared"] and snap["window_requests"] == 100
    assert snap["large_share"] == pytest.approx(0.25)


def test_budgets_keep_state_across_a_reload_when_the_budget_is_unchanged():
    old = Budgets({"p": policy({"large_share": 0.3})})
    old.get("p")._threshold = 0.42
    same = Budgets({"p": policy({"large_share": 0.3})}).adopt(old)
    assert same.get("p") is old.get("p")
    changed = Budgets({"p": policy({"large_share": 0.4})}).adopt(old)
    assert changed.get("p") is not old.get("p") and changed.get("p").threshold() == 0.2
    assert not Budgets({"q": Policy(name="q", default=("a",), large=("b",))})


# ---- through the SDK and the proxy ------------------------------------------------------------


def test_the_proxy_shows_the_budget_in_receipts_and_metrics(tmp_path, upstream, router):
    import httpx

    from tests.learning import chat, metric, router_for, serve, write_config

    cfg = write_config(
        tmp_path,
        upstream.base_url,
        policies={
            "balanced": {
                "default": ["cheap"],
                "large": ["large"],
                "escalation": {"max_gain": 0.5},
                "budget": {"large_share": 0.4, "window_s": 60, "sync_s": 0.2},
            }
        },
    )
    r = router_for(cfg, like=router)
    d = r.route("What is the derivative of x squared?")
    assert d.budget["target"] == {"large_share": 0.4} and d.budget["threshold"] == 0.5
    proxy = serve(r)
    try:
        with httpx.Client(base_url=proxy.url, timeout=60) as c:
            for i in range(5):
                resp = chat(c, f"Integrate x to the power {i}.")
                assert resp.status_code == 200
            h = resp.headers
            assert h["x-router-budget-target"] == "large_share=0.4"
            assert h["x-router-budget-threshold"].startswith("max_gain=")
            # As of the last control step (at most once a second), the SDK's route() included.
            assert 1 <= int(h["x-router-budget-window-requests"]) <= 6
            ctl = proxy.app.state.router.budgets.get("balanced")
            # Without `state:` nothing is shared: the receipt must not say it is, however many
            # sync periods (0.2 s) pass (`..._through_a_real_redis` tests the shared case).
            time.sleep(2.0)
            assert not ctl.snapshot()["shared"]
            routed = c.post(
                "/v1/route",
                json={"model": "router", "messages": [{"role": "user", "content": "Integrate x."}]},
            )
            assert routed.status_code == 200 and routed.json()["budget"]["shared"] is False
            page = c.get("/metrics").text
            t = metric(page, "router_budget_threshold", policy="balanced", field="max_gain")
            assert t == pytest.approx(ctl.threshold())
            assert (
                metric(page, "router_budget_target", policy="balanced", kind="large_share") == 0.4
            )
            assert metric(page, "router_budget_large_share", policy="balanced") is not None
    finally:
        proxy.stop()


def test_replicas_share_one_budget_through_a_real_redis(redis_url):
    from router.serving.state import RedisStore

    async def run():
        stores = [RedisStore(redis_url), RedisStore(redis_url)]  # two replicas' own clients
        a = BudgetController(policy({"large_share": 0.3, "window_s": 100}))
        b = BudgetController(policy({"large_share": 0.3, "window_s": 100}))
        now = 9_000_000.0
        for i in range(60):
            a.observe(0.9, True, 0.5, now=now + i * 0.1)
            b.observe(0.1, False, 0.5, now=now + i * 0.1)
        b.observe(0.1, False, 0.5, now=now + 7)
        end = now + 8
        try:
            assert await a.sync(stores[0], end) and await b.sync(stores[1], end)
            assert await a.sync(stores[0], end)
        finally:
            for s in stores:
                await s.close()
        a.update(end)
        b.update(end)
        return a.snapshot(), b.snapshot()

    sa, sb = asyncio.run(run())
    assert sa["shared"] and sb["shared"]
    assert sa["window_requests"] == sb["window_requests"] == 121
    assert sa["large_share"] == pytest.approx(60 / 121, abs=1e-4)


def test_counts_made_during_a_redis_outage_reach_the_other_replicas(redis_server, redis_url):
    """The RedisStore serves calls in process while Redis is out; budget counts must not be
    kept there (lost to the fleet for good, and the totals read back would be this process's
    outage-time counts alone): the sync fails, the counts wait, and go out once Redis is back."""
    from router.serving.state import RedisStore

    async def run():
        stores = [RedisStore(redis_url), RedisStore(redis_url)]  # two replicas' own clients
        a = BudgetController(policy({"large_share": 0.3, "window_s": 100}))
        b = BudgetController(policy({"large_share": 0.3, "window_s": 100}))
        now = 9_500_000.0
        for i in range(40):
            b.observe(0.1, False, 0.5, now=now + i * 0.1)
        try:
            assert await b.sync(stores[1], now + 5)
            redis_server.kill()
            for i in range(60):  # A's traffic while Redis is out
                a.observe(0.9, True, 0.5, now=now + 5 + i * 0.1)
            assert not await a.sync(stores[0], now + 12)  # not shared: kept to send later
            a.update(now + 12)
            during = a.snapshot()
            redis_server.start()  # back, empty (nothing persisted)
            stores[0]._retry_at = 0.0  # Redis is asked again at once (not in retry_s)
            assert await a.sync(stores[0], now + 13) and await b.sync(stores[1], now + 13)
        finally:
            for s in stores:
                await s.close()
        b.update(now + 13)
        return during, b.snapshot()

    during, after = asyncio.run(run())
    assert not during["shared"] and during["window_requests"] == 60  # its own counts
    # A's 60 reached B (B's own 40 went with the restarted Redis: nothing is persisted).
    assert after["shared"] and after["window_requests"] == 60
    assert after["large_share"] == pytest.approx(1.0)
