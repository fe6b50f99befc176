import numpy as np
import pytest

from router.core.config import ModelSpec, Policy
from router.core.policy import CompiledPolicy, ScoreInput, blended_gain
from router.core.request import RequestError, RequestFacts
from tests.conftest import RECEIPT_KEYS

DOMAINS = ["math", "code", "writing"]


def spec(name, tier="small", caps=("streaming",), ctx=8000, price=1.0):
    return ModelSpec(
        name=name,
        litellm_model=f"openai/{name}",
        input_price=price,
        output_price=price,
        context_window=ctx,
        capabilities=frozenset(caps),
        tier=tier,
    )


CATALOGUE = [
    spec("cheap", caps=("streaming", "json")),
    spec("mathy", caps=("streaming", "tools"), price=2),
    spec("tiny", ctx=100, price=0.5),
    spec("big", tier="large", caps=("streaming", "tools", "json", "vision"), ctx=100000, price=10),
    spec("big2", tier="large", caps=("streaming", "tools", "json"), ctx=100000, price=8),
]


def compiled(**esc):
    p = Policy(
        name="t",
        default=("cheap", "tiny"),
        domains={"math": ("mathy",)},
        large=("big", "big2"),
        escalation=esc or {"min_domain_confidence": 0.4, "max_difficulty": 0.5},
    )
    return CompiledPolicy(p, CATALOGUE, DOMAINS)


def probs(domain, conf=0.9):
    p = np.full(len(DOMAINS), (1 - conf) / (len(DOMAINS) - 1))
    p[DOMAINS.index(domain)] = conf
    return p


FACTS = RequestFacts(prompt_tokens=20, output_tokens=100)


def test_confident_easy_request_goes_to_the_domain_specialist():
    d = compiled().decide(FACTS, probs("math"), 0.2, {})
    assert d.model == "mathy" and d.tier == "small" and not d.escalated
    assert d.domain == "math" and d.domain_confidence == pytest.approx(0.9)
    assert "specialist" in d.reason
    assert d.fallbacks == ["big", "big2", "cheap", "tiny"]


def test_domain_without_specialist_uses_default():
    d = compiled().decide(FACTS, probs("writing"), 0.2, {})
    assert d.model == "cheap" and "default model" in d.reason


def test_hard_request_escalates_with_threshold_in_reason():
    d = compiled().decide(FACTS, probs("math"), 0.8, {})
    assert d.model == "big" and d.tier == "large" and d.escalated
    assert "0.80 > max_difficulty 0.5" in d.reason
    assert d.fallbacks[0] == "big2"


def test_escalation_gain_threshold():
    pol = compiled(max_gain=0.25, max_difficulty=1.0)
    d = pol.decide(FACTS, probs("math"), 0.9, {}, gain=0.1)
    assert d.model == "mathy" and "escalation gain 0.10 ≤ 0.25" in d.reason and d.gain == 0.1
    d = pol.decide(FACTS, probs("math"), 0.1, {}, gain=0.4)
    assert d.model == "big" and d.escalated and "escalation gain 0.40 > max_gain 0.25" in d.reason


def test_the_gain_compared_blends_the_gain_head_with_the_candidates_success():
    # Head 0.1; from success: big right 0.9 × mathy wrong 0.5 = 0.45; log-odds mean ≈ 0.23.
    blend = 1 / (1 + np.sqrt((0.9 / 0.1) * (0.55 / 0.45)))
    pol = compiled(max_gain=0.2, max_difficulty=1.0)
    succ = {"mathy": 0.5, "big": 0.9}
    d = pol.decide(FACTS, probs("math"), 0.1, succ, gain=0.1)
    assert d.gain == pytest.approx(blend, abs=1e-4)
    assert d.model == "big" and f"escalation gain {blend:.2f} > max_gain 0.2" in d.reason
    # The candidates are this request's: in "writing" the cheap one is "cheap", never scored,
    # so the head decides alone; a likely cheap answer pulls the gain down.
    d = pol.decide(FACTS, probs("writing"), 0.1, succ, gain=0.1)
    assert d.model == "cheap" and d.gain == 0.1
    d = pol.decide(FACTS, probs("math"), 0.1, {"mathy": 0.99, "big": 0.9}, gain=0.3)
    assert d.model == "mathy" and d.gain < 0.2
    # gain_estimate: head compares the head alone.
    head = compiled(max_gain=0.2, max_difficulty=1.0, gain_estimate="head")
    d = head.decide(FACTS, probs("math"), 0.1, succ, gain=0.1)
    assert d.model == "mathy" and d.gain == 0.1


