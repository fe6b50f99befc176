"""The proxy driven by the official `openai` client: chat across turns, and the Responses API
(plain, streamed, a 3-step function-calling loop, parallel calls, stored conversations), against
a loopback tool-using upstream. Answers, receipts and stickiness are checked."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.agents.conftest import TOOLS_CAPABLE
from tests.agents.upstream import SILENT

TOOLS = [
    {
        "type": "function",
        "name": "lookup",
        "description": "Look a city up",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
    {
        "type": "function",
        "name": "convert",
        "description": "Convert units",
        "parameters": {"type": "object", "properties": {"step": {"type": "integer"}}},
    },
]


@pytest.fixture(scope="module")
def client(agent_proxy):
    with openai.OpenAI(base_url=agent_proxy.base_url, api_key="unused", max_retries=0) as c:
        yield c


# ---- chat ---------------------------------------------------------------------------------


def test_chat_turns_keep_their_model_with_a_session_header(client):
    sid = {"x-session-id": "chat-session-1"}
    chat = client.chat.completions.with_raw_response
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    msgs = [{"role": "user", "content": "hello there"}]
    raw = chat.create(model="router/sticky", messages=msgs, extra_headers=sid)
    first = raw.parse()
    assert first.choices[0].message.content == "echo: hello there"
    assert raw.headers["x-router-model"] == "small" and raw.headers["x-router-sticky"] == "false"
    assert raw.headers["x-router-session"] == "chat-session-1"
    # Tools exclude "small": the session moves to the large model ...
    msgs += [
        {"role": "assistant", "content": "echo: hello there"},
        {"role": "user", "content": "tool?"},
    ]
    raw = chat.create(
        model="router/sticky", messages=msgs, tools=[tool], tool_choice="none", extra_headers=sid
    )
    assert raw.headers["x-router-model"] == "large"
    # ... and stays there when the policy alone would drop back to "small".
    msgs += [{"role": "assistant", "content": "echo: tool?"}, {"role": "user", "content": "ok"}]
    raw = chat.create(model="router/sticky", messages=msgs, extra_headers=sid)
    assert raw.parse().choices[0].message.content == "echo: ok"
    assert raw.headers["x-router-model"] == "large" and raw.headers["x-router-sticky"] == "true"
    assert "would pick small" in raw.headers["x-router-reason"]
    metrics = httpx.get(str(client.base_url).replace("/v1/", "/metrics")).text
    assert 'router_session_turns_total{outcome="kept",policy="sticky"}' in metrics
    # /v1/route shows what the next turn would get (and changes nothing).
    msgs += [{"role": "assistant", "content": "echo: ok"}, {"role": "user", "content": "and?"}]
    for _ in range(2):
        r = httpx.post(
            str(client.base_url) + "route",
            json={"model": "router/sticky", "messages": msgs},
            headers=sid,
        )
        assert r.json()["model"] == "large" and r.json()["sticky"] is True
        assert r.headers["x-router-session"] == "chat-session-1"


def test_chat_without_a_header_is_keyed_by_the_conversation(client):
    chat = client.chat.completions.with_raw_response
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    msgs = [{"role": "user", "content": "a conversation of its own"}]
    raw = chat.create(model="router/sticky", messages=msgs, tools=[tool], tool_choice="none")
    answer = raw.parse().choices[0].message.content
    session = raw.headers["x-router-session"]
    assert raw.headers["x-router-model"] == "large" and session.startswith("c-")
    msgs += [{"role": "assistant", "content": answer}, {"role": "user", "content": "more"}]
    raw = chat.create(model="router/sticky", messages=msgs)
    assert raw.headers["x-router-model"] == "large" and raw.headers["x-router-sticky"] == "true"
    assert raw.headers["x-router-session"] == session


def test_a_session_header_sent_as_utf8_is_read_as_utf8(agent_proxy):
    """Header bytes arrive as latin-1; an id a client wrote in UTF-8 is its own id, not a 400."""
    body = {"model": "router/sticky", "messages": [{"role": "user", "content": "hallo"}]}
    headers = {"x-session-id": "sitzung-äö".encode()}
    r = httpx.post(agent_proxy.base_url + "/chat/completions", json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["x-router-session"] == "sitzung-%C3%A4%C3%B6"  # the receipt's encoding


def test_a_bad_session_header_is_a_400_naming_it(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="router",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-session-id": "x" * 300},
        )
    assert e.value.body["param"] == "x-session-id"


# ---- Responses API ------------------------------------------------------------------------


def test_responses_plain_text(client):
    raw = client.responses.with_raw_response.create(
        model="router", input="What is routing?", instructions="Be brief."
    )
    r = raw.parse()
    assert r.object == "response" and r.status == "completed" and r.id.startswith("resp_")
    assert r.output_text == "echo: What is routing?"
    assert r.model == raw.headers["x-router-model"] == "small-tools"
    assert r.usage.input_tokens == 10 and r.usage.output_tokens == 5
    for h in ("x-router-policy", "x-router-reason", "x-router-session", "x-request-id"):
        assert raw.headers[h]


def test_responses_input_items_and_max_output_tokens(client):
    r = client.responses.create(
        model="router",
        input=[
            {"role": "system", "content": "You count."},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "one two three four"}],
            },
        ],
        max_output_tokens=2,
    )
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.output_text == "echo: one"


def test_responses_streaming_events(client):
    with client.responses.with_streaming_response.create(
        model="router", input="stream me please", stream=True
    ) as raw:
        assert raw.headers["x-router-model"] == "small-tools"
        events = list(raw.parse())
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for k in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert k in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "echo: stream me please"
    final = events[-1].response
    assert final.output_text == text and final.status == "completed"
    assert final.usage.total_tokens == 15


def test_responses_stream_helper_accumulates_our_events(client):
    with client.responses.stream(model="router", input="helper check") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "echo: helper check"


def test_an_empty_answer_is_one_empty_message_whole_or_streamed(client):
    """Clients read `output[0].content[0].text`; an answer with nothing in it must not leave
    `output` empty."""
    whole = client.responses.create(model="router", input=f"{SILENT} please")
    with client.responses.stream(model="router", input=f"{SILENT} again") as stream:
        kinds = [e.type for e in stream]
        streamed = stream.get_final_response()
    for r in (whole, streamed):
        assert r.status == "completed" and r.output_text == ""
        assert [(o.type, [c.text for c in o.content]) for o in r.output] == [("message", [""])]
    assert (
        kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == 1
    )


def _outputs(r, results: dict[str, str]) -> list[dict]:
    calls = [o for o in r.output if o.type == "function_call"]
    return [
        {"type": "function_call_output", "call_id": c.call_id, "output": results[c.name]}
        for c in calls
    ]


def _stream_step(client, **kw):
    """One streamed Responses call: (final response, headers, event types)."""
    with client.responses.with_streaming_response.create(stream=True, **kw) as raw:
        events = list(raw.parse())
        headers = dict(raw.headers)
    assert events[-1].type == "response.completed", [e.type for e in events]
    return events[-1].response, headers, [e.type for e in events]


def _three_step_loop(client, agent_upstream, marker: str):
    """A 3-step streamed loop under policy "flaky" (default: flip, fallback: large). The first
    step's flip is down, so large answers it; then flip is back, and a fresh decision would
    pick flip for every later step. Returns each step's headers."""
    results = {"lookup": "Paris: 18C", "convert": "64F"}
    agent_upstream.down.add("switch-flip")
    try:
        r1, h1, kinds = _stream_step(
            client, model="router/flaky", input=f"weather {marker} in Paris?", tools=TOOLS
        )
    finally:
        agent_upstream.down.discard("switch-flip")
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    [call] = [o for o in r1.output if o.type == "function_call"]
    assert call.name == "lookup" and json.loads(call.arguments)["step"] == 1
    assert h1["x-router-model"] == "large" and h1["x-router-attempts"] == "flip:failed,large:ok"
    r2, h2, _ = _stream_step(
        client,
        model="router/flaky",
        previous_response_id=r1.id,
        input=_outputs(r1, results),
        tools=TOOLS,
    )
    [call] = [o for o in r2.output if o.type == "function_call"]
    assert call.name == "convert"
    r3, h3, _ = _stream_step(
        client,
        model="router/flaky",
        previous_response_id=r2.id,
        input=_outputs(r2, results),
        tools=TOOLS,
    )
    assert r3.output_text == "done: Paris: 18C | 64F"
    return [h1, h2, h3]


