"""The drift alarm: training distributions in the scorer, PSI, the live monitor."""

import json
import logging

import numpy as np
import pytest

from router.core.drift import (
    DriftMonitor,
    bin_counts,
    check_reference,
    psi,
    quantile_edges,
    reference_distributions,
    summarise_windows,
)
from router.core.scorer import Scorer
from tests.test_scorer import synthetic, texts


@pytest.fixture(scope="module")
def fitted():
    X, exs = synthetic()
    return Scorer().fit(X, exs, "fake/16"), X, exs


def test_fit_records_training_distributions(fitted):
    s, X, exs = fitted
    ref = s.training_distributions_
    assert check_reference(ref) is ref
    dom = dict(zip(ref["domain"]["labels"], ref["domain"]["counts"], strict=True))
    # Half math, half code prompts; out-of-fold predictions find them.
    assert dom["math"] + dom["code"] == len(exs)
    assert abs(dom["math"] - dom["code"]) < 0.1 * len(exs)
    for name in ("difficulty", "gain"):
        h = ref[name]
        assert h["edges"][0] == 0.0 and h["edges"][-1] == 1.0
        assert sum(h["counts"]) == len(exs)
        # Bins at the deciles: no bin holds most of the data.
        assert max(h["counts"]) < 0.5 * len(exs)


def test_distributions_survive_save_and_old_artifacts_load(fitted, tmp_path):
    s, X, exs = fitted
    s.save(tmp_path / "new")
    assert Scorer.load(tmp_path / "new").training_distributions_ == s.training_distributions_
    # An artifact written before scorers recorded distributions still loads: no alarm then.
    s.save(tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "scorer.json").read_text())
    del meta["training_distributions"]
    (tmp_path / "old" / "scorer.json").write_text(json.dumps(meta))
    old = Scorer.load(tmp_path / "old")
    assert old.training_distributions_ is None
    assert old.predict(X[:3], texts(exs[:3])).difficulty.shape == (3,)
    assert not DriftMonitor(old.training_distributions_).enabled


def test_psi_is_zero_for_the_same_distribution_and_grows_with_a_shift():
    assert psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0, abs=1e-12)
    small = psi([25, 25, 25, 25], [30, 25, 25, 20])
    large = psi([25, 25, 25, 25], [70, 10, 10, 10])
    assert 0 < small < 0.1 < 0.25 < large
    # An empty live bin is floored, not infinite.
    assert np.isfinite(psi([50, 50], [100, 0]))
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2, 3])


def test_bins_and_edges():
    rng = np.random.default_rng(0)
    v = rng.beta(2, 5, 5000)
    edges = quantile_edges(v, 10)
    assert len(edges) == 11 and edges[0] == 0 and edges[-1] == 1
    counts = bin_counts(v, edges)
    assert counts.sum() == 5000 and counts.min() > 400
    # Values outside [0, 1] land in the outer bins; a constant column collapses its bins.
    assert bin_counts([-1.0, 2.0], edges).tolist() == [1] + [0] * 8 + [1]
    assert quantile_edges(np.zeros(100)) == [0.0, 1.0]


def _reference(rng, n=5000):
    doms = ["math", "code", "law"]
    pred = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    return reference_distributions(doms, pred, rng.beta(2, 5, n), rng.beta(1, 8, n))


def test_monitor_is_quiet_in_distribution_and_warns_once_after_a_shift(caplog):
    rng = np.random.default_rng(1)
    mon = DriftMonitor(_reference(rng), window=500, threshold=0.25, min_samples=100)
    assert mon.scores() == {"domain": None, "difficulty": None, "gain": None}
    caplog.set_level(logging.WARNING, logger="router.core.drift")
    doms = ["math", "code", "law"]
    for _ in range(600):
        mon.observe(doms[rng.choice(3, p=[0.5, 0.3, 0.2])], rng.beta(2, 5), rng.beta(1, 8))
    calm = mon.check()
    assert all(v is not None and v < 0.1 for v in calm.values()), calm
    assert mon.warnings == 0 and not caplog.records
    # Shift: all law, hard prompts with a high escalation gain.
    for _ in range(600):
        mon.observe("law", rng.beta(5, 2), rng.beta(4, 2))
    shifted = mon.check()
    assert all(v > 0.25 for v in shifted.values()), shifted
    assert mon.alarms() == {"domain": True, "difficulty": True, "gain": True}
    warned = [r for r in caplog.records if r.name == "router.core.drift"]
    assert len(warned) == 3 and "PSI" in warned[0].getMessage()
    # Still shifted: no repeated warnings.
    for _ in range(100):
        mon.observe("law", rng.beta(5, 2), rng.beta(4, 2))
    mon.check()
    assert mon.warnings == 3


