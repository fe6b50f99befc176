"""Requests the official openai and anthropic clients send that the proxy once mishandled, each
sent with the real client against the app served on 127.0.0.1 (the test upstream behind it):
a body field named like one of the router's own arguments (`extra_body={"policy": ...}` was a
500), the connection after an unexpected 500 (the client's next call on it was reset), the
request id the anthropic client reads (`request-id`), and an empty tool result (a 400 on chat,
where the Responses and Messages endpoints take one)."""

from __future__ import annotations

import inspect

import anthropic
import openai
import pytest

from router import Router
from router.server import create_app
from tests.proxy import Proxy, shared_server_router

USER = [{"role": "user", "content": "hello there"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="session")
def server_router(test_config, tmp_path_factory, upstream) -> Router:
    return shared_server_router(test_config, tmp_path_factory, upstream)


@pytest.fixture(scope="module")
def proxy(server_router):
    spec = server_router.config.server.model_copy(update={"decision_log": None, "keys_env": None})
    p = Proxy(create_app(server_router, spec)).start()
    yield p
    p.stop()


@pytest.fixture
def client(proxy):
    # No retries: a reset connection must show, not be retried away.
    return openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)


def _router_arguments() -> list[str]:
    """Names the chat endpoint passes to `Router.achat` next to the body's fields, and the
    SDK's own named parameters: a body field by any of them must not clash with them."""
    named = {"policy", "model", "session", "session_scope"}  # chat.py, `call_router`
    for fn in (Router.achat, Router._achat):
        for p in inspect.signature(fn).parameters.values():
            if p.kind is not inspect.Parameter.VAR_KEYWORD:
                named.add(p.name)
    return sorted(named - {"model", "messages"})  # the body's own fields


@pytest.mark.parametrize("name", _router_arguments())
def test_a_body_field_named_like_a_router_argument_is_a_400_naming_it(client, name):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="router", messages=USER, extra_body={name: "x"})
    assert e.value.body["param"] == name
    assert e.value.body["message"].startswith(f"{name}: not a request parameter")
    # The client's next call, on the same pooled connection, is answered.
    r = client.chat.completions.create(model="router", messages=USER)
    assert r.choices[0].message.content == "echo: hello there"


def test_a_policy_field_says_where_a_policy_is_chosen(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="router", messages=USER, extra_body={"policy": "balanced"}
        )
    assert '"router/<policy>"' in e.value.body["message"]


def test_after_an_unexpected_500_the_clients_next_call_is_answered(
    client, server_router, monkeypatch
):
    """Starlette raises the error again after the 500 is sent and uvicorn closes the connection:
    the answer says `connection: close`, so the client does not reuse it for its next call."""
    achat = server_router.achat
    failures = iter([RuntimeError("internal detail")])

    async def fails_once(*a, **k):
        for failure in failures:
            raise failure
        return await achat(*a, **k)

    monkeypatch.setattr(server_router, "achat", fails_once)
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="router", messages=USER)
    assert e.value.response.headers["connection"] == "close"
    assert "internal detail" not in e.value.response.text
    for _ in range(3):
        r = client.chat.completions.create(model="router", messages=USER)
        assert r.choices[0].message.content == "echo: hello there"


def test_the_anthropic_client_reads_the_routers_request_id(proxy):
    client = anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0)
    raw = client.messages.with_raw_response.create(model="router", max_tokens=50, messages=USER)
    message = raw.parse()
    rid = raw.headers["x-request-id"]
    assert rid.startswith("req_") and message._request_id == rid
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="no-such-model", max_tokens=50, messages=USER)
    assert e.value.request_id == e.value.response.headers["x-request-id"]


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_tool_result_on_chat_is_sent_as_a_result(client, upstream, empty):
    """A tool that printed nothing: OpenAI takes the empty result; the proxy sends it on as
    "(empty)", as its Responses and Messages endpoints do, since some chat upstreams refuse
    empty content."""
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    messages = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": empty},
    ]
    r = client.chat.completions.create(model="router", messages=messages, tools=TOOLS)
    assert r.choices[0].finish_reason == "tool_calls"
    sent = upstream.requests[-1]["messages"][-1]
    assert sent == {"role": "tool", "tool_call_id": "call_1", "content": "(empty)"}


def test_an_empty_user_message_is_still_a_400(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="router", messages=[{"role": "user", "content": " "}])
    assert e.value.body["param"] == "messages[0].content"


def test_the_proxy_passes_on_a_field_it_does_not_know_near_miss_or_not(client, upstream):
    """The SDK refuses a keyword argument that is a typo of an OpenAI parameter's name
    (`temprature`); the proxy passes unknown body fields on to the provider, as it always did:
    its schema checked the body, and the SDK's Python-side checks are not run again on it."""
    client.chat.completions.create(
        model="router", messages=USER, extra_body={"temprature": 0.2, "top_k": 3}
    )
    sent = upstream.requests[-1]
    assert sent["temprature"] == 0.2 and sent["top_k"] == 3