def test_success_estimates_learned_on_different_prompts_are_not_multiplied():
    pol = compiled(max_gain=0.2, max_difficulty=1.0)
    succ = {"mathy": 0.5, "big": 0.9}
    blended = pol.decide(FACTS, probs("math"), 0.1, succ, gain=0.1, comparable={("big", "mathy")})
    assert blended.model == "big" and blended.gain > 0.2
    # The pair is not comparable: the gain head alone (0.1) decides, and the receipt shows it.
    apart = {("big", "big"), ("mathy", "mathy"), ("big", "cheap")}
    d = pol.decide(FACTS, probs("math"), 0.1, succ, gain=0.1, comparable=apart)
    assert d.model == "mathy" and d.gain == 0.1
    # The same in a batch: ScoreInput.comparable over the candidates.
    n, K = 2, len(pol.models)
    row = np.array([succ.get(m, np.nan) for m in pol.names])
    s = ScoreInput(
        domain_probs=np.tile(probs("math"), (n, 1)),
        difficulty=np.full(n, 0.1),
        gain=np.full(n, 0.1),
        success=np.tile(row, (n, 1)),
        eligible=np.ones((n, K), bool),
        has_text=np.ones(n, bool),
        comparable=pol.comparable_matrix(apart),
    )
    assert np.allclose(pol.escalation_gain(s), 0.1)


def test_the_blend_is_vectorised_like_one_request():
    pol = compiled(max_gain=0.2, max_difficulty=1.0)
    rng = np.random.default_rng(0)
    n, K = 50, len(pol.models)
    success = rng.random((n, K))
    success[::3, pol.names.index("mathy")] = np.nan
    s = ScoreInput(
        domain_probs=np.tile(probs("math"), (n, 1)),
        difficulty=np.full(n, 0.1),
        gain=rng.random(n),
        success=success,
        eligible=np.ones((n, K), bool),
        has_text=np.ones(n, bool),
    )
    got = pol.escalation_gain(s)
    want = blended_gain(
        s.gain, success[:, pol.names.index("big")], success[:, pol.names.index("mathy")]
    )
    assert np.allclose(got, want) and np.array_equal(got[::3], s.gain[::3])
    choice, _ = pol.select(s)
    for i in range(n):
        one = {m: float(success[i, k]) for k, m in enumerate(pol.names)}
        d = pol.decide(FACTS, probs("math"), 0.1, one, gain=float(s.gain[i]))
        assert d.model == pol.names[choice[i]] and d.gain == pytest.approx(got[i], abs=1e-4)


def test_low_domain_confidence_escalates():
    d = compiled().decide(FACTS, probs("math", conf=0.35), 0.1, {})
    assert d.model == "big" and "domain confidence 0.35 < min_domain_confidence 0.4" in d.reason


def test_success_probabilities_pick_first_cheap_model_likely_to_succeed():
    pol = compiled(min_success=0.6, max_difficulty=1.0)
    d = pol.decide(FACTS, probs("writing"), 0.2, {"cheap": 0.4, "tiny": 0.7, "big": 0.9})
    assert d.model == "tiny" and d.success["tiny"] == 0.7
    d = pol.decide(FACTS, probs("writing"), 0.2, {"cheap": 0.4, "tiny": 0.5, "big": 0.9})
    assert d.model == "big" and "no cheap model predicted to succeed" in d.reason


