"""Sessions: the pure stickiness decision, session keys, and the SDK applying them across turns
against a loopback tool-using upstream."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from router.core.config import ConfigError, ModelSpec, SessionRules, load_policy
from router.core.decision import Decision
from router.core.request import RequestError
from router.serving.sessions import (
    SessionState,
    conversation_hash,
    session_ref,
    stick,
    tool_loop_calls,
)
from tests.agents.conftest import TOOLS_CAPABLE

# ---- the pure decision --------------------------------------------------------------------


def spec(name: str, tier: str, price: float) -> ModelSpec:
    return ModelSpec(
        name=name,
        litellm_model=f"openai/{name}",
        input_price=price,
        output_price=price,
        context_window=8000,
        tier=tier,
    )


CAT = {
    m.name: m
    for m in [spec("cheap", "small", 0.1), spec("mid", "small", 1), spec("big", "large", 5)]
}
ALL = set(CAT)


def fresh(model: str) -> Decision:
    m = CAT[model]
    return Decision(
        model=model,
        tier=m.tier,
        policy="p",
        domain="math",
        domain_confidence=0.9,
        difficulty=0.1,
        gain=None,
        success={},
        reason="because",
        fallbacks=[n for n in ("big", "cheap") if n != model],
        cost_estimate=m.cost(100, 10),
        large_cost_estimate=CAT["big"].cost(100, 10),
    )


def ref(sid: str = "s1"):
    return session_ref([{"role": "user", "content": "hi"}], {}, sid)


def state(model: str, **kw) -> SessionState:
    return SessionState(id="s1", model=model, turns=kw.pop("turns", 2), **kw)


def decide(new: str, old: str | None, rules=None, tool=None, usable=ALL, **kw):
    st = state(old) if old else None
    rules = rules or SessionRules()
    return stick(fresh(new), ref(), st, tool, rules, CAT, usable, (100, 10), **kw)


def test_without_a_session_the_fresh_decision_stands_and_sticky_is_none():
    d = stick(fresh("cheap"), None, None, None, SessionRules(), CAT, ALL, (100, 10))
    assert d.model == "cheap" and d.sticky is None and d.session is None


def test_a_new_session_starts_on_the_fresh_choice():
    d = decide("cheap", None)
    assert (d.model, d.sticky, d.session) == ("cheap", False, "s1")


def test_a_turn_stays_on_the_session_model_instead_of_dropping_back():
    d = decide("cheap", "big")
    assert d.model == "big" and d.tier == "large" and d.sticky is True
    assert d.fallbacks == ["cheap"]  # the policy's own choice backs the kept model up
    assert d.cost_estimate == CAT["big"].cost(100, 10)
    assert "stays on big" in d.reason and "would pick cheap" in d.reason


def test_a_cascade_planned_for_the_fresh_choice_is_dropped_when_the_session_keeps_another():
    plan = {"mode": "judged", "first": "cheap", "large": "big"}
    d = stick(
        replace(fresh("cheap"), cascade=plan),
        ref(),
        state("big"),
        None,
        SessionRules(),
        CAT,
        ALL,
        (100, 10),
    )
    assert d.model == "big" and d.cascade is None
    d = stick(
        replace(fresh("cheap"), cascade=plan),
        ref(),
        state("cheap"),
        None,
        SessionRules(),
        CAT,
        ALL,
        (100, 10),
    )
    assert d.model == "cheap" and d.cascade == plan


def test_a_larger_fresh_choice_moves_the_session_up():
    d = decide("big", "mid")
    assert d.model == "big" and d.sticky is False and "moves up from mid" in d.reason


def test_same_model_is_sticky():
    d = decide("mid", "mid")
    assert d.model == "mid" and d.sticky is True


def test_allow_downgrade_lets_a_turn_drop_back():
    d = decide("cheap", "big", SessionRules(allow_downgrade=True))
    assert d.model == "cheap" and d.sticky is False and "allow_downgrade" in d.reason


def test_sticky_off_routes_every_turn_afresh():
    d = decide("cheap", "big", SessionRules(sticky=False))
    assert d.model == "cheap" and d.sticky is False


def test_a_session_model_the_request_cannot_use_is_left():
    d = decide("cheap", "big", usable={"cheap", "mid"})
    assert d.model == "cheap" and d.sticky is False and "session leaves big" in d.reason


def test_a_tool_loop_stays_on_the_calling_model_whatever_the_rules():
    rules = SessionRules(sticky=False, allow_downgrade=True)
    d = decide("cheap", None, rules, tool="big")
    assert d.model == "big" and d.sticky is True and d.reason.startswith("tool loop")
    # ... even upwards: a tool loop never switches.
    d = decide("big", None, tool="mid")
    assert d.model == "mid" and d.sticky is True


def test_a_tool_loop_model_excluded_by_hard_rules_is_left():
    d = decide("cheap", None, tool="big", usable={"cheap"})
    assert d.model == "cheap" and "tool loop leaves big" in d.reason


def test_a_pinned_request_is_not_moved():
    d = decide("cheap", "big", tool="big", pinned=True)
    assert d.model == "cheap"


# ---- keys ---------------------------------------------------------------------------------

U = [{"role": "user", "content": "hi"}]


def test_session_key_order_header_metadata_user_conversation():
    meta = {"metadata": {"session_id": "m1"}, "user": "alice"}
    assert session_ref(U, meta, "h1").id == "h1"
    # A `user` that cannot be a session id (too long, not printable) keys one by its digest.
    long_a, long_b = session_ref(U, {"user": "a" * 300}), session_ref(U, {"user": "b" * 300})
    assert long_a.id.startswith("user:#") and len(long_a.id) <= 256
    assert long_a.store != long_b.store
    assert session_ref(U, {"user": "a" * 300}).store == long_a.store
    assert session_ref(U, {"user": "ann\nlee"}).id.startswith("user:#")
    assert session_ref(U, meta).id == "m1"
    assert session_ref(U, {"user": "alice"}).id == "user:alice"
    conv = session_ref(U, {})
    assert conv.source == "conversation" and conv.id.startswith("c-") and conv.lookup is None
    assert session_ref(U, {"user": "alice"}, rules=SessionRules(key_from_user=False)).source == (
        "conversation"
    )
    assert session_ref(U, {}, rules=SessionRules(key_from_prefix=False)) is None


def test_scopes_keep_equal_ids_apart():
    assert session_ref(U, {}, "x", scope="a").lookup != session_ref(U, {}, "x", scope="b").lookup


@pytest.mark.parametrize("bad", ["", "x" * 257, "a\nb"])
def test_bad_session_ids_are_request_errors_naming_the_field(bad):
    with pytest.raises(RequestError) as e:
        session_ref(U, {}, bad)
    assert e.value.param == "session"
    with pytest.raises(RequestError) as e:
        session_ref(U, {"metadata": {"session_id": bad or "\x01"}})
    assert e.value.param == "metadata.session_id"


def test_conversation_hash_ignores_argument_formatting():
    def call(args):
        fn = {"name": "f", "arguments": args}
        return [*U, {"role": "assistant", "tool_calls": [{"id": "1", "function": fn}]}]

    assert conversation_hash(call('{"a": 1, "b": 2}')) == conversation_hash(call('{"b":2,"a":1}'))
    assert conversation_hash(call('{"a": 1}')) != conversation_hash(call('{"a": 2}'))


def test_tool_loop_calls_finds_the_calls_a_turn_answers():
    calls = [{"id": "1", "function": {"name": "f", "arguments": "{}"}}]
    loop = [*U, {"role": "assistant", "tool_calls": calls}, {"role": "tool", "tool_call_id": "1"}]
    assert tool_loop_calls(loop) == calls
    # Text sent with the results (Claude Code's reminders) is still the loop's turn ...
    assert tool_loop_calls([*loop, {"role": "user", "content": "<system-reminder>"}]) == calls
    # ... but not once the model has answered them.
    answered = [*loop, {"role": "assistant", "content": "done"}, {"role": "user", "content": "x"}]
    assert tool_loop_calls(answered) is None
    assert tool_loop_calls(U) is None


def test_session_rules_are_validated_naming_file_and_field(tmp_path, router):
    path = tmp_path / "p.yaml"
    path.write_text("default: [small-general]\nlarge: [large]\nsession: {allow_downgrade: maybe}\n")
    with pytest.raises(ConfigError) as e:
        load_policy(path, router.config, router.scorer.domains_)
    assert "p.yaml" in str(e.value) and e.value.field == "session.allow_downgrade"
    path.write_text("default: [small-general]\nlarge: [large]\nsession: {ttl_s: 0}\n")
    with pytest.raises(ConfigError) as e:
        load_policy(path, router.config, router.scorer.domains_)
    assert e.value.field == "session.ttl_s"


# ---- the SDK across turns (loopback upstream) ---------------------------------------------

TOOL = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
}
TOOL2 = {"type": "function", "function": {"name": "convert", "parameters": {"type": "object"}}}


def reply(resp) -> dict:
    m = resp.choices[0].message
    out = {"role": "assistant", "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.function.name, "arguments": c.function.arguments},
            }
            for c in m.tool_calls
        ]
    return out


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("explicit", [True, False], ids=["session-id", "conversation-key"])
def test_a_conversation_keeps_its_model_and_moves_up_only(agent_router, explicit):
    r = agent_router
    sid = {"session": f"keep-{explicit}"} if explicit else {}
    msgs = [{"role": "user", "content": f"first question {explicit}"}]
    a = run(r.achat(msgs, policy="sticky", **sid))
    assert a.decision.model == "small" and a.decision.sticky is False
    first_session = a.decision.session
    # Tools exclude "small": the fresh choice is the large model, and the session moves.
    msgs += [reply(a), {"role": "user", "content": "now with a tool"}]
    b = run(r.achat(msgs, policy="sticky", tools=[TOOL], tool_choice="none", **sid))
    assert b.decision.model == "large" and b.decision.sticky is False
    assert "session leaves small (hard rules exclude it)" in b.decision.reason
    # No tools: alone the policy would pick "small"; the session stays on "large".
    msgs += [reply(b), {"role": "user", "content": "thanks"}]
    c = run(r.achat(msgs, policy="sticky", **sid))
    assert c.decision.model == "large" and c.decision.sticky is True
    assert "would pick small" in c.decision.reason
    assert a.decision.session == b.decision.session == c.decision.session == first_session
    assert c.choices[0].message.content == "echo: thanks"
    # A fresh conversation on the same policy is not stuck.
    d = run(r.achat([{"role": "user", "content": "unrelated"}], policy="sticky"))
    assert d.decision.model == "small" and d.decision.session != first_session


def test_allow_downgrade_drops_back(agent_router):
    r, sid = agent_router, "loose-1"
    a = run(r.achat("q", policy="loose", session=sid, tools=[TOOL], tool_choice="none"))
    assert a.decision.model == "large"
    b = run(r.achat("q2", policy="loose", session=sid))
    assert b.decision.model == "small" and b.decision.sticky is False


def test_a_failing_model_falls_back_and_the_session_moves_with_it(agent_router, agent_upstream):
    r, sid = agent_router, "flaky-1"
    assert run(r.achat("one", policy="flaky", session=sid)).decision.model == "flip"
    agent_upstream.down.add("switch-flip")
    try:
        b = run(r.achat("two", policy="flaky", session=sid))
    finally:
        agent_upstream.down.discard("switch-flip")
    assert b.decision.model == "large" and b.decision.wanted == "flip"
    # The turn did not stay on the session's model: the receipt says so.
    assert b.decision.sticky is False
    # flip answers again, but the session moved to large with the fallback.
    c = run(r.achat("three", policy="flaky", session=sid))
    assert c.decision.model == "large" and c.decision.sticky is True


def test_a_tool_loop_continues_on_the_model_that_made_the_call(agent_router, agent_upstream):
    """Sessions off: only the tool-loop rule keeps the calling model (pinned large on turn 1;
    the policy alone picks small-tools)."""
    r = agent_router
    msgs = [{"role": "user", "content": "loop marker-7"}]
    a = run(r.achat(msgs, policy="nosession", model="large", tools=[TOOL, TOOL2]))
    assert a.decision.model == "large" and a.choices[0].finish_reason == "tool_calls"
    msgs += [reply(a)]
    msgs += [
        {"role": "tool", "tool_call_id": a.choices[0].message.tool_calls[0].id, "content": "r1"}
    ]
    b = run(r.achat(msgs, policy="nosession", tools=[TOOL, TOOL2]))
    assert b.decision.model == "large" and b.decision.sticky is True
    assert (
        b.decision.reason.startswith("tool loop") and "would pick small-tools" in b.decision.reason
    )
    msgs += [reply(b)]
    msgs += [
        {"role": "tool", "tool_call_id": b.choices[0].message.tool_calls[0].id, "content": "r2"}
    ]
    c = run(r.achat(msgs, policy="nosession", tools=[TOOL, TOOL2]))
    assert c.decision.model == "large" and c.choices[0].message.content == "done: r1 | r2"
    # The loop is over: a new user turn is routed afresh (sessions are off in this policy).
    msgs += [reply(c), {"role": "user", "content": "next"}]
    d = run(r.achat(msgs, policy="nosession", tools=[TOOL, TOOL2]))
    assert d.decision.model == "small-tools" and d.decision.sticky is False
    assert agent_upstream.models_seen("marker-7") == ["large", "large", "large", "small-tools"]


def test_parallel_tool_calls_continue_on_one_model(agent_router):
    r = agent_router
    msgs = [{"role": "user", "content": "parallel please"}]
    a = run(r.achat(msgs, policy="nosession", model="large", tools=[TOOL, TOOL2]))
    calls = a.choices[0].message.tool_calls
    assert len(calls) == 2 and len({c.id for c in calls}) == 2
    msgs += [reply(a)]
    msgs += [{"role": "tool", "tool_call_id": c.id, "content": f"res-{c.id}"} for c in calls]
    b = run(r.achat(msgs, policy="nosession", tools=[TOOL, TOOL2]))
    assert b.decision.model == "large" and b.decision.sticky is True
    assert b.choices[0].message.content == f"done: res-{calls[0].id} | res-{calls[1].id}"


def test_requests_with_tools_only_reach_tools_capable_models(agent_router):
    for policy in ("agents", "sticky", "loose", "nosession"):
        d = run(agent_router.achat("x", policy=policy, tools=[TOOL], tool_choice="none")).decision
        assert d.model in TOOLS_CAPABLE


def test_streamed_turns_are_recorded_too(agent_router):
    async def turn(msgs, **kw):
        stream = await agent_router.achat(msgs, policy="sticky", stream=True, **kw)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        return stream.decision, text

    msgs = [{"role": "user", "content": "stream one"}]
    d1, t1 = run(turn(msgs, tools=[TOOL], tool_choice="none"))
    assert d1.model == "large" and t1 == "echo: stream one"
    msgs += [{"role": "assistant", "content": t1}, {"role": "user", "content": "stream two"}]
    d2, t2 = run(turn(msgs))  # found by the conversation's own hash: same session, same model
    assert d2.model == "large" and d2.sticky is True and d2.session == d1.session


def test_the_sync_sdk_applies_sessions(agent_router):
    a = agent_router.chat("s1", policy="sticky", session="sync-1", tools=[TOOL], tool_choice="none")
    b = agent_router.chat("s2", policy="sticky", session="sync-1")
    assert a.decision.model == b.decision.model == "large" and b.decision.sticky is True


class BrokenStore:
    """A state store in an outage: every call fails."""

    async def get(self, key):
        raise ConnectionError("store down")

    async def set(self, key, value, ttl_s=None):
        raise ConnectionError("store down")


def test_a_store_outage_costs_stickiness_not_the_answer(agent_router):
    healthy = agent_router.state
    agent_router.state = BrokenStore()
    try:
        r = run(agent_router.achat("still answered", policy="sticky", session="outage-1"))
        calls = [
            {"id": "x1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        ]
        msgs = [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "x1", "content": "r"},
        ]
        loop = run(agent_router.achat(msgs, policy="sticky", tools=[TOOL]))
    finally:
        agent_router.state = healthy
    assert r.choices[0].message.content == "echo: still answered"
    assert r.decision.model == "small" and r.decision.sticky is False
    assert loop.decision.sticky is False and loop.choices[0].message.content == "done: r"
