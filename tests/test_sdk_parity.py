"""The SDK and the proxy say the same things: an unknown policy names the field that chose it
and the nearest name, a stream cut mid-way has one status (504 for a time-out) in both faces'
rows and in the SDK's raised error, `tools` is checked by one validator; and `route()` makes
the decision `chat()` would make for a session, without recording a turn."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from router import RequestError
from router.core.config import APIKeySpec, ServerSpec
from router.server import create_app
from tests.conftest import decision_rows
from tests.proxy import Proxy, router_from, write_fault_config

MSG = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def fault_config(test_config, tmp_path_factory, upstream):
    return write_fault_config(
        test_config, tmp_path_factory.mktemp("parity") / "cfg", upstream.base_url
    )


@pytest.fixture(scope="module")
def sdk(fault_config, router, tmp_path_factory):
    """A Router of its own (it opens a decision log), sharing the session's encoder."""
    r = router_from(fault_config, router)
    r.open_decision_log(tmp_path_factory.mktemp("sdklog") / "d.db")
    yield r
    r.close()


@pytest.fixture(scope="module")
def proxy(fault_config, router, tmp_path_factory):
    keys = (
        APIKeySpec(name="typo", key="sk-typo-0123456789", policy="balancd"),
        APIKeySpec(name="plain", key="sk-plain-0123456789"),
    )
    spec = ServerSpec(
        keys=keys, keys_env=None, decision_log=str(tmp_path_factory.mktemp("plog") / "d.db")
    )
    p = Proxy(create_app(router_from(fault_config, router), spec)).start()
    yield p
    p.stop()


def _post(proxy, body: dict, key: str = "sk-plain-0123456789", path: str = "/chat/completions"):
    return httpx.post(
        proxy.base_url + path, json=body, headers={"authorization": f"Bearer {key}"}, timeout=60
    )


# ---- an unknown policy ----------------------------------------------------------------------


def test_an_unknown_policy_names_the_policy_parameter_and_the_nearest_name(sdk, upstream):
    before = len(upstream.requests)
    for call in (sdk.route, sdk.chat):
        with pytest.raises(RequestError) as e:
            call("hi", policy="balancd")
        assert e.value.param == "policy", call
        assert "unknown policy 'balancd' (did you mean 'balanced'?)" in str(e.value)
        assert "'flaky'" in str(e.value)  # the configured ones are listed
    with pytest.raises(RequestError, match=r"configured: \[") as e:
        sdk.route("hi", policy="zzzzzz")
    assert "did you mean" not in str(e.value) and e.value.param == "policy"
    assert len(upstream.requests) == before  # refused before any model was called


def test_the_proxy_names_model_for_an_unknown_policy_with_the_nearest_name(proxy):
    # "router/<policy>": the body's `model` chose it.
    r = _post(proxy, {"model": "router/balancd", "messages": MSG})
    err = r.json()["error"]
    assert r.status_code == 404 and err["param"] == "model" and err["code"] == "model_not_found"
    assert "did you mean 'router/balanced'?" in err["message"]
    assert "router/flaky" in err["message"]  # the policies, as GET /v1/models names them
    # "router" with an API key whose policy is not configured: still the body's `model`
    # (the SDK's `policy` is no field of the body), and the nearest name.
    for path in ("/chat/completions", "/route"):
        r = _post(proxy, {"model": "router", "messages": MSG}, "sk-typo-0123456789", path)
        err = r.json()["error"]
        assert r.status_code == 404 and err["param"] == "model", (path, err)
        assert "did you mean 'balanced'?" in err["message"], err


# ---- a stream that fails after its first chunk ----------------------------------------------


@pytest.mark.parametrize(("fault", "status"), [("stall", 504), ("cut", 502)])
def test_a_stream_failing_mid_way_has_one_status_in_the_sdk_and_the_proxy(
    sdk, proxy, fault, status
):
    from router.server.streaming import stream_failure

    stream = sdk.chat(f"one two three four {fault} sdk", policy=f"fb-{fault}", stream=True)
    with pytest.raises(Exception) as e:  # noqa: B017 - litellm's own class, as it came
        for _ in stream:
            pass
    # Raised as litellm raises it, with the status the proxy answers and the decision.
    assert e.value.status_code == status, type(e.value)
    assert stream_failure(e.value, str)[0] == status
    assert e.value.decision is stream.decision and stream.decision.model == fault
    assert sdk.decision_log.flush(60)
    row = decision_rows(sdk.decision_log.path)[stream.decision.request_id]
    assert (row["status"], row["phase"]) == (status, "ended") and row["error"], row

    body = {"model": f"router/fb-{fault}", "messages": MSG, "stream": True}
    with httpx.stream(
        "POST",
        proxy.base_url + "/chat/completions",
        json=body,
        headers={"authorization": "Bearer sk-plain-0123456789"},
        timeout=60,
    ) as r:
        lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    err = json.loads(lines[-1].removeprefix("data: "))["error"]
    assert err["code"] == "stream_error"
    proxy.decision_log.flush()
    assert decision_rows(proxy.decision_log.path)[r.headers["x-request-id"]]["status"] == status


