"""The SDK's arguments as a Python caller writes them: values a JSON body cannot hold, messages
taken from an earlier answer (pydantic models, as the openai client takes them), `metadata`,
typos of parameter names, messages without the content their role needs. Each bad one is a
`RequestError` naming it before any model is called, never a model's "failure"."""

from __future__ import annotations

import shutil

import pytest

from router import RequestError, Router

TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@pytest.fixture
def breaker_router(test_config, tmp_path) -> Router:
    """The test config with its circuit breakers on (the shipped default)."""
    d = tmp_path / "breakers"
    shutil.copytree(test_config.parent, d)
    cfg = d / "config.yaml"
    cfg.write_text(cfg.read_text().replace("breaker: {failures: 0}", "breaker: {failures: 3}"))
    return Router.from_config(cfg)


NOT_JSON = [
    ({"stop": {"a"}}, "stop"),
    ({"response_format": object()}, "response_format"),
    ({"logit_bias": {(1, 2): 3}}, "logit_bias"),
    (
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {(1,): 2}}}]},
        "tools[0].function.parameters",
    ),
]


@pytest.mark.parametrize("params, param", NOT_JSON, ids=[p for _, p in NOT_JSON])
def test_a_value_json_cannot_hold_is_a_request_error_not_an_outage(
    breaker_router, upstream, params, param
):
    """It failed every model of the chain as their "error" (a TypeError while encoding the
    body): an UpstreamError, and three such calls opened every breaker, so the next good call
    found no model to answer ("circuit open")."""
    before = len(upstream.requests)
    for _ in range(4):
        with pytest.raises(RequestError) as e:
            breaker_router.chat("hello there", **params)
        assert e.value.param == param and "JSON" in str(e.value)
    assert len(upstream.requests) == before
    resp = breaker_router.chat("hello there")
    assert resp.decision.attempts[-1].ok and len(resp.decision.attempts) == 1


@pytest.mark.parametrize(
    "params, param",
    [
        ({"response_format": "json", "top_k": 1}, "response_format"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"stream_options": "usage", "stream": True}, "stream_options"),
    ],
)
def test_a_response_format_or_stream_options_of_the_wrong_shape_is_a_request_error(
    breaker_router, upstream, params, param
):
    """A string `response_format` on litellm's path (here for `top_k`) failed every model
    ("Unsupported response_format type"), opening their breakers; a string `stream_options`
    was an AttributeError. The proxy's schema refuses both, in these words."""
    before = len(upstream.requests)
    for _ in range(4):
        with pytest.raises(RequestError) as e:
            breaker_router.chat("hello there", **params)
        assert e.value.param == param
    assert len(upstream.requests) == before
    assert breaker_router.chat("hello there", top_k=1).decision.attempts[-1].ok


def test_a_message_part_json_cannot_hold_names_where_it_is(router, upstream):
    before = len(upstream.requests)
    msgs = [{"role": "user", "content": [{"type": "text", "text": "hi", "extra": {1, 2}}]}]
    with pytest.raises(RequestError) as e:
        router.chat(msgs)
    assert e.value.param == "messages[0].content[0].extra"
    with pytest.raises(RequestError, match="pydantic model Answer is a class") as e:
        from pydantic import BaseModel

        class Answer(BaseModel):
            x: int

        router.route("hi", response_format=Answer)
    assert e.value.param == "response_format" and len(upstream.requests) == before


def test_a_message_from_an_earlier_answer_is_sent_as_its_dict(router, upstream):
    """`messages.append(resp.choices[0].message)`, as with the openai client: it was refused
    ("messages[1] must be an object"); a tool call object inside a dict failed every model."""
    first = router.chat("Find the weather in Paris", tools=TOOLS, tool_choice="auto")
    message = first.choices[0].message
    assert message.tool_calls  # the test upstream calls the tool
    result = {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "sunny"}
    asked = {"role": "user", "content": "Find the weather in Paris"}
    for turn in (message, {"role": "assistant", "tool_calls": message.tool_calls}):
        resp = router.chat((asked, turn, result), tools=TOOLS)  # a tuple is taken as a list
        assert resp.decision.attempts[-1].ok
        sent = upstream.requests[-1]["messages"][1]
        assert sent["role"] == "assistant" and "provider_specific_fields" not in sent
        assert sent["tool_calls"][0]["function"]["name"] == "lookup"
    assert router.route([asked, message, result]).model


