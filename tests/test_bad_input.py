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