def _calm(rng, n):
    doms = ["math", "code", "law"]
    return [
        (doms[rng.choice(3, p=[0.5, 0.3, 0.2])], rng.beta(2, 5), rng.beta(1, 8)) for _ in range(n)
    ]


def _shifted(rng, n):
    return [("law", rng.beta(5, 2), rng.beta(4, 2)) for _ in range(n)]


def test_a_batch_logs_one_summary_not_a_warning_per_signal_and_crossing(caplog):
    # A file routed in its order (as the notebooks do): calm rows, a block unlike the training
    # data, calm again, another such block, calm to the end.
    rng = np.random.default_rng(2)
    rows = _calm(rng, 300) + _shifted(rng, 200) + _calm(rng, 300) + _shifted(rng, 200)
    rows += _calm(rng, 300)
    ref = _reference(np.random.default_rng(1))
    settings = {"window": 200, "threshold": 0.25, "min_samples": 100, "check_every": 50}
    caplog.set_level(logging.WARNING, logger="router.core.drift")
    # Live, each signal warns at each crossing: 6 lines for this file. In a batch, the same
    # checks set the same alarms (`/metrics` follows them), and one warning sums them up.
    live, mon = DriftMonitor(ref, **settings), DriftMonitor(ref, **settings)
    alarmed = 0
    with mon.batch() as batch:
        for row in rows:
            live.observe(*row)
            mon.observe(*row)
            assert mon.alarms() == live.alarms() and mon.last == live.last
            alarmed += any(mon.alarms().values())
    assert alarmed > 400  # both blocks raised the alarm
    messages = [r.getMessage() for r in caplog.records if r.name == "router.core.drift"]
    per_crossing = [m for m in messages if m.startswith("routing drift: ")]
    summaries = [m for m in messages if m.startswith("routing drift over a batch")]
    assert live.warnings == len(per_crossing) == 6
    assert mon.warnings == len(summaries) == 1 and len(messages) == 7
    # The batch held the same crossings, each signal twice (once per block).
    assert batch.crossed == [m.split()[2] for m in per_crossing]
    assert sorted(batch.crossed) == sorted(["difficulty", "domain", "gain"] * 2)
    assert batch.requests == 1300 and len(batch.windows) == 25
    text = summaries[0]
    assert text == batch.summary()
    assert text.startswith("routing drift over a batch of 1300 requests: PSI past 0.250 in ")
    # Which windows drifted (both blocks), by how much, and the end: calm again.
    assert "domain up to " in text and "difficulty up to " in text and "gain up to " in text
    assert (
        "past it in 10 windows: from requests 201–400 to requests 401–600, from requests " in text
    )
    assert "at the end (requests 1101–1300): domain 0.0" in text
    assert text.endswith("none is past the threshold at the end")
    assert mon.alarms() == live.alarms() == dict.fromkeys(("domain", "difficulty", "gain"), False)
    # After the batch the monitor warns live again, per signal.
    caplog.clear()
    for row in _shifted(rng, 200):
        mon.observe(*row)
    assert len(caplog.records) == 3 and mon.warnings == 4


