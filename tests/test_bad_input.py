"""Bad input, table-driven: every malformed request is a 4xx OpenAI error naming the field,
never a 5xx, on both endpoints that read a chat body. The proxy answers normally afterwards."""

from __future__ import annotations

import json

import httpx
import pytest

from router.server import create_app
from tests.proxy import Proxy, shared_server_router

MAX_BODY = 2_500_000  # above routing_text.max_input_chars (2,000,000), so both limits show
U = [{"role": "user", "content": "hi"}]


def body(**fields) -> dict:
    return {"model": "router", "messages": U, **fields}


def msg(**m) -> dict:
    return body(messages=[{"role": "user", **m}])


def part(p) -> dict:
    return msg(content=[p])


def tool(fn) -> dict:
    return body(tools=[{"type": "function", "function": fn}])


def nested(depth: int) -> bytes:
    return b'{"model": "router", "messages": [], "x": ' + b"[" * depth + b"]" * depth + b"}"


FN = {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}
JSON = {"content-type": "application/json"}

# id → (body: dict or raw bytes, extra headers, status, param the error must name or None)
CASES: dict[str, tuple[object, dict, int, str | None]] = {
    # -- not JSON, or not the JSON we take
    "invalid-json": (b'{"model": "router", "messages": [', JSON, 400, None),
    "empty-body": (b"", JSON, 400, None),
    "json-null": (b"null", JSON, 400, None),
    "json-array": ([1, 2], {}, 400, None),
    "json-string": ("hello", {}, 400, None),
    "trailing-garbage": (b'{"model": "router", "messages": []} xyz', JSON, 400, None),
    "nan": (b'{"model": "router", "messages": [], "temperature": NaN}', JSON, 400, None),
    "infinity": (b'{"model": "router", "messages": [], "top_p": -Infinity}', JSON, 400, None),
    "number-overflow": (
        b'{"model": "router", "messages": [], "temperature": 1e999}',
        JSON,
        400,
        None,
    ),
    "integer-5000-digits": (
        b'{"model": "router", "messages": [], "max_tokens": ' + b"9" * 5000 + b"}",
        JSON,
        400,
        None,
    ),
    "invalid-utf8": (
        b'{"model": "router", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        JSON,
        400,
        None,
    ),
    "raw-nul-byte": (
        b'{"model": "router", "messages": [{"role": "user", "content": "a\x00b"}]}',
        JSON,
        400,
        None,
    ),
    "escaped-nul": (msg(content="a\u0000b"), {}, 400, "messages[0].content"),
    "lone-surrogate": (
        b'{"model": "router", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
        JSON,
        400,
        "messages[0].content",
    ),
    "lone-surrogate-extra-field": (
        b'{"model": "router", "messages": [{"role": "user", "content": "hi"}], "vendor": "\\udfff"}',
        JSON,
        400,
        "vendor",
    ),
    "nesting-100000": (nested(100_000), JSON, 400, None),
    "nesting-100": (nested(100), JSON, 400, "x" + "[0]" * 63),  # cut at the depth limit
    # -- wrong content type
    "content-type-text": (
        json.dumps(body()).encode(),
        {"content-type": "text/plain"},
        415,
        "content-type",
    ),
    "content-type-form": (
        b"model=router",
        {"content-type": "application/x-www-form-urlencoded"},
        415,
        "content-type",
    ),
    "content-type-multipart": (
        b"--x--",
        {"content-type": "multipart/form-data; boundary=x"},
        415,
        "content-type",
    ),
    # -- model
    "model-missing": ({"messages": U}, {}, 400, "model"),
    "model-number": (body(model=123), {}, 400, "model"),
    "model-empty": (body(model=""), {}, 400, "model"),
    "model-too-long": (body(model="m" * 1000), {}, 400, "model"),
    "model-unknown": (body(model="gpt-17"), {}, 404, "model"),
    "policy-unknown": (body(model="router/nope"), {}, 404, "model"),
    "policy-path-traversal": (body(model="router/../../etc/passwd"), {}, 404, "model"),
    "model-path-traversal": (body(model="../../etc/passwd"), {}, 404, "model"),
    "model-absolute-path": (body(model="/etc/passwd"), {}, 404, "model"),
    # -- messages
    "messages-missing": ({"model": "router"}, {}, 400, "messages"),
    "messages-null": (body(messages=None), {}, 400, "messages"),
    "messages-string": (body(messages="hello"), {}, 400, "messages"),
    "messages-object": (body(messages={"role": "user"}), {}, 400, "messages"),
    "messages-empty": (body(messages=[]), {}, 400, "messages"),
    "message-not-object": (body(messages=[5]), {}, 400, "messages[0]"),
    "role-missing": (body(messages=[{"content": "hi"}]), {}, 400, "messages[0].role"),
    "role-unknown": (msg(role="wizard", content="hi"), {}, 400, "messages[0].role"),
    "role-number": (body(messages=[{"role": 5, "content": "hi"}]), {}, 400, "messages[0].role"),
    "content-missing": (body(messages=[{"role": "user"}]), {}, 400, "messages[0].content"),
    "content-null": (msg(content=None), {}, 400, "messages[0].content"),
    "content-empty": (msg(content=""), {}, 400, "messages[0].content"),
    "content-whitespace": (msg(content="  \n\t "), {}, 400, "messages[0].content"),
    "content-number": (msg(content=5), {}, 400, "messages[0].content"),
    "content-object": (msg(content={"text": "hi"}), {}, 400, "messages[0].content"),
    "content-empty-list": (msg(content=[]), {}, 400, "messages[0].content"),
    "system-empty": (
        body(messages=[{"role": "system", "content": ""}, *U]),
        {},
        400,
        "messages[0].content",
    ),
    "name-number": (msg(content="hi", name=7), {}, 400, "messages[0].name"),
    "assistant-empty": (body(messages=[*U, {"role": "assistant"}]), {}, 400, "messages[1].content"),
    "tool-without-call-id": (
        body(messages=[*U, {"role": "tool", "content": "42"}]),
        {},
        400,
        "messages[1].tool_call_id",
    ),
    "tool-calls-not-list": (
        body(messages=[*U, {"role": "assistant", "content": None, "tool_calls": "x"}]),
        {},
        400,
        "messages[1].tool_calls",
    ),
    "tool-call-without-function": (
        body(messages=[*U, {"role": "assistant", "tool_calls": [{"id": "1"}]}]),
        {},
        400,
        "messages[1].tool_calls[0]",
    ),
    "huge-content": (msg(content="x" * 2_100_000), {}, 400, "messages"),
    "huge-body": (msg(content="x" * (MAX_BODY + 10)), {}, 413, None),
    # -- content parts: images, audio, unknown kinds
    "part-not-object": (msg(content=["hi"]), {}, 400, "messages[0].content[0]"),
    "part-without-type": (part({"text": "hi"}), {}, 400, "messages[0].content[0]"),
    "part-unknown-type": (
        part({"type": "video", "video": {}}),
        {},
        400,
        "messages[0].content[0].type",
    ),
    "text-part-number": (part({"type": "text", "text": 3}), {}, 400, "messages[0].content[0].text"),
    "image-part-no-url": (part({"type": "image_url"}), {}, 400, "messages[0].content[0].image_url"),
    "image-part-url-number": (
        part({"type": "image_url", "image_url": {"url": 5}}),
        {},
        400,
        "messages[0].content[0].image_url",
    ),
    "image-no-vision-model": (
        {**part({"type": "image_url", "image_url": {"url": "data:,"}}), "model": "router/slowonly"},
        {},
        400,
        "messages",
    ),
    "audio-part-no-audio-model": (
        part({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
        {},
        400,
        "messages[0].content[0]",
    ),
    "audio-part-malformed": (
        part({"type": "input_audio", "input_audio": "AAAA"}),
        {},
        400,
        "messages[0].content[0].input_audio",
    ),
    # -- parameters
    "max-tokens-negative": (body(max_tokens=-1), {}, 400, "max_tokens"),
    "max-tokens-zero": (body(max_tokens=0), {}, 400, "max_tokens"),
    "max-tokens-float": (body(max_tokens=1.5), {}, 400, "max_tokens"),
    "max-tokens-string": (body(max_tokens="10"), {}, 400, "max_tokens"),
    "max-tokens-bool": (body(max_tokens=True), {}, 400, "max_tokens"),
    "max-completion-tokens-negative": (
        body(max_completion_tokens=-5),
        {},
        400,
        "max_completion_tokens",
    ),
    "temperature-high": (body(temperature=5), {}, 400, "temperature"),
    "temperature-string": (body(temperature="hot"), {}, 400, "temperature"),
    "top-p-negative": (body(top_p=-1), {}, 400, "top_p"),
    "n-zero": (body(n=0), {}, 400, "n"),
    "n-huge": (body(n=1000), {}, 400, "n"),
    "stream-string": (body(stream="yes"), {}, 400, "stream"),
    "stream-number": (body(stream=1), {}, 400, "stream"),
    "stream-options-string": (body(stream=True, stream_options="usage"), {}, 400, "stream_options"),
    "stop-number": (body(stop=5), {}, 400, "stop"),
    "stop-list-of-numbers": (body(stop=[1, 2]), {}, 400, "stop"),
    "seed-string": (body(seed="x"), {}, 400, "seed"),
    "user-number": (body(user=5), {}, 400, "user"),
    # -- tools and their schemas
    "tools-string": (body(tools="lookup"), {}, 400, "tools"),
    "tools-item-number": (body(tools=[5]), {}, 400, "tools[0]"),
    "tool-without-type": (body(tools=[{"function": FN}]), {}, 400, "tools[0].type"),
    "tool-without-function": (body(tools=[{"type": "function"}]), {}, 400, "tools[0].function"),
    "tool-name-missing": (tool({"parameters": {}}), {}, 400, "tools[0].function.name"),
    "tool-name-invalid": (tool({"name": "my tool!"}), {}, 400, "tools[0].function.name"),
    "tool-description-number": (
        tool({"name": "f", "description": 3}),
        {},
        400,
        "tools[0].function.description",
    ),
    "tool-parameters-string": (
        tool({"name": "f", "parameters": "object"}),
        {},
        400,
        "tools[0].function.parameters",
    ),
    "tool-parameters-type-number": (
        tool({"name": "f", "parameters": {"type": 5}}),
        {},
        400,
        "tools[0].function.parameters.type",
    ),
    "tool-properties-list": (
        tool({"name": "f", "parameters": {"type": "object", "properties": []}}),
        {},
        400,
        "tools[0].function.parameters.properties",
    ),
    "tool-property-schema-number": (
        tool({"name": "f", "parameters": {"type": "object", "properties": {"q": 5}}}),
        {},
        400,
        "tools[0].function.parameters.properties.q",
    ),
    "tool-required-numbers": (
        tool({"name": "f", "parameters": {"required": [1]}}),
        {},
        400,
        "tools[0].function.parameters.required",
    ),
    "tool-choice-unknown-word": (body(tool_choice="sometimes"), {}, 400, "tool_choice"),
    "tool-choice-number": (body(tool_choice=5), {}, 400, "tool_choice"),
    "tool-choice-required-no-tools": (body(tool_choice="required"), {}, 400, "tool_choice"),
    "tool-choice-unknown-function": (
        {**tool(FN), "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        {},
        400,
        "tool_choice.function.name",
    ),
    # -- response_format
    "response-format-string": (body(response_format="json"), {}, 400, "response_format"),
    "response-format-unknown-type": (
        body(response_format={"type": "xml"}),
        {},
        400,
        "response_format.type",
    ),
    "response-format-schema-no-name": (
        body(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
        {},
        400,
        "response_format.json_schema",
    ),
}


@pytest.fixture(scope="module")
def server_router(test_config, tmp_path_factory, upstream):
    return shared_server_router(test_config, tmp_path_factory, upstream)


@pytest.fixture(scope="module")
def proxy(server_router):
    spec = server_router.config.server.model_copy(
        update={"decision_log": None, "max_body_bytes": MAX_BODY, "keys_env": None}
    )
    p = Proxy(create_app(server_router, spec)).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def http(proxy):
    with httpx.Client(base_url=proxy.base_url, timeout=60) as c:
        yield c


def send(http: httpx.Client, path: str, case: str) -> httpx.Response:
    payload, headers, _, _ = CASES[case]
    if isinstance(payload, bytes):
        return http.post(path, content=payload, headers=headers)
    return http.post(path, json=payload, headers=headers)


def test_the_table_is_big_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("path", ["/chat/completions", "/route"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_a_4xx_naming_the_field(http, path, case):
    _, _, status, param = CASES[case]
    r = send(http, path, case)
    assert r.status_code == status, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"].endswith("_error") and "Traceback" not in r.text
    assert r.headers["x-request-id"]
    if param is not None:
        assert err["param"] == param, err
        assert param in err["message"], err
    assert len(r.content) < 5_000  # an error never echoes a huge input back


def test_a_chunked_body_over_the_limit_is_413(http):
    def chunks():
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"x" * 65536

    r = http.post("/chat/completions", content=chunks(), headers=JSON)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_wrong_method_and_unknown_path(http, proxy):
    r = http.get("/chat/completions")
    assert r.status_code == 405 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(proxy.url + "/../../etc/passwd").status_code == 404


def test_a_good_request_still_works_after_the_bad_ones(http):
    r = http.post("/chat/completions", json=body(messages=[{"role": "user", "content": "ok?"}]))
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "echo: ok?"


# ---- the agent endpoints: each API's own error shape, naming the field ---------------------

FN_TOOL = {"type": "function", "name": "f", "parameters": {"type": "object"}}


def rbody(**fields) -> dict:
    return {"model": "router", "input": "hi", **fields}


def items(*its) -> dict:
    return rbody(input=list(its))


def call_item(call_id: str = "c1") -> dict:
    return {"type": "function_call", "call_id": call_id, "name": "f", "arguments": "{}"}


# id → (body: dict or raw bytes, extra headers, status, field the error must name or None)
RESPONSES_CASES: dict[str, tuple[object, dict, int, str | None]] = {
    "invalid-json": (b'{"model": "router", "input": ', JSON, 400, None),
    "json-array": ([1], {}, 400, None),
    "content-type-text": (b"{}", {"content-type": "text/plain"}, 415, "content-type"),
    "model-missing": ({"input": "hi"}, {}, 400, "model"),
    "model-unknown": (rbody(model="gpt-17"), {}, 404, "model"),
    "input-missing": ({"model": "router"}, {}, 400, "input"),
    "input-number": (rbody(input=5), {}, 400, "input"),
    "input-empty-string": (rbody(input=" "), {}, 400, "input"),
    "input-empty-list": (rbody(input=[]), {}, 400, "input"),
    "input-nul": (rbody(input="a\u0000b"), {}, 400, "input"),
    "item-not-object": (items(5), {}, 400, "input[0]"),
    "item-unknown-type": (items({"type": "web_search_call"}), {}, 400, "input[0].type"),
    "item-without-type": (items({"content": "x"}), {}, 400, "input[0].type"),
    "item-ref-unknown": (items({"type": "item_reference", "id": "x"}), {}, 404, "input[0].id"),
    "item-ref-without-id": (items({"type": "item_reference"}), {}, 400, "input[0].id"),
    "role-unknown": (items({"role": "wizard", "content": "x"}), {}, 400, "input[0].role"),
    "content-number": (items({"role": "user", "content": 5}), {}, 400, "input[0].content"),
    "content-empty": (items({"role": "user", "content": ""}), {}, 400, "input[0].content"),
    "part-unknown": (
        items({"role": "user", "content": [{"type": "input_video"}]}),
        {},
        400,
        "input[0].content[0].type",
    ),
    "part-text-number": (
        items({"role": "user", "content": [{"type": "input_text", "text": 5}]}),
        {},
        400,
        "input[0].content[0].text",
    ),
    "image-without-url": (
        items({"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}),
        {},
        400,
        "input[0].content[0].image_url",
    ),
    "call-without-name": (
        items({"type": "function_call", "call_id": "c", "arguments": "{}"}),
        {},
        400,
        "input[0].name",
    ),
    "output-without-call-id": (
        items({"type": "function_call_output", "output": "x"}),
        {},
        400,
        "input[0].call_id",
    ),
    "output-number": (
        items(call_item(), {"type": "function_call_output", "call_id": "c1", "output": 5}),
        {},
        400,
        "input[1].output",
    ),
    "output-for-unknown-call": (
        items(call_item(), {"type": "function_call_output", "call_id": "c2", "output": "x"}),
        {},
        400,
        "input[1].call_id",
    ),
    "instructions-number": (rbody(instructions=5), {}, 400, "instructions"),
    "tools-string": (rbody(tools="f"), {}, 400, "tools"),
    "tool-web-search": (rbody(tools=[{"type": "web_search"}]), {}, 400, "tools[0].type"),
    "tool-name-invalid": (
        rbody(tools=[{"type": "function", "name": "a b"}]),
        {},
        400,
        "tools[0].name",
    ),
    "tool-parameters-string": (
        rbody(tools=[{**FN_TOOL, "parameters": "object"}]),
        {},
        400,
        "tools[0].parameters",
    ),
    "tool-choice-word": (rbody(tool_choice="sometimes"), {}, 400, "tool_choice"),
    "tool-choice-unknown-function": (
        rbody(tools=[FN_TOOL], tool_choice={"type": "function", "name": "g"}),
        {},
        400,
        "tool_choice.name",
    ),
    "max-output-tokens-zero": (rbody(max_output_tokens=0), {}, 400, "max_output_tokens"),
    "temperature-high": (rbody(temperature=3), {}, 400, "temperature"),
    "stream-string": (rbody(stream="yes"), {}, 400, "stream"),
    "metadata-number-value": (rbody(metadata={"a": 1}), {}, 400, "metadata.a"),
    "text-format-unknown": (rbody(text={"format": {"type": "xml"}}), {}, 400, "text.format.type"),
    "truncation-unknown": (rbody(truncation="some"), {}, 400, "truncation"),
    "background-true": (rbody(background=True), {}, 400, "background"),
    "unknown-parameter": (rbody(frob=1), {}, 400, "frob"),
    "previous-response-unknown": (
        rbody(previous_response_id="resp_nope"),
        {},
        404,
        "previous_response_id",
    ),
    "session-header-too-long": (rbody(), {"x-session-id": "s" * 300}, 400, "x-session-id"),
}


def mbody(**fields) -> dict:
    return {
        "model": "router",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    } | fields


def mmsg(*content) -> dict:
    return mbody(messages=[{"role": "user", "content": list(content)}])


ATOOL = {"name": "f", "input_schema": {"type": "object"}}
USE = {"type": "tool_use", "id": "t1", "name": "f", "input": {}}

MESSAGES_CASES: dict[str, tuple[object, dict, int, str | None]] = {
    "invalid-json": (b'{"model": "router", "messages": [', JSON, 400, None),
    "json-string": ("hi", {}, 400, None),
    "content-type-text": (b"{}", {"content-type": "text/plain"}, 415, "content-type"),
    "model-unknown": (mbody(model="claude-x"), {}, 404, "model"),
    "max-tokens-missing": (
        {"model": "router", "messages": [{"role": "user", "content": "x"}]},
        {},
        400,
        "max_tokens",
    ),
    "max-tokens-zero": (mbody(max_tokens=0), {}, 400, "max_tokens"),
    "max-tokens-string": (mbody(max_tokens="5"), {}, 400, "max_tokens"),
    "messages-missing": ({"model": "router", "max_tokens": 5}, {}, 400, "messages"),
    "messages-empty": (mbody(messages=[]), {}, 400, "messages"),
    "message-not-object": (mbody(messages=[5]), {}, 400, "messages.0"),
    "role-system": (
        mbody(messages=[{"role": "system", "content": "x"}]),
        {},
        400,
        "messages.0.role",
    ),
    "first-is-assistant": (
        mbody(messages=[{"role": "assistant", "content": "x"}]),
        {},
        400,
        "messages.0.role",
    ),
    "content-missing": (mbody(messages=[{"role": "user"}]), {}, 400, "messages.0.content"),
    "content-empty": (
        mbody(messages=[{"role": "user", "content": " "}]),
        {},
        400,
        "messages.0.content",
    ),
    "content-number": (
        mbody(messages=[{"role": "user", "content": 5}]),
        {},
        400,
        "messages.0.content",
    ),
    "content-nul": (
        mbody(messages=[{"role": "user", "content": "a\u0000"}]),
        {},
        400,
        "messages.0.content",
    ),
    "message-extra-field": (
        mbody(messages=[{"role": "user", "content": "x", "name": "bob"}]),
        {},
        400,
        "messages.0.name",
    ),
    "block-without-type": (mmsg({"text": "x"}), {}, 400, "messages.0.content.0"),
    "block-unknown": (mmsg({"type": "video"}), {}, 400, "messages.0.content.0.type"),
    "text-block-number": (mmsg({"type": "text", "text": 5}), {}, 400, "messages.0.content.0.text"),
    "tool-use-in-user-message": (mmsg(USE), {}, 400, "messages.0.content.0.type"),
    "tool-result-unknown-id": (
        mmsg({"type": "tool_result", "tool_use_id": "nope", "content": "x"}),
        {},
        400,
        "messages.0.content.0.tool_use_id",
    ),
    "tool-use-input-string": (
        mbody(
            messages=[
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": [{**USE, "input": "x"}]},
            ]
        ),
        {},
        400,
        "messages.1.content.0.input",
    ),
    "image-bad-source": (
        mmsg({"type": "image", "source": {"type": "base64"}}),
        {},
        400,
        "messages.0.content.0.source",
    ),
    "system-number": (mbody(system=5), {}, 400, "system"),
    "system-block-not-text": (mbody(system=[{"type": "image"}]), {}, 400, "system.0"),
    "stop-sequences-string": (mbody(stop_sequences="STOP"), {}, 400, "stop_sequences"),
    "stop-sequence-empty": (mbody(stop_sequences=[""]), {}, 400, "stop_sequences.0"),
    "temperature-high": (mbody(temperature=1.5), {}, 400, "temperature"),
    "tool-without-schema": (mbody(tools=[{"name": "f"}]), {}, 400, "tools.0.input_schema"),
    "tool-name-invalid": (mbody(tools=[{**ATOOL, "name": "a b"}]), {}, 400, "tools.0.name"),
    "server-tool": (
        mbody(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
        {},
        400,
        "tools.0.type",
    ),
    "tool-choice-unknown": (mbody(tool_choice={"type": "sometimes"}), {}, 400, "tool_choice.type"),
    "tool-choice-unknown-tool": (
        mbody(tools=[ATOOL], tool_choice={"type": "tool", "name": "g"}),
        {},
        400,
        "tool_choice.name",
    ),
    "unknown-parameter": (mbody(frob=1), {}, 400, "frob"),
}

PASSTHROUGH_CASES: dict[str, tuple[str, dict, int, str]] = {
    "embeddings-input-missing": ("/embeddings", {"model": "large"}, 400, "input"),
    "embeddings-input-number": ("/embeddings", {"model": "large", "input": 5}, 400, "input"),
    "embeddings-routed-model": ("/embeddings", {"model": "router", "input": "x"}, 400, "model"),
    "embeddings-unknown-model": ("/embeddings", {"model": "nope", "input": "x"}, 404, "model"),
    "embeddings-dimensions-zero": (
        "/embeddings",
        {"model": "large", "input": "x", "dimensions": 0},
        400,
        "dimensions",
    ),
    "embeddings-unknown-parameter": (
        "/embeddings",
        {"model": "large", "input": "x", "frob": 1},
        400,
        "frob",
    ),
    "completions-prompt-missing": ("/completions", {"model": "large"}, 400, "prompt"),
    "completions-max-tokens-zero": (
        "/completions",
        {"model": "large", "prompt": "x", "max_tokens": 0},
        400,
        "max_tokens",
    ),
    "completions-stream-string": (
        "/completions",
        {"model": "large", "prompt": "x", "stream": "yes"},
        400,
        "stream",
    ),
}


# POST /v1/feedback (router/server/feedback.py): every bad body a 400 naming the field.
FEEDBACK_CASES: dict[str, tuple[object, dict, int, str | None]] = {
    "invalid-json": (b'{"request_id": "req_1", "score": ', JSON, 400, None),
    "empty-body": (b"", JSON, 400, None),
    "json-array": ([1, 2], {}, 400, None),
    "json-null": (b"null", JSON, 400, None),
    "request-id-missing": ({"score": 1}, {}, 400, "request_id"),
    "request-id-empty": ({"request_id": " ", "score": 1}, {}, 400, "request_id"),
    "request-id-number": ({"request_id": 12, "score": 1}, {}, 400, "request_id"),
    "request-id-too-long": ({"request_id": "r" * 201, "score": 1}, {}, 400, "request_id"),
    "request-id-nul": ({"request_id": "req_\u0000", "score": 1}, {}, 400, "request_id"),
    "score-missing": ({"request_id": "req_1"}, {}, 400, "score"),
    "score-above-one": ({"request_id": "req_1", "score": 1.01}, {}, 400, "score"),
    "score-negative": ({"request_id": "req_1", "score": -0.5}, {}, 400, "score"),
    "score-bool": ({"request_id": "req_1", "score": True}, {}, 400, "score"),
    "score-null": ({"request_id": "req_1", "score": None}, {}, 400, "score"),
    "score-word": ({"request_id": "req_1", "score": "sideways"}, {}, 400, "score"),
    "score-list": ({"request_id": "req_1", "score": [1]}, {}, 400, "score"),
    # NaN is not JSON: refused by the one JSON reader, as on every endpoint (before any field).
    "score-nan": (b'{"request_id": "req_1", "score": NaN}', JSON, 400, None),
    "model-unknown": ({"request_id": "req_1", "score": 1, "model": "nope"}, {}, 400, "model"),
    "model-number": ({"request_id": "req_1", "score": 1, "model": 3}, {}, 400, "model"),
    "unknown-field": ({"request_id": "req_1", "score": 1, "comment": "x"}, {}, 400, "comment"),
    "wrong-content-type": (b"request_id=req_1", {"content-type": "text/plain"}, 415, None),
}


@pytest.mark.parametrize("case", sorted(FEEDBACK_CASES))
def test_bad_feedback_bodies_are_4xx_naming_the_field(http, case):
    payload, headers, status, param = FEEDBACK_CASES[case]
    r = send_case(http, "/feedback", payload, headers)
    assert r.status_code == status, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and "Traceback" not in r.text
    if param is not None:
        assert err["param"] == param and err["message"].startswith(param), err


def send_case(http: httpx.Client, path: str, payload: object, headers: dict) -> httpx.Response:
    if isinstance(payload, bytes):
        return http.post(path, content=payload, headers=headers)
    return http.post(path, json=payload, headers=headers)


@pytest.mark.parametrize("case", sorted(RESPONSES_CASES))
def test_bad_responses_bodies_are_openai_errors_naming_the_field(http, case):
    payload, headers, status, param = RESPONSES_CASES[case]
    r = send_case(http, "/responses", payload, headers)
    assert r.status_code == status, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and "Traceback" not in r.text
    if param is not None:
        assert err["param"] == param and err["message"].startswith(param), err


@pytest.mark.parametrize("case", sorted(MESSAGES_CASES))
def test_bad_messages_bodies_are_anthropic_errors_naming_the_field(http, case):
    payload, headers, status, param = MESSAGES_CASES[case]
    r = send_case(http, "/messages", payload, headers)
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
    assert body["error"]["type"].endswith("_error") and "Traceback" not in r.text
    if param is not None:
        assert body["error"]["message"].startswith(param), body


@pytest.mark.parametrize("case", sorted(PASSTHROUGH_CASES))
def test_bad_pass_through_bodies_name_the_field(http, case):
    path, payload, status, param = PASSTHROUGH_CASES[case]
    r = http.post(path, json=payload)
    assert r.status_code == status, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert err["param"] == param and err["message"].startswith(param), err


def test_the_agent_endpoints_answer_after_the_bad_ones(http):
    r = http.post("/responses", json=rbody(input="ok?"))
    assert r.status_code == 200 and r.json()["output"][0]["content"][0]["text"] == "echo: ok?"
    r = http.post("/messages", json=mbody(messages=[{"role": "user", "content": "ok?"}]))
    assert r.status_code == 200 and r.json()["content"][0]["text"] == "echo: ok?"