def test_tools_rule_restricts_to_capable_models():
    facts = RequestFacts(prompt_tokens=20, output_tokens=10, needs_tools=True)
    d = compiled().decide(facts, probs("writing"), 0.1, {})
    # Neither default model supports tools: no eligible cheap model, so a large one.
    assert d.model == "big" and "supports tools" in d.reason
    d = compiled().decide(facts, probs("math"), 0.1, {})
    assert d.model == "mathy"


def test_context_window_excludes_small_window():
    facts = RequestFacts(prompt_tokens=500, output_tokens=10)
    d = compiled().decide(facts, probs("writing"), 0.1, {})
    assert d.model == "cheap" and "tiny" not in d.fallbacks


def test_vision_rule_and_no_capable_model_is_a_request_error():
    facts = RequestFacts(prompt_tokens=5, has_image=True)
    assert compiled().decide(facts, probs("writing"), 0.1, {}).model == "big"
    facts = RequestFacts(prompt_tokens=500000)
    with pytest.raises(RequestError) as e:
        compiled().decide(facts, probs("writing"), 0.1, {})
    assert (e.value.param, e.value.code) == ("messages", "context_length_exceeded")


def test_pin_wins_and_unknown_pin_is_an_error():
    facts = RequestFacts(prompt_tokens=5, pinned_model="tiny")
    d = compiled().decide(facts, probs("math"), 0.99, {})
    assert d.model == "tiny" and "pinned" in d.reason and not d.escalated
    with pytest.raises(RequestError):
        compiled().decide(RequestFacts(pinned_model="nope"), probs("math"), 0.1, {})


def test_pin_after_capability_rule_cannot_pick_an_incapable_model():
    p = Policy(name="t", default=("cheap",), large=("big",), rules=("tools", "pin"))
    pol = CompiledPolicy(p, CATALOGUE, DOMAINS)
    with pytest.raises(RequestError, match="excluded by an earlier rule"):
        pol.decide(RequestFacts(needs_tools=True, pinned_model="cheap"), probs("math"), 0.1, {})


def test_no_text_routes_to_default():
    d = compiled().decide(FACTS, None, None, {})
    assert d.model == "cheap" and d.domain is None and "no text" in d.reason


def test_costs_are_per_request_and_counterfactual_is_first_large():
    facts = RequestFacts(prompt_tokens=1000, output_tokens=500)
    d = compiled().decide(facts, probs("writing"), 0.1, {})
    assert d.cost_estimate == pytest.approx(1500 * 1.0 / 1e6)  # cheap: $1/M in and out
    assert d.large_cost_estimate == pytest.approx(1500 * 10.0 / 1e6)


def test_select_is_vectorised_and_matches_decide():
    pol = compiled()
    rng = np.random.default_rng(0)
    n = 200
    P = rng.dirichlet(np.ones(len(DOMAINS)), size=n)
    diff = rng.random(n)
    from router.core.policy import ScoreInput

    s = ScoreInput(
        P,
        diff,
        np.zeros(n),
        np.full((n, len(pol.names)), np.nan),
        np.ones((n, len(pol.names)), bool),
        np.ones(n, bool),
    )
    choice, _ = pol.select(s)
    for i in range(0, n, 17):
        assert pol.names[choice[i]] == pol.decide(FACTS, P[i], diff[i], {}).model


def test_decision_serialises_with_every_receipt_key():
    import json

    d = json.loads(compiled().decide(FACTS, probs("math"), 0.2, {}).to_json())
    assert RECEIPT_KEYS <= set(d)


def test_cost_weight_trades_success_for_cost():
    # cost relative to "big" (price 10): cheap 0.1, mathy 0.2, tiny 0.05, big 1.0, big2 0.8
    succ = {"cheap": 0.6, "mathy": 0.64, "tiny": 0.3, "big": 0.9, "big2": 0.85}
    free = compiled(cost_weight=0.0).decide(FACTS, probs("writing"), 0.2, succ)
    assert free.model == "big" and free.escalated and "p=0.90" in free.reason
    thrifty = compiled(cost_weight=0.5).decide(FACTS, probs("writing"), 0.2, succ)
    # utilities: cheap .55, mathy .54, tiny .275, big .40, big2 .45 → cheap
    assert thrifty.model == "cheap" and not thrifty.escalated