def test_metadata_is_an_object_of_string_keys_and_the_callers_stays_untouched(router, upstream):
    """litellm wrote its own entries (timings, headers) into the caller's `metadata`, and one
    with a key that is not a string failed every model."""
    before = len(upstream.requests)
    for bad in ({1: "x"}, "x", ["session_id"]):
        with pytest.raises(RequestError, match="metadata: must be an object") as e:
            router.chat("hi", metadata=bad)
        assert e.value.param == "metadata"
    assert len(upstream.requests) == before
    metadata = {"session_id": "m-1"}
    resp = router.chat("hi", metadata=metadata)
    assert resp.decision.session == "m-1"
    assert metadata == {"session_id": "m-1"}


@pytest.mark.parametrize(
    "typo, meant",
    [("temprature", "temperature"), ("max_token", "max_tokens"), ("sesion", "session")],
)
def test_a_typo_of_a_parameter_is_a_request_error_naming_it(router, upstream, typo, meant):
    """`temprature=0.2` went to the provider, which refuses it (OpenAI) or ignores it (a local
    server): an answer at the default temperature, and no word of why."""
    before = len(upstream.requests)
    for call in (router.chat, router.route):
        with pytest.raises(RequestError, match=f"did you mean '{meant}'") as e:
            call("hi", **{typo: 1})
        assert e.value.param == typo and "extra_body" in str(e.value)
    assert len(upstream.requests) == before


def test_a_providers_own_parameter_still_passes_through(router, upstream):
    router.chat("hi", top_k=3, reasoning_format="hidden", extra_body={"temprature": 0.2})
    sent = upstream.requests[-1]
    assert sent["top_k"] == 3 and sent["reasoning_format"] == "hidden"
    assert sent["temprature"] == 0.2  # as the error says: extra_body sends any name


@pytest.mark.parametrize(
    "message, problem",
    [
        ({"role": "user", "content": None}, "required for role 'user'"),
        ({"role": "user"}, "required for role 'user'"),
        ({"role": "system", "content": None}, "required for role 'system'"),
        ({"role": "assistant", "content": None}, "needs content or tool_calls"),
    ],
)
def test_a_message_without_the_content_its_role_needs_is_refused_before_routing(
    router, upstream, message, problem
):
    """It was routed and sent: OpenAI answers such a request 400 after the routing, a local
    server answers an empty prompt. The proxy refused it already, in these words."""
    before = len(upstream.requests)
    msgs = [{"role": "user", "content": "hi"}, message] if message["role"] != "user" else [message]
    at = f"messages[{len(msgs) - 1}].content"
    for call in (router.chat, router.route):
        with pytest.raises(RequestError, match=problem) as e:
            call(msgs)
        assert e.value.param == at
    assert len(upstream.requests) == before


def test_route_many_says_which_conversation_is_bad(router):
    """The error named `messages[0].role`: the first message of which conversation?"""
    with pytest.raises(RequestError) as e:
        router.route_many(["fine", [{"role": "bot", "content": "x"}]])
    assert e.value.param == "conversations[1][0].role"
    assert str(e.value).startswith("conversations[1]: messages[0].role must be one of")


def test_a_closed_router_says_which_calls_it_refuses(test_config):
    import asyncio

    r = Router.from_config(test_config)
    r.close()
    with pytest.raises(RuntimeError, match=r"chat\(\) and achat\(\) need an open router"):
        asyncio.run(r.achat("hi"))
