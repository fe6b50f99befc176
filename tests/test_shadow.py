"""Shadow judging through the proxy, against a loopback upstream with a loopback judge: the
sampling rate, outcomes in the decision log, the daily budget, the bounded queue, and that the
client's answer never waits for the shadow call."""

from __future__ import annotations

import httpx
import pytest

from router.learning.shadow import parse_grades
from tests.learning import chat, metric, model, router_for, serve, wait_for, write_config
from tests.upstream import Upstream


@pytest.fixture(scope="module")
def own_upstream():
    up = Upstream().start()  # its own: these tests hold its gate
    yield up
    up.gate.set()
    up.stop()


def setup(tmp_path, upstream, router, shadow: dict, models=None):
    cfg = write_config(
        tmp_path,
        upstream.base_url,
        models=models,
        shadow={"judge": "judge", "max_usd_per_day": 1.0, **shadow},
    )
    return serve(router_for(cfg, like=router))


def shadow_of(proxy):
    return proxy.app.state.live.shadow


def test_judge_reply_parsing():
    assert parse_grades('{"A": 9, "B": 2}') == (9.0, 2.0)
    assert parse_grades('Sure. {"A": 7.5, "B": 10}') == (7.5, 10.0)
    assert parse_grades("A: 3\nB = 8") == (3.0, 8.0)
    assert parse_grades("no idea") is None
    assert parse_grades('{"A": 0, "B": 11}') is None


def test_every_sampled_request_gets_two_graded_outcomes(tmp_path, own_upstream, router):
    upstream = own_upstream
    proxy = setup(tmp_path, upstream, router, {"rate": 1.0, "workers": 1})
    try:
        with httpx.Client(base_url=proxy.url, timeout=60) as c:
            ids = []
            for i in range(4):
                r = chat(c, f"What is {i} + 2?")
                assert r.status_code == 200, r.text
                ids.append(r.headers["x-request-id"])
            sh = shadow_of(proxy)
            wait_for(lambda: sh.judged + sh.failed >= 4, what="4 judged samples")
            assert sh.failed == 0, sh.last_error
            log = proxy.decision_log
            log.flush()
            for rid in ids:
                outs = {o["model"]: o for o in log.outcomes_of(rid) if o["source"] == "shadow"}
                # The routed cheap answer and the large model's shadow answer, both graded.
                assert set(outs) == {"cheap", "large"}
                assert outs["cheap"]["score"] == pytest.approx(8 / 9)  # 9/10: (9 - 1) / 9
                assert outs["cheap"]["detail"]["judge"] == "judge"
            # The shadow answer came from the large model, the grades from the judge.
            assert upstream.calls["large"] >= 4 and upstream.calls["judge"] >= 4
            page = c.get("/metrics").text
            assert metric(page, "router_shadow_samples_total", outcome="judged") == 4
            assert metric(page, "router_shadow_agreement") == 1.0
            assert metric(page, "router_shadow_spend_usd_total") > 0
            assert metric(page, "router_shadow_dropped_total", reason="queue_full") == 0
    finally:
        proxy.stop()


def test_the_rate_samples_a_share_of_requests(tmp_path, own_upstream, router):
    upstream = own_upstream
    proxy = setup(tmp_path, upstream, router, {"rate": 0.25, "workers": 2})
    try:
        with httpx.Client(base_url=proxy.url, timeout=60) as c:
            for i in range(80):
                assert chat(c, f"Name a colour, take {i}.").status_code == 200
        sh = shadow_of(proxy)
        # Binomial(80, 0.25): mean 20, sd 3.9; these bounds are 3.5 sd away.
        assert sh.offered == 80
        assert 6 <= sh.sampled <= 34, sh.sampled
        wait_for(lambda: sh.judged + sh.failed == sh.sampled, what="samples judged")
    finally:
        proxy.stop()


def test_judging_stops_at_the_daily_budget(tmp_path, own_upstream, router):
    upstream = own_upstream
    # A sample costs at most (and, with the upstream's usage, exactly) 5 tokens out at
    # $1000/M = $0.005 on the shadow model; the judge is free. $0.0175 pays for three.
    models = [
        model("cheap", "cheap", upstream.base_url),
        model("pricey", "large", upstream.base_url, tier="large", input_price=0, output_price=1000),
        model("judge", "judge", upstream.base_url, input_price=0, output_price=0),
    ]
    cfg = write_config(
        tmp_path,
        upstream.base_url,
        models=models,
        policies={"balanced": {"default": ["cheap"], "large": ["pricey"]}},
        shadow={
            "rate": 1.0,
            "judge": "judge",
            "max_usd_per_day": 0.0175,
            "max_tokens": 5,
            "workers": 1,
        },
    )
    proxy = serve(router_for(cfg, like=router))
    try:
        sh = shadow_of(proxy)
        with httpx.Client(base_url=proxy.url, timeout=60) as c:
            for i in range(8):
                assert chat(c, f"Say {i}.").status_code == 200
                # One at a time, so each sample meets the budget as the last one left it.
                wait_for(lambda: sh.queue.qsize() == 0 and sh.queue._unfinished_tasks == 0)
            page = c.get("/metrics").text
        assert sh.judged == 3, sh.stats()
        assert sh.spend_usd <= 0.0175 + 1e-9
        assert sh.dropped["budget"] == 5
        assert sh.stats()["resting"]
        assert metric(page, "router_shadow_dropped_total", reason="budget") == 5
        assert metric(page, "router_shadow_spend_today_usd") == pytest.approx(0.015)
    finally:
        proxy.stop()


