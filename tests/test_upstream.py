"""The direct path (router/serving/upstream.py) against litellm, on the real test upstream.

For every behaviour of tests/upstream.py that a call can meet, both paths must give the same
answer (same ModelResponse fields; for a stream the same chunks) or the same exception (class,
status code, message, Retry-After header; for a stream also after its first chunk), and send
the upstream the same request body. The fault tests (test_faults.py) then run the whole proxy
over the direct path.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket

import pytest

from router.serving import upstream as direct_path
from router.serving.providers import load_litellm
from tests.loop_stall import first_call_stall

FAULTS = [
    "small-general",
    "fail-500",
    "fail-502",
    "fail-503",
    "fail-429",
    "retry-after-3600",
    "malformed",
    "stall-body",
    "slow",
    "refused",
    "echo-secret",
    "fail-400",
]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def refused_base():
    return f"http://127.0.0.1:{_closed_port()}/v1"


def kwargs(model: str, base: str, refused: str, **params) -> dict:
    return {
        "model": f"openai/{model}",
        "api_base": refused if model == "refused" else base,
        "api_key": "not-needed",
        "timeout": 2.0,
        "max_retries": 0,
        **params,
    }


def outcome(result) -> tuple:
    """What a caller can see of a result or an exception (ids and timings left out)."""
    if isinstance(result, Exception):
        headers = getattr(result, "litellm_response_headers", None)
        message = re.sub(r"time taken=[0-9.]+", "time taken=T", str(result))
        retry_after = dict(headers).get("retry-after") if headers is not None else None
        return (
            "error",
            type(result).__name__,
            getattr(result, "status_code", None),
            message,
            retry_after,
        )
    body = result.model_dump()
    body.pop("id", None)
    body.pop("created", None)
    return ("answer", json.dumps(body, sort_keys=True, default=str))


@pytest.mark.parametrize("model", FAULTS)
async def test_async_direct_path_behaves_like_litellm(model, upstream, refused_base):
    litellm = load_litellm()
    kw = kwargs(model, upstream.base_url, refused_base, max_tokens=16)
    assert direct_path.direct(kw)
    # Different prompts: the upstream's retry-after-* models fail once per prompt text.
    try:
        a = await litellm.acompletion(messages=[{"role": "user", "content": f"a {model}"}], **kw)
    except Exception as e:  # noqa: BLE001
        a = e
    try:
        b = await direct_path.acompletion([{"role": "user", "content": f"b {model}"}], **kw)
    except Exception as e:  # noqa: BLE001
        b = e
    oa, ob = outcome(a), outcome(b)

    def same_prompt(x):
        return x.replace(f"a {model}", f"b {model}") if isinstance(x, str) else x

    assert ob == tuple(same_prompt(x) for x in oa)


async def test_both_paths_send_the_same_request_body(upstream, refused_base):
    litellm = load_litellm()
    params = {
        "max_tokens": 7,
        "temperature": 0.3,
        "top_p": 0.9,
        "stop": ["\n"],
        "seed": 4,
        "response_format": {"type": "json_object"},
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
            }
        ],
        "tool_choice": "auto",
    }
    kw = kwargs("small-general", upstream.base_url, refused_base, **params)
    msgs = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "body check"}]},
    ]
    n = len(upstream.requests)
    await litellm.acompletion(messages=msgs, **kw)
    await direct_path.acompletion(msgs, **kw)
    via_litellm, via_direct = upstream.requests[n:]
    assert via_direct == via_litellm, (via_litellm, via_direct)


def test_other_calls_go_through_litellm():
    base = {"model": "openai/x", "api_base": "http://127.0.0.1:1/v1", "timeout": 1.0}
    assert direct_path.direct(base)
    assert direct_path.direct({**base, "stream": True, "stream_options": {"include_usage": True}})
    assert not direct_path.direct({**base, "stream_options": {"include_usage": True}})
    assert not direct_path.direct({**base, "model": "groq/llama-3.1-8b-instant"})
    assert not direct_path.direct({**base, "api_base": None})
    assert not direct_path.direct({**base, "extra_body": {"x": 1}})  # litellm knows what to do
    assert not direct_path.direct({**base, "user": "u1"})  # litellm does not send it on


# ---- streams: the same chunks, the same errors before and after the first chunk ---------------

STREAM_FAULTS = [
    *FAULTS,
    "cut-stream",
    "garbage-stream",
    "stall-stream",
]


def stream_outcome(opened, chunks: list, error) -> tuple:
    """What a caller of a stream sees: the error raised on opening it, or its chunks (ids and
    timings left out) and the error that ended it, if any."""
    if isinstance(opened, Exception):
        return ("failed to open", outcome(opened))
    seen = []
    for c in chunks:
        body = c.model_dump(exclude_none=True)
        body.pop("id", None)
        body.pop("created", None)
        seen.append(json.dumps(body, sort_keys=True, default=str))
    return ("stream", seen, outcome(error) if error is not None else None)


async def _read_async(call) -> tuple:
    try:
        it = await call()
    except Exception as e:  # noqa: BLE001
        return stream_outcome(e, [], None)
    chunks, error = [], None
    try:
        async for c in it:
            chunks.append(c)
    except Exception as e:  # noqa: BLE001
        error = e
    return stream_outcome(it, chunks, error)


def _prompts(model: str) -> tuple[list, list]:
    """The same prompt for both paths, but where the upstream fails once per prompt text."""
    a, b = ("a", "b") if model.startswith("retry-after-") else ("x", "x")
    return (
        [{"role": "user", "content": f"{a} {model} one two three"}],
        [{"role": "user", "content": f"{b} {model} one two three"}],
    )


def _same_prompt(model: str):
    def swap(x):
        if isinstance(x, str):
            return x.replace(f"a {model}", f"b {model}")
        if isinstance(x, tuple | list):
            return type(x)(swap(y) for y in x)
        return x

    return swap


@pytest.mark.parametrize("model", STREAM_FAULTS)
async def test_async_direct_stream_behaves_like_litellm(model, upstream, refused_base):
    litellm = load_litellm()
    kw = kwargs(model, upstream.base_url, refused_base, stream=True)
    assert direct_path.direct(kw)
    ma, mb = _prompts(model)
    a = await _read_async(lambda: litellm.acompletion(messages=ma, **kw))
    b = await _read_async(lambda: direct_path.acompletion(mb, **kw))
    assert b == _same_prompt(model)(a)


@pytest.fixture(scope="module")
def openai_style_upstream():
    """Streams as OpenAI and llama.cpp send them: a role-only first chunk, logprobs, tool-call
    deltas, a finish chunk (tests/cascade_upstream.py)."""
    from tests.cascade_upstream import CascadeUpstream

    up = CascadeUpstream().start()
    yield up
    up.stop()


TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"logprobs": True, "top_logprobs": 2},
        {"stream_options": {"include_usage": True}},
        {"tools": TOOLS},
        {"max_tokens": 3},
    ],
    ids=["plain", "logprobs", "usage", "tools", "length"],
)
async def test_openai_style_streams_give_the_same_chunks(params, openai_style_upstream):
    litellm = load_litellm()
    kw = {
        "model": "openai/cheap-math",
        "api_base": openai_style_upstream.base_url,
        "api_key": "not-needed",
        "timeout": 5.0,
        "stream": True,
        **params,
    }
    assert direct_path.direct(kw)
    msgs = [{"role": "user", "content": "What is 24 + 17?"}]
    n = len(openai_style_upstream.requests)
    a = await _read_async(lambda: litellm.acompletion(messages=msgs, **kw))
    b = await _read_async(lambda: direct_path.acompletion(msgs, **kw))
    assert a[0] == "stream" and a[2] is None and len(a[1]) >= 3
    assert b == a
    via_litellm, via_direct = openai_style_upstream.requests[n:]
    assert via_direct == via_litellm


# ---- pooled connections and the first call -------------------------------------------------

CHOICE = {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
ANSWER = json.dumps({"id": "chatcmpl-1", "choices": [CHOICE]}).encode()


async def _keep_alive_runs_out(reader, writer, served: list) -> None:
    """A server whose keep-alive runs out after each answer: the next request on the same
    connection meets a close, as one sent while the server shuts an idle connection does."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            if served and served[-1] is writer:
                break  # a second request on this connection: closed unanswered
            served.append(writer)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