def test_a_three_step_function_calling_loop_stays_on_its_model_though_the_policy_would_switch(
    client, agent_upstream
):
    h1, h2, h3 = _three_step_loop(client, agent_upstream, "loop-3")
    # One model for the whole loop: stickiness kept it where a fresh decision picks flip.
    assert h1["x-router-model"] == h2["x-router-model"] == h3["x-router-model"] == "large"
    assert h2["x-router-sticky"] == h3["x-router-sticky"] == "true"
    assert "the policy alone would pick flip" in h2["x-router-reason"]
    assert h2["x-router-session"] == h3["x-router-session"] == h1["x-router-session"]
    # The upstream saw the failed first try, then every step on large.
    assert agent_upstream.models_seen("loop-3") == ["switch-flip", "large", "large", "large"]


def test_without_stickiness_the_same_loop_would_switch_models(client, agent_upstream, monkeypatch):
    """The control for the test above: with the session and tool-loop rules taken out, the
    policy's fresh decisions move steps 2 and 3 to flip."""
    from router.serving import sessions

    monkeypatch.setattr(sessions, "stick", lambda fresh, *args, **kwargs: fresh)
    h1, h2, h3 = _three_step_loop(client, agent_upstream, "loop-nostick")
    assert [h["x-router-model"] for h in (h1, h2, h3)] == ["large", "flip", "flip"]
    seen = agent_upstream.models_seen("loop-nostick")
    assert seen == ["switch-flip", "large", "switch-flip", "switch-flip"]