def test_a_full_queue_drops_samples_and_the_client_never_waits(tmp_path, own_upstream, router):
    upstream = own_upstream
    # The shadow model is gated: its calls hang until the test opens the gate. Every client
    # answer must come back while the gate is still closed.
    upstream.gate.clear()
    models = [
        model("cheap", "cheap", upstream.base_url),
        model("slowlarge", "gated", upstream.base_url, tier="large", timeout=60),
        model("judge", "judge", upstream.base_url),
    ]
    cfg = write_config(
        tmp_path,
        upstream.base_url,
        models=models,
        policies={"balanced": {"default": ["cheap"], "large": ["slowlarge"]}},
        shadow={
            "rate": 1.0,
            "judge": "judge",
            "max_usd_per_day": 1.0,
            "queue_size": 2,
            "workers": 1,
        },
    )
    proxy = serve(router_for(cfg, like=router))
    try:
        sh = shadow_of(proxy)
        with httpx.Client(base_url=proxy.url, timeout=60) as c:
            for i in range(8):
                r = chat(c, f"Quick question {i}?")
                assert r.status_code == 200 and r.headers["x-router-model"] == "cheap"
                if i == 0:  # the worker holds the first sample in the gated call
                    wait_for(lambda: upstream.calls["gated"] == 1, what="the shadow call")
            # All 8 answered while the shadow call is still stuck behind the gate.
            assert not upstream.gate.is_set() and sh.judged == 0
            assert sh.sampled == 3  # one in the worker, two queued
            assert sh.dropped["queue_full"] == 5
            page = c.get("/metrics").text
            assert metric(page, "router_shadow_dropped_total", reason="queue_full") == 5
            assert metric(page, "router_shadow_queue") == 2
            upstream.gate.set()
            wait_for(lambda: sh.judged == 3, what="the queued samples judged")
    finally:
        upstream.gate.set()
        proxy.stop()


def test_an_escalated_request_is_shadowed_by_the_cheap_model(tmp_path, own_upstream, router):
    upstream = own_upstream
    cfg = write_config(
        tmp_path,
        upstream.base_url,
        # Everything escalates: a gain threshold of 0 (the gain is never negative).
        policies={
            "balanced": {
                "default": ["cheap"],
                "large": ["large"],
                "escalation": {"max_gain": 0.0},
            }
        },
        shadow={"rate": 1.0, "judge": "judge", "max_usd_per_day": 1.0},
    )
    proxy = serve(router_for(cfg, like=router))
    try:
        with httpx.Client(base_url=proxy.url, timeout=60) as c:
            before = upstream.calls["cheap"]
            r = chat(c, "Prove that the square root of two is irrational.")
            assert r.headers["x-router-tier"] == "large"
            sh = shadow_of(proxy)
            wait_for(lambda: sh.judged == 1, what="the sample judged")
            assert upstream.calls["cheap"] == before + 1
            proxy.decision_log.flush()
            outs = proxy.decision_log.outcomes_of(r.headers["x-request-id"])
            assert {o["model"] for o in outs} == {"large", "cheap"}
            # Both 9/10: escalating did not pay off, so the judge does not agree with it.
            assert sh.stats()["agreement"] == 0.0
    finally:
        proxy.stop()


