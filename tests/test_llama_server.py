"""The local tier's server wrapper (router/serving/llama_server.py): chat messages in today's
OpenAI form rewritten into the one llama-cpp-python's server takes, and nothing else touched.
A real llama.cpp server behind the proxy is tests/test_local.py's."""

from __future__ import annotations

import json

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from router.serving.llama_server import ChatRequests, plain_body, plain_message


def test_text_parts_become_one_string_and_developer_becomes_system():
    parts = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    assert plain_message({"role": "developer", "content": parts}) == {
        "role": "system",
        "content": "one\ntwo",
    }
    assert plain_message({"role": "assistant", "content": None, "tool_calls": []}) == {
        "role": "assistant",
        "content": "",
        "tool_calls": [],
    }


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": "plain"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"}]},
        {"role": "user", "content": None},  # only an assistant's null means "no text"
        "not a message",
    ],
)
def test_what_it_already_takes_or_cannot_see_is_left_as_it_is(message):
    assert plain_message(message) is message


def test_a_body_without_anything_to_rewrite_is_passed_on_byte_for_byte():
    for body in (b'{"messages": [{"role": "user", "content": "hi"}]}', b"{not json", b"[1]"):
        assert plain_body(body) is body
    rewritten = json.loads(
        plain_body(b'{"model": "m", "messages": [{"role": "developer", "content": "x"}]}')
    )
    assert rewritten == {"model": "m", "messages": [{"role": "system", "content": "x"}]}


def test_a_json_schema_response_format_is_the_servers_own_schema_format():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    body = json.dumps({"messages": [], "response_format": fmt}).encode()
    assert json.loads(plain_body(body))["response_format"] == {
        "type": "json_object",
        "schema": schema,
    }
    json_mode = b'{"messages": [], "response_format": {"type": "json_object"}}'
    assert plain_body(json_mode) is json_mode


def test_max_completion_tokens_is_the_limit_the_server_reads():
    limited = json.loads(plain_body(b'{"messages": [], "max_completion_tokens": 8}'))
    assert limited == {"messages": [], "max_completion_tokens": 8, "max_tokens": 8}
    both = b'{"messages": [], "max_completion_tokens": 8, "max_tokens": 4}'
    assert plain_body(both) is both  # the caller's own max_tokens stays


async def test_the_middleware_hands_the_app_the_rewritten_body_with_its_length():
    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"length": request.headers["content-length"], "body": json.loads(body)})

    app = ChatRequests(
        Starlette(
            routes=[Route(p, echo, methods=["POST"]) for p in ("/v1/chat/completions", "/other")]
        )
    )
    sent = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        chat = (await c.post("/v1/chat/completions", json=sent)).json()
        other = (await c.post("/other", json=sent)).json()
    assert chat["body"] == {"messages": [{"role": "user", "content": "hello"}]}
    assert int(chat["length"]) == len(json.dumps(chat["body"]).encode())
    assert other["body"] == sent  # only chat requests are rewritten


async def test_n_choices_are_n_calls_with_the_prompt_counted_once():
    calls = []

    async def answer(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        calls.append(body["n"])
        usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        choice = {"index": 0, "message": {"role": "assistant", "content": f"answer {len(calls)}"}}
        return JSONResponse({"id": "x", "choices": [choice], "usage": usage})

    app = ChatRequests(Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        three = await c.post("/v1/chat/completions", json={"messages": [], "n": 3})
        streamed = await c.post(
            "/v1/chat/completions", json={"messages": [], "n": 2, "stream": True}
        )
    assert calls == [1, 1, 1]
    out = three.json()
    assert [(c["index"], c["message"]["content"]) for c in out["choices"]] == [
        (0, "answer 1"),
        (1, "answer 2"),
        (2, "answer 3"),
    ]
    assert out["usage"] == {"prompt_tokens": 7, "completion_tokens": 9, "total_tokens": 16}
    assert streamed.status_code == 400 and streamed.json()["error"]["param"] == "n"