def test_a_batch_still_shifted_at_its_end_says_so_and_a_calm_one_logs_nothing(caplog):
    ref = _reference(np.random.default_rng(1))
    rng = np.random.default_rng(4)
    caplog.set_level(logging.WARNING, logger="router.core.drift")
    calm = DriftMonitor(ref, window=200, min_samples=100)
    with calm.batch() as batch:
        for row in _calm(rng, 530):
            calm.observe(*row)
    assert not caplog.records and calm.warnings == 0 and not batch.crossed
    assert batch.summary().startswith(
        "routing drift over a batch of 530 requests: no window past PSI 0.250 (10 windows; "
    )  # a last check covered requests 331-530, past the last periodic one at 500
    mon = DriftMonitor(ref, window=200, min_samples=100)
    with mon.batch():
        for row in _calm(rng, 300) + _shifted(rng, 200):
            mon.observe(*row)
    (warned,) = caplog.records
    assert warned.getMessage().endswith(
        "past the threshold at the end: domain, difficulty, gain: the scorer sees prompts unlike "
        "its training data (retrain from the decision log)"
    )
    assert mon.alarms() == {"domain": True, "difficulty": True, "gain": True}
    # Still past the threshold after the batch: no second warning for the same shift.
    for row in _shifted(rng, 100):
        mon.observe(*row)
    assert len(caplog.records) == 1


def test_the_router_holds_its_drift_warnings_for_a_batch(router, caplog):
    # Notebooks route a file at once through `Router.route_many`: one summary, not a line per
    # signal and crossing. Prompts unlike the shipped scorer's training data, in blocks.
    blocks = [
        [
            f"Write a friendly reply to a customer asking about order {i} delivery times."
            for i in range(150)
        ],
        [f"Solve {i} x + 3 = 7 for x." for i in range(150)],
    ]
    ref = router.drift.reference
    saved = router.drift
    router.drift = DriftMonitor(ref, window=100, min_samples=100, check_every=50)
    caplog.set_level(logging.WARNING, logger="router.core.drift")
    try:
        with router.drift.batch() as batch:
            for block in blocks:
                router.route_many(block)
    finally:
        mon, router.drift = router.drift, saved
    warned = [r for r in caplog.records if r.name == "router.core.drift"]
    assert len(batch.crossed) > 1 and len(warned) == 1 and mon.warnings == 1
    assert warned[0].getMessage().startswith("routing drift over a batch of 300 requests: PSI")


def test_summarise_windows_names_the_windows_past_the_threshold():
    nan = float("nan")  # as pandas holds a missing PSI
    windows = [
        ("w1", {"domain": 0.05, "difficulty": 0.1, "gain": None}),
        ("w2", {"domain": 0.30, "difficulty": 0.1, "gain": nan}),
        ("w3", {"domain": 0.40, "difficulty": 0.1, "gain": 0.02}),
        ("w4", {"domain": 0.10, "difficulty": 0.1, "gain": 0.02}),
        ("w5", {"domain": 0.26, "difficulty": 0.3, "gain": 0.02}),
    ]
    assert summarise_windows(windows, 0.25) == (
        "PSI past 0.250 in 3 of 5 windows: domain up to 0.400 (w3), past it in 3 windows: "
        "from w2 to w3, w5; difficulty up to 0.300 (w5); "
        "at the end (w5): domain 0.260, difficulty 0.300, gain 0.020"
    )
    assert summarise_windows(windows, 0.5) == (
        "no window past PSI 0.500 (5 windows; highest domain 0.400, difficulty 0.300, gain 0.020)"
    )
    many = [(f"w{i}", {"gain": 0.3 if i % 2 else 0.0}) for i in range(12)]
    assert "past it in 6 windows: w1, w3, w5, 3 more; at the end (w11): gain 0.300" in (
        summarise_windows(many, 0.25)
    )
    assert summarise_windows([("w", {"domain": None})], 0.25).startswith("no window had enough")


def test_monitor_skips_requests_without_scores():
    rng = np.random.default_rng(2)
    mon = DriftMonitor(_reference(rng), window=50, min_samples=10)
    for _ in range(20):
        mon.observe(None, None, None)
    assert mon.samples() == {"domain": 0, "difficulty": 0, "gain": 0}
    assert mon.scores()["gain"] is None


