"""The `cascade:` policy section: validation with errors that name the field, the pure cascade
decision (hybrid band), and the cost accounting of both calls."""

from __future__ import annotations

import numpy as np
import pytest

from router.core.config import ConfigError, load_config, load_policy
from router.core.data import domain_names
from router.core.decision import Decision
from router.core.policy import JUDGED, STRAIGHT_TO_LARGE, UNCHECKED, cascade_modes
from router.server.accounting import cascade_extra_cost


def _policy(tmp_path, test_config, body: str):
    path = tmp_path / "p.yaml"
    path.write_text("default: [small-general]\nlarge: [large]\n" + body)
    return load_policy(path, load_config(test_config), domain_names())


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ("cascade: {threshold: 1.5}", "cascade.threshold", "less than or equal to 1"),
        ("cascade: {band: -0.1}", "cascade.band", "greater than or equal to 0"),
        ("cascade: {buffer_tokens: 0}", "cascade.buffer_tokens", "greater than or equal to 1"),
        ("cascade: {models: [nope]}", "cascade.models[0]", "unknown model 'nope'"),
        ("cascade: {verifier: llm}", "cascade", "needs a judge model"),
        ("cascade: {judge: large}", "cascade", "only used with verifier: llm"),
        ("cascade: {verifier: llm, judge: nope}", "cascade.judge", "unknown model 'nope'"),
        ("cascade: {verifier: no/such/dir}", "cascade.verifier", "not a verifier directory"),
        ("cascade: {tool_calls: maybe}", "cascade.tool_calls", "'accept' or 'escalate'"),
        (
            "cascade: {thresold: 0.5}",
            "cascade.thresold",
            "unknown field (did you mean 'threshold'?)",
        ),
    ],
)
def test_cascade_errors_name_the_field(tmp_path, test_config, body, field, message):
    with pytest.raises(ConfigError) as e:
        _policy(tmp_path, test_config, body)
    assert e.value.field.startswith(field), e.value
    assert message in str(e.value)


def test_cascade_defaults_and_verifier_path(tmp_path, test_config):
    p = _policy(tmp_path, test_config, "cascade: {}")
    assert p.cascade.verifier == "default" and p.cascade.threshold == 0.5
    assert p.cascade.band is None and p.cascade.tool_calls == "accept"
    from router.core.verifier import default_verifier_path

    rel = tmp_path / "v"
    rel.symlink_to(default_verifier_path())
    p = _policy(tmp_path, test_config, "cascade: {verifier: v, models: [small-math]}")
    assert p.cascade.verifier == str(rel)  # resolved against the policy file
    assert "small-math" in p.model_names()


def test_cascade_modes_band():
    p = np.array([0.05, 0.3, 0.5, 0.7, 0.95])
    assert list(cascade_modes(p, 0.5, None)) == [JUDGED] * 5
    assert list(cascade_modes(p, 0.5, 0.3)) == [
        STRAIGHT_TO_LARGE,
        JUDGED,
        JUDGED,
        JUDGED,
        UNCHECKED,
    ]
    # A zero band: no request is judged; one exactly at the threshold is kept unchecked.
    assert list(cascade_modes(p, 0.5, 0.0)) == [STRAIGHT_TO_LARGE] * 2 + [UNCHECKED] * 3


def test_route_marks_the_cascade_plan(router, tmp_path, test_config):
    from router.core.policy import CompiledPolicy

    p = _policy(tmp_path, test_config, "cascade: {threshold: 0.5, band: 0.2}")
    compiled = CompiledPolicy(p, router.config.models, router.scorer.domains_)
    facts = __import__("router.core.request", fromlist=["request_facts"]).request_facts("hi")
    probs = np.full(len(router.scorer.domains_), 1 / len(router.scorer.domains_))
    modes = {}
    for difficulty in (0.05, 0.5, 0.95):
        d = compiled.decide(facts, probs, difficulty, {}, gain=0.1)
        modes[difficulty] = (d.cascade["mode"], d.model, d.escalated)
    assert modes[0.05] == ("unchecked", "small-general", False)
    assert modes[0.5] == ("judged", "small-general", False)
    assert modes[0.95] == ("large", "large", True)
    pinned = compiled.decide(
        __import__("router.core.request", fromlist=["request_facts"]).request_facts(
            "hi", pinned_model="large"
        ),
        probs,
        0.5,
        {},
    )
    assert pinned.cascade is None  # a pinned request is not cascaded


def _decision(**cascade) -> Decision:
    return Decision(
        model="m",
        tier="large",
        policy="p",
        domain=None,
        domain_confidence=None,
        difficulty=None,
        gain=None,
        success={},
        reason="",
        fallbacks=[],
        cost_estimate=1.0,
        large_cost_estimate=1.0,
        cascade=cascade or None,
    )


def test_extra_cost_counts_the_discarded_cheap_call_and_the_judge():
    assert cascade_extra_cost(_decision()) == 0
    assert cascade_extra_cost(_decision(mode="judged", escalated=True, cheap_cost=0.2)) == 0.2
    # Kept: the cheap call is the answer's own cost, not an extra.
    assert cascade_extra_cost(_decision(mode="judged", escalated=False, cheap_cost=0.2)) == 0
    assert cascade_extra_cost(
        _decision(mode="judged", escalated=True, cheap_cost=0.2, judge_cost=0.05)
    ) == pytest.approx(0.25)
    assert cascade_extra_cost(_decision(mode="large", escalated=True, cheap_cost=None)) == 0


def test_warm_up_loads_the_verifier_a_cascade_names(router, tmp_path, test_config):
    """Loading a verifier takes about a second: at start-up, not in the first cascaded
    request's flow (on the event loop, for `achat` and the proxy)."""
    import shutil

    from router.serving import cascade
    from tests.learning import router_for

    shutil.copytree(test_config.parent, tmp_path / "cfg")
    cfg = tmp_path / "cfg" / test_config.name
    (cfg.parent / "policies" / "checked.yaml").write_text(
        "name: checked\ndefault: [small-general]\nlarge: [large]\ncascade: {threshold: 0.5}\n"
    )
    r = router_for(cfg, like=router)
    cascade.verifier_at.cache_clear()
    r.warm_up()
    assert cascade.verifier_at.cache_info().currsize == 1
    loaded = cascade.verifier_at.cache_info().misses
    cascade.verifier_at("default")  # what the first cascaded request asks for
    assert cascade.verifier_at.cache_info().misses == loaded