def test_no_model_switch_inside_a_tool_loop(client, agent_upstream):
    """Sessions are off in policy "nosession" and it would pick small-tools: only the tool-loop
    rule keeps the model that made the call (the first step is pinned to "large")."""
    results = {"lookup": "a", "convert": "b"}
    r1 = client.responses.create(model="large", input="switch-check loop", tools=TOOLS)
    raw = client.responses.with_raw_response.create(
        model="router/nosession",
        previous_response_id=r1.id,
        input=_outputs(r1, results),
        tools=TOOLS,
    )
    r2 = raw.parse()
    assert raw.headers["x-router-model"] == "large" and raw.headers["x-router-sticky"] == "true"
    assert raw.headers["x-router-reason"].startswith("tool loop")
    raw = client.responses.with_raw_response.create(
        model="router/nosession",
        previous_response_id=r2.id,
        input=_outputs(r2, results),
        tools=TOOLS,
    )
    assert raw.parse().output_text == "done: a | b" and raw.headers["x-router-model"] == "large"
    # The loop is over; the next user turn is routed afresh.
    raw = client.responses.with_raw_response.create(
        model="router/nosession", previous_response_id=raw.parse().id, input="thanks", tools=TOOLS
    )
    assert raw.headers["x-router-model"] == "small-tools"
    assert agent_upstream.models_seen("switch-check") == ["large", "large", "large", "small-tools"]