# ---- tools: one validator ---------------------------------------------------------------------

BAD_TOOLS = [
    ({"tools": "lookup"}, "tools"),
    ({"tools": {"type": "function"}}, "tools"),
    ({"tools": ["lookup"]}, "tools[0]"),
    (
        {"tools": [{"type": "function", "function": {"name": "no spaces"}}]},
        "tools[0].function.name",
    ),
    ({"tools": [{"function": {"name": "f"}}]}, "tools[0].type"),
    ({"tool_choice": 5}, "tool_choice"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    (
        {
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "g"}},
        },
        "tool_choice.function.name",
    ),
]


@pytest.mark.parametrize(("params", "param"), BAD_TOOLS)
def test_tools_of_the_wrong_shape_are_refused_up_front_naming_the_field(
    sdk, upstream, params, param
):
    before = len(upstream.requests)
    for call in (sdk.route, sdk.chat):
        with pytest.raises(RequestError) as e:
            call("Find the weather in Paris", **params)
        assert e.value.param == param, (call, str(e.value))
        assert str(e.value).startswith(param + ":"), str(e.value)
    assert len(upstream.requests) == before  # no model was called


def test_the_proxy_refuses_tools_in_the_sdks_words(sdk, proxy):
    """One validator: where the body's types are right, the proxy's 400 is the SDK's error."""
    for params, param in BAD_TOOLS:
        tools, choice = params.get("tools") or [], params.get("tool_choice")
        typed = isinstance(tools, list) and all(isinstance(t, dict) for t in tools)
        if not typed or not isinstance(choice, str | dict | None):
            continue  # refused by the body's schema first (in its words, naming the same field)
        with pytest.raises(RequestError) as e:
            sdk.route("Find the weather in Paris", **params)
        r = _post(proxy, {"model": "router", "messages": MSG, **params})
        err = r.json()["error"]
        assert r.status_code == 400 and err["param"] == param, err
        assert err["message"] == str(e.value)


# ---- route() with a session ---------------------------------------------------------------------


def test_route_makes_the_decision_chat_would_for_a_session_and_records_no_turn(router):
    sid = "route-" + uuid.uuid4().hex[:8]
    text = "hello there"
    fresh = router.route(text)
    assert fresh.model != "large"
    # Turn 1, on the large model (pinned): the session remembers it.
    router.chat(text, session=sid, model="large")
    dry = router.route(text, session=sid)
    assert (dry.model, dry.sticky, dry.session) == ("large", True, sid)
    assert "session turn 2: stays on large" in dry.reason
    # A dry run records no turn: asked again, and by asyncio, it is still turn 2.
    again = asyncio.run(router.aroute(text, session=sid))
    assert again.reason == dry.reason and again.model == "large"
    real = router.chat(text, session=sid).decision
    assert (real.model, real.sticky, real.session, real.reason) == (
        dry.model,
        dry.sticky,
        dry.session,
        dry.reason,
    )
    assert "session turn 3" in router.route(text, session=sid).reason
    # A session route() opened is no session: its first real turn is a new one.
    new = "route-" + uuid.uuid4().hex[:8]
    assert router.route(text, session=new).sticky is False
    assert router.chat(text, session=new).decision.sticky is False
    with pytest.raises(RequestError) as e:
        router.route(text, session=7)
    assert e.value.param == "session"


def test_route_finds_a_conversation_keyed_session_as_chat_does(router):
    """No id: the conversation up to the router's last reply is the key, as in chat()."""
    first = [{"role": "user", "content": "Write a haiku about tea " + uuid.uuid4().hex[:6]}]
    assert router.route(first).session == router.chat(first).decision.session  # not stored
    resp = router.chat(first)
    reply = {"role": "assistant", "content": resp.choices[0].message.content}
    follow = [*first, reply, {"role": "user", "content": "and one about coffee"}]
    dry = router.route(follow)
    assert dry.session == resp.decision.session  # found: a new conversation has its own id
    real = router.chat(follow).decision
    assert (real.model, real.sticky, real.session, real.reason) == (
        dry.model,
        dry.sticky,
        dry.session,
        dry.reason,
    )
