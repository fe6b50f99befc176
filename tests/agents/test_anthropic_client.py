"""The proxy driven by the official `anthropic` client: Messages API calls, streaming, a tool
loop (plain and streamed), errors in Anthropic's shape and `x-api-key` auth, against a loopback
tool-using upstream. Answers, receipts and stickiness are checked."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from router.core.config import APIKeySpec
from router.server import create_app
from tests.proxy import Proxy

TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather of a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    {
        "name": "convert",
        "description": "Convert units",
        "input_schema": {"type": "object", "properties": {"step": {"type": "integer"}}},
    },
]


@pytest.fixture(scope="module")
def client(agent_proxy):
    with anthropic.Anthropic(base_url=agent_proxy.url, api_key="unused", max_retries=0) as c:
        yield c


def test_a_message_with_system_and_turns(client):
    raw = client.messages.with_raw_response.create(
        model="router",
        max_tokens=100,
        system="You are terse.",
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "echo: first"},
            {"role": "user", "content": [{"type": "text", "text": "second one"}]},
        ],
    )
    m = raw.parse()
    assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_")
    assert [b.type for b in m.content] == ["text"] and m.content[0].text == "echo: second one"
    assert m.stop_reason == "end_turn" and m.usage.input_tokens == 10 and m.usage.output_tokens == 5
    assert m.model == raw.headers["x-router-model"] == "small-tools"
    assert raw.headers["x-router-policy"] == "agents" and raw.headers["x-router-session"]


def test_max_tokens_and_stop_sequences(client):
    m = client.messages.create(
        model="router", max_tokens=2, messages=[{"role": "user", "content": "one two three"}]
    )
    assert m.stop_reason == "max_tokens" and m.content[0].text == "echo: one"
    m = client.messages.create(
        model="router",
        max_tokens=50,
        stop_sequences=["STOP"],
        messages=[{"role": "user", "content": "say a STOP b"}],
    )
    assert m.content[0].text == "echo: say a "


def test_streaming_events_and_the_stream_helper(client):
    events = list(
        client.messages.create(
            model="router",
            max_tokens=50,
            stream=True,
            messages=[{"role": "user", "content": "stream this text"}],
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[1] == "content_block_start" and "content_block_stop" in kinds
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == "echo: stream this text"
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].usage.output_tokens == 5
    with client.messages.stream(
        model="router", max_tokens=50, messages=[{"role": "user", "content": "helper"}]
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == final.content[0].text == "echo: helper"


def _results(m, results: dict[str, str]) -> list[dict]:
    return [
        {"type": "tool_result", "tool_use_id": b.id, "content": results[b.name]}
        for b in m.content
        if b.type == "tool_use"
    ]


def _tool_loop(
    client, agent_upstream, marker: str, streamed: bool, reminder: bool = False
) -> list[dict]:
    """A 3-step tool loop under policy "flaky" (default: flip, fallback: large): the first
    step's flip is down, so large answers it; then flip is back, and a fresh decision would
    pick flip for each later step. `reminder`: each tool_result turn also carries a text block,
    as Claude Code's do. Returns each step's headers."""
    extra = [{"type": "text", "text": "<system-reminder>stay on task</system-reminder>"}]
    extra = extra if reminder else []
    results = {"get_weather": "sunny", "convert": "20C"}
    msgs = [{"role": "user", "content": f"{marker}: weather in Oslo?"}]
    headers = []

    def step():
        if streamed:
            with client.messages.with_streaming_response.create(
                model="router/flaky", max_tokens=200, tools=TOOLS, messages=msgs, stream=True
            ) as raw:
                headers.append(dict(raw.headers))
                events = list(raw.parse())
            assert events[-1].type == "message_stop"
            kinds = [e.type for e in events]
            assert "content_block_start" in kinds and "message_delta" in kinds
            # Rebuild the message from the events, as the SDK's accumulator does (a second
            # call of the same step: it must land on the same model).
            with client.messages.stream(
                model="router/flaky", max_tokens=200, tools=TOOLS, messages=msgs
            ) as s:
                return s.get_final_message()
        raw = client.messages.with_raw_response.create(
            model="router/flaky", max_tokens=200, tools=TOOLS, messages=msgs
        )
        headers.append(dict(raw.headers))
        return raw.parse()

    agent_upstream.down.add("switch-flip")
    try:
        m1 = step()
    finally:
        agent_upstream.down.discard("switch-flip")
    assert m1.stop_reason == "tool_use"
    [use] = [b for b in m1.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input["step"] == 1
    msgs += [{"role": "assistant", "content": [b.model_dump() for b in m1.content]}]
    msgs += [{"role": "user", "content": _results(m1, results) + extra}]
    m2 = step()
    [use] = [b for b in m2.content if b.type == "tool_use"]
    assert use.name == "convert"
    msgs += [{"role": "assistant", "content": [b.model_dump() for b in m2.content]}]
    msgs += [{"role": "user", "content": _results(m2, results) + extra}]
    m3 = step()
    assert m3.stop_reason == "end_turn" and m3.content[0].text == "done: sunny | 20C"
    return headers


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
def test_a_tool_loop_stays_on_one_model_though_the_policy_would_switch(
    client, agent_upstream, streamed
):
    marker = f"anthropic-loop-{streamed}"
    headers = _tool_loop(client, agent_upstream, marker, streamed)
    assert [h["x-router-model"] for h in headers] == ["large"] * 3
    assert [h["x-router-sticky"] for h in headers[1:]] == ["true", "true"]
    assert all("the policy alone would pick flip" in h["x-router-reason"] for h in headers[1:])
    assert set(agent_upstream.models_seen(marker)) == {"switch-flip", "large"}
    # Only the first step's failed try (twice when streamed: the accumulator asks again).
    assert agent_upstream.models_seen(marker).count("switch-flip") == (2 if streamed else 1)


def test_a_tool_result_turn_with_text_is_still_the_tool_loop(client, agent_upstream):
    """Claude Code sends its tool results with a text block (<system-reminder>), which becomes
    a user message after the tool messages: the loop's rule still holds, not a session's."""
    headers = _tool_loop(client, agent_upstream, "anthropic-reminder", False, reminder=True)
    assert [h["x-router-model"] for h in headers] == ["large"] * 3
    reasons = [h["x-router-reason"] for h in headers[1:]]
    assert all(
        r.startswith("tool loop: continues on the model that made the call") for r in reasons
    )


def test_without_stickiness_the_same_tool_loop_would_switch(client, agent_upstream, monkeypatch):
    """The control: with the session and tool-loop rules taken out, the fresh decisions move
    the later steps to flip, so the test above can fail."""
    from router.serving import sessions

    monkeypatch.setattr(sessions, "stick", lambda fresh, *args, **kwargs: fresh)
    headers = _tool_loop(client, agent_upstream, "anthropic-nostick", False)
    assert [h["x-router-model"] for h in headers] == ["large", "flip", "flip"]


def test_parallel_tool_use_blocks(client):
    msgs = [{"role": "user", "content": "parallel lookups"}]
    m1 = client.messages.create(model="router", max_tokens=100, tools=TOOLS, messages=msgs)
    uses = [b for b in m1.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_weather", "convert"]
    msgs += [{"role": "assistant", "content": [b.model_dump() for b in m1.content]}]
    msgs += [{"role": "user", "content": _results(m1, {"get_weather": "W", "convert": "C"})}]
    raw = client.messages.with_raw_response.create(
        model="router", max_tokens=100, tools=TOOLS, messages=msgs
    )
    assert raw.parse().content[0].text == "done: W | C" and raw.headers["x-router-sticky"] == "true"


def test_disable_parallel_tool_use_reaches_the_model(client, agent_upstream):
    msgs = [{"role": "user", "content": "one lookup"}]
    for choice in ({"type": "auto", "disable_parallel_tool_use": True}, {"type": "any"}):
        client.messages.create(
            model="router", max_tokens=100, tools=TOOLS, tool_choice=choice, messages=msgs
        )
        sent = agent_upstream.requests[-1]
        assert sent.get("parallel_tool_calls") is (False if len(choice) > 1 else None)


def test_errors_have_anthropics_shape_and_name_the_field(client, agent_proxy):
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(
            model="router",
            max_tokens=10,
            messages=[
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "nope"}]}
            ],
        )
    body = e.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("messages.0.content.0.tool_use_id")
    r = httpx.post(agent_proxy.url + "/v1/messages", json={"model": "router", "messages": []})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("max_tokens")
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(
            model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.body["error"]["type"] == "not_found_error"
    r = httpx.get(agent_proxy.url + "/v1/messages")
    assert r.status_code == 405 and r.json()["type"] == "error"


def test_x_api_key_is_the_proxy_key(agent_router, tmp_path):
    spec = agent_router.config.server.model_copy(
        update={
            "decision_log": None,
            "keys_env": None,
            "keys": (APIKeySpec(name="agent", key="sk-agent-test-key"),),
        }
    )
    proxy = Proxy(create_app(agent_router, spec)).start()
    try:
        good = anthropic.Anthropic(base_url=proxy.url, api_key="sk-agent-test-key", max_retries=0)
        m = good.messages.create(
            model="router", max_tokens=9, messages=[{"role": "user", "content": "k"}]
        )
        assert m.content[0].text == "echo: k"
        bad = anthropic.Anthropic(base_url=proxy.url, api_key="sk-wrong-key-000", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as e:
            bad.messages.create(
                model="router", max_tokens=9, messages=[{"role": "user", "content": "k"}]
            )
        assert e.value.body["error"]["type"] == "authentication_error"
        # The same header works on the OpenAI-shaped endpoints too.
        r = httpx.get(proxy.base_url + "/models", headers={"x-api-key": "sk-agent-test-key"})
        assert r.status_code == 200
    finally:
        proxy.stop()


def test_a_stream_cut_mid_way_ends_with_an_error_event(client):
    seen = []
    with pytest.raises(anthropic.APIStatusError) as e:
        for event in client.messages.create(
            model="cutter",
            max_tokens=50,
            stream=True,
            messages=[{"role": "user", "content": "three words here"}],
        ):
            seen.append(event.type)
    assert seen[0] == "message_start" and "message_stop" not in seen
    assert e.value.body["error"]["type"] == "api_error"
    assert "upstream stream failed" in e.value.body["error"]["message"]


def test_an_image_goes_to_a_vision_model(client, agent_upstream):
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    source = {"type": "base64", "media_type": "image/png", "data": pixel}
    raw = client.messages.with_raw_response.create(
        model="router",
        max_tokens=20,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": source},
                    {"type": "text", "text": "what is it"},
                ],
            }
        ],
    )
    assert raw.headers["x-router-model"] == "large"  # the only model with "vision"
    parts = agent_upstream.requests[-1]["messages"][-1]["content"]
    assert any(p.get("type") == "image_url" for p in parts)


def test_anthropic_side_options_are_accepted_and_structured_output_translated(
    client, agent_upstream
):
    m = client.messages.create(
        model="router",
        max_tokens=20,
        system=[{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "options check"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
        service_tier="auto",
        extra_body={
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
            "context_management": {"edits": []},
        },
    )
    assert m.content[0].text == "echo: options check"
    sent = agent_upstream.requests[-1]
    assert sent["response_format"]["type"] == "json_schema"
    assert "thinking" not in sent and "context_management" not in sent
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(
            model="router",
            max_tokens=20,
            messages=[{"role": "user", "content": "x"}],
            extra_body={"mcp_servers": [{"type": "url", "url": "http://127.0.0.1:1"}]},
        )
    assert e.value.body["error"]["message"].startswith("mcp_servers")


def test_count_tokens_estimates_without_routing(client, agent_upstream):
    before = len(agent_upstream.requests)
    short = client.messages.count_tokens(
        model="router", messages=[{"role": "user", "content": "hi"}]
    )
    long = client.messages.count_tokens(
        model="router", messages=[{"role": "user", "content": "word " * 400}], tools=TOOLS
    )
    assert 0 < short.input_tokens < long.input_tokens
    assert len(agent_upstream.requests) == before  # nothing was called
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="claude-x", messages=[{"role": "user", "content": "x"}])


def test_a_text_document_reaches_the_model_as_text(client, agent_upstream):
    """RAG clients send their sources as document blocks; a chat model is sent their text."""
    docs = [
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "Grass is green."},
            "title": "Botany notes",
            "citations": {"enabled": True},
        },
        {
            "type": "document",
            "source": {"type": "content", "content": [{"type": "text", "text": "Sky is blue."}]},
            "context": "from the physics wiki",
        },
    ]
    r = client.messages.create(
        model="router",
        max_tokens=20,
        messages=[{"role": "user", "content": [*docs, {"type": "text", "text": "colours?"}]}],
    )
    sent = agent_upstream.requests[-1]["messages"][-1]["content"]
    texts = [p["text"] for p in sent] if isinstance(sent, list) else [sent]
    joined = "\n".join(texts)
    assert joined.count("<document>") == 2 and r.content[0].text.endswith("colours?")
    for piece in (
        "<source>Botany notes</source>",
        "<document_content>\nGrass is green.\n</document_content>",
        "<context>from the physics wiki</context>",
        "Sky is blue.",
    ):
        assert piece in joined
    assert all(p.get("type") == "text" for p in sent if isinstance(p, dict))
    pdf = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(
            model="router",
            max_tokens=20,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "document", "source": pdf}, {"type": "text", "text": "?"}],
                }
            ],
        )
    assert e.value.body["error"]["message"].startswith("messages.0.content.0.source")


def test_the_models_api_answers_anthropic_clients_in_anthropics_shape(client, agent_proxy):
    """The Anthropic SDKs send `anthropic-version` on every request, and type `ModelInfo` as
    `{type, id, display_name, created_at}` in a list with `has_more`, `first_id`, `last_id`:
    such a client lists and reads the router's models by those fields; an OpenAI client, which
    sends no such header, still gets OpenAI's list."""
    headers = {"anthropic-version": "2023-06-01"}
    r = httpx.get(agent_proxy.base_url + "/models", headers=headers)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"data", "has_more", "first_id", "last_id"}
    assert body["has_more"] is False
    ids = [m["id"] for m in body["data"]]
    assert "router" in ids and "large" in ids
    assert (body["first_id"], body["last_id"]) == (ids[0], ids[-1])
    for m in body["data"]:
        assert m == {
            "type": "model",
            "id": m["id"],
            "display_name": m["id"],
            "created_at": "1970-01-01T00:00:00Z",
        }
    page = client.models.list()
    assert [m.id for m in page.data] == ids and page.has_more is False
    assert page.data[0].type == "model" and page.data[0].display_name == ids[0]
    one = client.models.retrieve("router/sticky")
    assert (one.id, one.type, one.display_name) == ("router/sticky", "model", "router/sticky")
    assert one.created_at.year == 1970
    plain = httpx.get(agent_proxy.base_url + "/models").json()
    assert plain["object"] == "list" and plain["data"][0]["object"] == "model"
    assert [m["id"] for m in plain["data"]] == ids