def test_a_pooled_connection_the_server_closed_is_not_a_failed_call():
    async def run():
        served: list = []
        server = await asyncio.start_server(
            lambda r, w: _keep_alive_runs_out(r, w, served), "127.0.0.1", 0
        )
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
        kw = kwargs("m", base, base)
        try:
            answers = [await direct_path.acompletion([{"role": "user", "content": "hi"}], **kw)]
            answers.append(await direct_path.acompletion([{"role": "user", "content": "hi"}], **kw))
        finally:
            await direct_path.aclose()
            server.close()
        return answers, served

    answers, served = asyncio.run(run())
    assert [a.choices[0].message.content for a in answers] == ["ok", "ok"]
    assert len(served) == 2 and served[0] is not served[1]  # the second on a new connection


def test_the_first_call_imports_litellm_without_stalling_the_event_loop(refused_base):
    """litellm's import takes seconds; on the event loop it stalls every other request."""
    call = """
    try:
        await upstream.acompletion(
            [{"role": "user", "content": "hi"}], model="openai/m", api_base=sys.argv[1],
            api_key="k", timeout=5,
        )
    except Exception as e:
        assert "Connection error" in str(e), repr(e)
    """
    took, worst_stall = first_call_stall("from router.serving import upstream", call, refused_base)
    assert took > 0.5  # the import was paid in this call
    assert worst_stall < took / 3, (took, worst_stall)