def test_parallel_function_calls_and_stateless_input(client):
    """Two calls in one response; the client sends the whole conversation back itself."""
    r1 = client.responses.create(model="router", input="parallel please", tools=TOOLS, store=False)
    calls = [o for o in r1.output if o.type == "function_call"]
    assert [c.name for c in calls] == ["lookup", "convert"]
    assert len({c.call_id for c in calls}) == 2
    items = [{"role": "user", "content": "parallel please"}]
    items += [c.model_dump(exclude_none=True) for c in calls]
    items += _outputs(r1, {"lookup": "L", "convert": "C"})
    raw = client.responses.with_raw_response.create(model="router", input=items, tools=TOOLS)
    assert raw.parse().output_text == "done: L | C"
    assert raw.headers["x-router-sticky"] == "true"
    # store=False: nothing to continue from.
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model="router", previous_response_id=r1.id, input="x")
    assert e.value.body["param"] == "previous_response_id"


def test_stored_responses_can_be_read_and_deleted(client):
    r = client.responses.create(model="router", input="keep me")
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == "echo: keep me"
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_responses_errors_have_the_openai_shape_and_name_the_field(client, agent_proxy):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(
            model="router", input=[{"type": "function_call_output", "output": "x"}]
        )
    assert e.value.body["param"] == "input[0].call_id"
    assert e.value.body["message"].startswith("input[0].call_id")
    r = httpx.post(
        agent_proxy.base_url + "/responses", json={"model": "router", "input": "x", "frob": 1}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "frob"
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-17", input="x")


def test_responses_with_tools_reach_only_tools_capable_models(client):
    for model in ("router", "router/sticky", "router/loose"):
        raw = client.responses.with_raw_response.create(
            model=model, input="x", tools=TOOLS, tool_choice="none"
        )
        assert raw.headers["x-router-model"] in TOOLS_CAPABLE


def test_a_stream_cut_mid_way_ends_with_error_events(client):
    with client.responses.with_streaming_response.create(
        model="cutter", input="three words here", stream=True
    ) as raw:
        events = list(raw.parse())
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-2:] == ["error", "response.failed"]
    assert "response.completed" not in kinds
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "server_error"
    assert "upstream stream failed" in failed.error.message


def test_the_stored_conversation_is_bounded(agent_router):
    from router.server import create_app
    from tests.proxy import Proxy

    spec = agent_router.config.server.model_copy(
        update={"decision_log": None, "keys_env": None, "responses_max_messages": 4}
    )
    proxy = Proxy(create_app(agent_router, spec)).start()
    try:
        c = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
        r1 = c.responses.create(model="router", input="bounded one")
        r2 = c.responses.create(model="router", previous_response_id=r1.id, input="bounded two")
        # 4 messages stored so far: a third turn would need all 4 plus its own.
        r3 = c.responses.create(model="router", previous_response_id=r2.id, input="three")
        with pytest.raises(openai.BadRequestError) as e:
            c.responses.create(model="router", previous_response_id=r3.id, input="four")
        assert e.value.body["param"] == "previous_response_id"
        assert e.value.body["code"] == "context_length_exceeded"
        r4 = c.responses.create(
            model="router", previous_response_id=r3.id, input="four", truncation="auto"
        )
        assert r4.output_text == "echo: four"
        # Deleting a response in the middle breaks the chain the same way.
        c.responses.delete(r2.id)
        with pytest.raises(openai.BadRequestError):
            c.responses.create(model="router", previous_response_id=r3.id, input="x")
    finally:
        proxy.stop()


def test_an_input_image_goes_to_a_vision_model(client):
    image = {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
    raw = client.responses.with_raw_response.create(
        model="router",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "what is it"}, image]}],
    )
    assert raw.headers["x-router-model"] == "large"  # the only model with "vision"
    assert raw.parse().output_text == "echo: what is it"


def test_metadata_is_echoed_as_sent_whole_stored_and_streamed(client):
    # litellm adds its call timings to the metadata dict it is handed; none may reach the client.
    meta = {"team": "a", "ticket": "42"}
    r = client.responses.create(model="router", input="keep my metadata", metadata=meta)
    assert r.metadata == meta
    assert client.responses.retrieve(r.id).metadata == meta
    events = list(
        client.responses.create(model="router", input="again", metadata=meta, stream=True)
    )
    assert events[-1].type == "response.completed" and events[-1].response.metadata == meta