def test_the_proxy_has_drift_gauges_and_warns(tmp_path, upstream, router, caplog):
    import httpx

    from tests.learning import chat, metric, router_for, serve, write_config

    cfg = write_config(tmp_path, upstream.base_url, drift={"window": 50, "min_samples": 20})
    r = router_for(cfg, like=router)
    # Training data that was all law, easy, with no gain from escalating: live maths traffic
    # is nothing like it.
    n = 1000
    domains = r.scorer.domains_
    ref = reference_distributions(
        domains,
        np.full(n, domains.index("law")),
        np.random.default_rng(0).uniform(0, 0.05, n),
        np.random.default_rng(1).uniform(0, 0.01, n),
    )
    r.drift = DriftMonitor(ref, window=50, threshold=0.25, min_samples=20, check_every=10)
    proxy = serve(r)
    caplog.set_level(logging.WARNING, logger="router.core.drift")
    try:
        with httpx.Client(base_url=proxy.url, timeout=60) as c:
            page = c.get("/metrics").text
            assert metric(page, "router_drift_samples", signal="domain") == 0
            assert metric(page, "router_drift_psi", signal="domain") is None  # too few yet
            for i in range(25):
                assert chat(c, f"Solve {i} x + 3 = 7 for x.").status_code == 200
            page = c.get("/metrics").text
        assert metric(page, "router_drift_samples", signal="domain") == 25
        assert metric(page, "router_drift_psi", signal="domain") > 0.25
        assert metric(page, "router_drift_alarm", signal="domain") == 1
        assert metric(page, "router_drift_threshold") == 0.25
        assert any("domain PSI" in rec.getMessage() for rec in caplog.records)
    finally:
        proxy.stop()


def test_drift_watches_the_gain_head_not_the_receipts_blend(router, monkeypatch):
    # The receipt's gain blends the head with the candidates' success estimates (small-math
    # stands on Mixtral's profile, large on GPT-4's); drift's reference is the head's own.
    seen = []
    monkeypatch.setattr(router.drift, "observe", lambda *a: seen.append(a))
    text = "Solve for x: 3x + 7 = 22, then compute x squared minus 4."
    d = router.route(text)
    head = float(router.scorer.predict(router.encoder.encode([text]), [text]).gain[0])
    assert d.domain == "math" and {"small-math", "large"} <= set(d.success)
    assert seen == [(d.domain, d.difficulty, pytest.approx(head, abs=1e-6))]
    assert abs(d.gain - head) > 1e-3


def test_a_minimum_above_the_window_still_lets_the_alarm_fire():
    # drift: {window: 50, min_samples: 100}: the window never holds 100 decisions.
    rng = np.random.default_rng(3)
    mon = DriftMonitor(_reference(rng), window=50, threshold=0.25, min_samples=100)
    for _ in range(200):
        mon.observe("law", rng.beta(5, 2), rng.beta(4, 2))
    scores = mon.check()
    assert all(v is not None and v > 0.25 for v in scores.values()), scores
    assert mon.alarms() == {"domain": True, "difficulty": True, "gain": True}


def test_a_reload_with_new_drift_settings_applies_them_and_keeps_the_window(
    tmp_path, upstream, router
):
    import yaml

    from router.learning.reload import reload_router, versions_of
    from tests.learning import router_for, write_config

    cfg = write_config(tmp_path, upstream.base_url, drift={"window": 200, "threshold": 50.0})
    old = router_for(cfg, like=router)
    versions_of(old)  # what the proxy does at start
    assert old.drift.enabled
    for _ in range(150):  # all law, hard: far from the shipped scorer's training prompts
        old.drift.observe("law", 0.95, 0.9)
    assert old.drift.check()["domain"] > 0.25 and not any(old.drift.alarms().values())
    data = yaml.safe_load(cfg.read_text())
    data["drift"] = {"window": 100, "threshold": 0.25}
    cfg.write_text(yaml.safe_dump(data))
    new = reload_router(old)
    assert new.scorer is old.scorer  # same scorer: its window carries over ...
    assert (new.drift.window, new.drift.threshold) == (100, 0.25)  # ... under the new settings
    assert new.drift.samples()["domain"] == 100
    assert new.drift.alarms()["domain"] is True
    assert old.drift.threshold == 50.0  # the old router is untouched