def test_cost_weight_without_success_estimates_uses_thresholds():
    d = compiled(cost_weight=0.1, max_difficulty=0.5).decide(FACTS, probs("writing"), 0.9, {})
    assert d.model == "big" and "max_difficulty" in d.reason


def test_a_model_with_little_evidence_is_not_preferred_on_hope_alone():
    # "cheap" looks a little better but rests on 2 similar prompts; "mathy" on 400.
    succ = {"cheap": 0.62, "mathy": 0.60, "tiny": 0.1, "big": 0.9, "big2": 0.85}
    evidence = {
        "cheap": {"rows": 40, "neighbours": 2.0},
        "mathy": {"rows": 5000, "neighbours": 400.0},
        "tiny": {"rows": 5000, "neighbours": 400.0},
        "big": {"rows": 5000, "neighbours": 400.0},
        "big2": {"rows": 5000, "neighbours": 400.0},
    }
    # cost weight 0.5: on the point estimates cheap .57, mathy .50, big2 .45, big .40 → cheap;
    # on the bounds cheap .62 − .28 − .05 = .29, mathy .60 − .02 − .10 = .48, big2 .43 → mathy.
    # (tie_se 0: the plain argmax, so that only the bound differs.)
    hopeful = compiled(cost_weight=0.5, pessimism=0.0, tie_se=0.0).decide(
        FACTS, probs("writing"), 0.2, succ, evidence=evidence
    )
    assert hopeful.model == "cheap"
    careful = compiled(cost_weight=0.5, pessimism=1.0, tie_se=0.0).decide(
        FACTS, probs("writing"), 0.2, succ, evidence=evidence
    )
    assert careful.model == "mathy"
    assert careful.evidence["cheap"]["lower"] < careful.evidence["mathy"]["lower"]
    assert careful.evidence["mathy"]["rows"] == 5000 and "pessimistic" in careful.reason


def test_a_cheaper_model_ahead_within_the_noise_does_not_replace_a_pricier_one():
    # cost weight 0.5, no pessimism: utilities cheap .62 − .05 = .57, big2 .85 − .40 = .45,
    # big .90 − .50 = .40; cheap is ahead of big2 by .12.
    succ = {"cheap": 0.62, "mathy": 0.3, "tiny": 0.1, "big": 0.9, "big2": 0.85}

    def decide(neighbours, tie_se=2.0):
        evidence = {m: {"rows": 5000, "neighbours": neighbours} for m in succ}
        policy = compiled(cost_weight=0.5, pessimism=0.0, tie_se=tie_se)
        return policy.decide(FACTS, probs("writing"), 0.2, succ, evidence=evidence)

    # 30 similar prompts each: s.e. .09 (cheap), .06 (big2) and .05 (big), so 2 s.e. of each
    # difference, .22 and .21, exceeds the leads of .12 and .17: all three are tied, and the
    # priciest of them, big, is kept.
    thin = decide(30.0)
    assert thin.model == "big" and thin.escalated
    assert "a cheaper candidate takes over only when more than 2 s.e. ahead" in thin.reason
    # 3000 each: s.e. under .01, the .12 lead is beyond the noise and the cheaper model wins.
    thick = decide(3000.0)
    assert thick.model == "cheap" and "takes over only" not in thick.reason
    # tie_se 0 is the plain argmax whatever the evidence.
    assert decide(30.0, tie_se=0.0).model == "cheap"
    # Unknown evidence has no standard error: nothing is tied, the argmax decides.
    unknown = compiled(cost_weight=0.5, pessimism=0.0).decide(FACTS, probs("writing"), 0.2, succ)
    assert unknown.model == "cheap"