def test_a_reload_applies_the_new_shadow_settings(tmp_path, own_upstream, router):
    import yaml

    from tests.learning import ADMIN_KEY

    upstream = own_upstream
    judges = [
        model("judge", "judge", upstream.base_url),
        model("judge2", "judge", upstream.base_url),
    ]
    models = [
        model("cheap", "cheap", upstream.base_url),
        model("large", "large", upstream.base_url, tier="large"),
    ]
    cfg = write_config(
        tmp_path,
        upstream.base_url,
        models=models + judges,
        server={"keys_env": None, "admin_key": ADMIN_KEY},
        shadow={"rate": 1.0, "judge": "judge", "max_usd_per_day": 1.0, "workers": 1},
    )
    proxy = serve(router_for(cfg, like=router))
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    sh = shadow_of(proxy)
    log = proxy.decision_log

    def judged_by(c, text):
        done = sh.judged + sh.failed
        rid = chat(c, text).headers["x-request-id"]
        wait_for(lambda: sh.judged + sh.failed > done, what="the sample judged")
        assert sh.failed == 0, sh.last_error
        log.flush()
        return {o["detail"]["judge"] for o in log.outcomes_of(rid) if o["source"] == "shadow"}

    try:
        with httpx.Client(base_url=proxy.url, timeout=60) as c:
            assert judged_by(c, "What is 1 + 1?") == {"judge"}
            # The new catalogue drops the old judge; the new shadow section names another.
            data = yaml.safe_load(cfg.read_text())
            data["models"] = [m for m in data["models"] if m["name"] != "judge"]
            data["shadow"]["judge"] = "judge2"
            cfg.write_text(yaml.safe_dump(data))
            assert c.post("/admin/reload", headers=admin).status_code == 200
            assert judged_by(c, "What is 2 + 2?") == {"judge2"}
            # A reload that removes the section stops the sampling.
            del data["shadow"]
            cfg.write_text(yaml.safe_dump(data))
            assert c.post("/admin/reload", headers=admin).status_code == 200
            sampled = sh.sampled
            assert chat(c, "What is 3 + 3?").status_code == 200
            assert sh.sampled == sampled
    finally:
        proxy.stop()


def test_a_reload_that_adds_the_section_starts_judging_and_one_that_removes_it_stops(
    tmp_path, own_upstream, router
):
    import yaml

    from tests.learning import ADMIN_KEY

    upstream = own_upstream
    cfg = write_config(
        tmp_path, upstream.base_url, server={"keys_env": None, "admin_key": ADMIN_KEY}
    )
    proxy = serve(router_for(cfg, like=router))
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    log = proxy.decision_log
    data = yaml.safe_load(cfg.read_text())

    def reload_with(shadow):
        if shadow is None:
            data.pop("shadow", None)
        else:
            data["shadow"] = shadow
        cfg.write_text(yaml.safe_dump(data))
        assert c.post("/admin/reload", headers=admin).status_code == 200

    def shadow_outcomes(rid):
        log.flush()
        return {o["model"] for o in log.outcomes_of(rid) if o["source"] == "shadow"}

    try:
        with httpx.Client(base_url=proxy.url, timeout=60) as c:
            # Started without the section: nothing is shadowed.
            assert shadow_of(proxy) is None
            rid = chat(c, "What is 5 + 5?").headers["x-request-id"]
            assert shadow_outcomes(rid) == set()
            # A reload adds it: judging starts, no restart.
            reload_with({"rate": 1.0, "judge": "judge", "max_usd_per_day": 1.0, "workers": 1})
            sh = shadow_of(proxy)
            assert sh is not None and sh.running
            rid = chat(c, "What is 6 + 6?").headers["x-request-id"]
            wait_for(lambda: sh.judged + sh.failed >= 1, what="the first sample judged")
            assert sh.failed == 0, sh.last_error
            assert shadow_outcomes(rid) == {"cheap", "large"}
            page = c.get("/metrics").text
            assert metric(page, "router_shadow_samples_total", outcome="judged") == 1
            # A reload removes it: no more samples, and the workers end.
            workers = list(sh._workers)
            reload_with(None)
            assert shadow_of(proxy) is sh and not sh.running
            wait_for(lambda: all(t.done() for t in workers), what="the workers to end")
            sampled = sh.sampled
            rid = chat(c, "What is 7 + 7?").headers["x-request-id"]
            assert sh.sampled == sampled and shadow_outcomes(rid) == set()
            # Added back, with two workers: judging resumes on new workers.
            reload_with({"rate": 1.0, "judge": "judge", "max_usd_per_day": 1.0, "workers": 2})
            assert shadow_of(proxy) is sh and sh.running and len(sh._workers) == 2
            rid = chat(c, "What is 8 + 8?").headers["x-request-id"]
            wait_for(lambda: sh.judged + sh.failed >= 2, what="the second sample judged")
            assert sh.failed == 0, sh.last_error
            assert shadow_outcomes(rid) == {"cheap", "large"}
    finally:
        proxy.stop()


def test_shadow_answers_go_through_the_one_call_path(router, monkeypatch):
    """serving/upstream.acompletion, where every routed call goes: its checks (a media URL's
    fetch) and its direct path apply to the shadow's calls too, not litellm called aside."""
    import asyncio

    from router.core.sections import ShadowSpec
    from router.learning.shadow import ShadowJudge
    from router.serving import upstream

    seen = []
    real = upstream.acompletion

    async def recording(messages, **kw):
        seen.append(kw["model"])
        return await real(messages, **kw)

    monkeypatch.setattr(upstream, "acompletion", recording)
    spec = ShadowSpec(rate=1.0, judge="large", max_usd_per_day=1.0)
    judge = ShadowJudge(lambda: router, spec, None)
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    text, usd = asyncio.run(judge._call(router, "large", messages, 16))
    assert seen == [router.calls.kwargs("large", {})["model"]]
    assert text and usd > 0
