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