def test_a_pricier_estimate_resting_on_nothing_is_not_kept_on_hope():
    # "big" borrows a stand-in's estimate (no neighbours of its own: s.e. .3); cheap's lead of
    # .17 rests on 3000 similar prompts (s.e. .009). Counting big's own error in full would tie
    # them (2 × .3 > .17) and hand every request to the unknown priciest model; counted no
    # more than the leader's, the gap is .025 and cheap keeps the request.
    succ = {"cheap": 0.62, "mathy": 0.3, "tiny": 0.1, "big": 0.9, "big2": 0.2}
    evidence = {m: {"rows": 5000, "neighbours": 3000.0} for m in succ}
    evidence["big"] = {"rows": 0, "neighbours": 0.0}
    d = compiled(cost_weight=0.5, pessimism=0.0).decide(
        FACTS, probs("writing"), 0.2, succ, evidence=evidence
    )
    assert d.model == "cheap" and "takes over only" not in d.reason


def test_a_candidate_that_takes_no_request_moves_none_between_the_others():
    # A free model joins the pool. Wherever it does not take the request, every request must
    # stay where it was: a leader that is not chosen must not change which other model keeps
    # the request. (Ties counted from the leader did: with the free model leading, a stronger
    # model fell out of the tie and a cheaper one took its requests.)
    from router.core.policy import lower_bound

    policy = Policy(
        name="t",
        default=("cheap", "tiny", "free"),
        large=("big", "big2"),
        escalation={"cost_weight": 0.3, "pessimism": 1.0, "tie_se": 2.0},
    )
    pool = CompiledPolicy(policy, [*CATALOGUE, spec("free", price=0.0)], DOMAINS)
    rng = np.random.default_rng(0)
    n, k = 4000, len(pool.models)
    f = pool.names.index("free")
    cost = np.tile([m.input_price for m in pool.models], (n, 1)) * 1e-6
    moved = taken = led_not_taken = 0
    for weight in (0.05, 0.3, 1.0):
        success = rng.uniform(0.02, 0.98, (n, k))
        evidence = rng.uniform(1.0, 200.0, (n, k))

        def select(eligible, success=success, evidence=evidence, weight=weight):
            s = ScoreInput(
                domain_probs=np.tile(probs("writing"), (n, 1)),
                difficulty=np.full(n, 0.5),
                gain=np.full(n, 0.2),
                success=success,
                eligible=eligible,
                has_text=np.ones(n, dtype=bool),
                cost=cost,
                evidence=evidence,
                escalation=policy.escalation.model_copy(update={"cost_weight": weight}),
            )
            return pool.select(s)[0]

        everyone = np.ones((n, k), dtype=bool)
        without = everyone.copy()
        without[:, f] = False
        before, after = select(without), select(everyone)
        moved += int(((after != before) & (after != f)).sum())
        taken += int((after == f).sum())
        big = pool.names.index("big")
        util = lower_bound(success, evidence, 1.0) - weight * cost / cost[:, [big]]
        led_not_taken += int(((util.argmax(axis=1) == f) & (after != f)).sum())
    assert moved == 0
    # Both cases occur: the free model takes requests where it is ahead beyond the noise, and
    # leads without taking them where it is not.
    assert taken > 0 and led_not_taken > 0


def test_lower_bound_shrinks_with_evidence_and_leaves_unknown_evidence_alone():
    from router.core.policy import lower_bound

    p = np.array([0.5, 0.5, 0.5, np.nan])
    b = lower_bound(p, np.array([0.0, 10.0, 1000.0, 5.0]), 1.0)
    assert b[0] < b[1] < b[2] < 0.5 and np.isnan(b[3])
    assert lower_bound(p[:1], np.array([np.nan]), 1.0)[0] == 0.5
    assert lower_bound(p, None, 1.0) is p


def test_min_success_compares_the_pessimistic_bound():
    succ = {"mathy": 0.7, "cheap": 0.7, "big": 0.9}
    thin = {"mathy": {"rows": 10, "neighbours": 1.0}}
    d = compiled(min_success=0.6).decide(FACTS, probs("math"), 0.2, succ, evidence=thin)
    assert d.model == "big" and "no cheap model predicted to succeed" in d.reason
    d = compiled(min_success=0.6, pessimism=0.0).decide(
        FACTS, probs("math"), 0.2, succ, evidence=thin
    )
    assert d.model == "mathy"
