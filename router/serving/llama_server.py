"""The local tier's server: llama-cpp-python's, taking the chat requests OpenAI's API takes.

llama-cpp-python's server checks chat messages against an older schema than the one clients
send now. It refuses the `developer` role and an assistant's `content: null` beside its tool
calls (422), and its chat templates fail on content given as a list of text parts (500): the
OpenAI SDKs, agent frameworks and the proxy's own Anthropic Messages endpoint send all three.
It ignores `max_completion_tokens` (the answer runs to the end of the context), refuses
OpenAI's `json_schema` response format (it has its own), and answers a request for n choices
with one. `python -m router.serving.llama_server` takes the same arguments as
`python -m llama_cpp.server` and runs that server behind `ChatRequests`, which rewrites such
requests into the form it takes and answers n choices with n calls. Parts other than text (an
image) are left as they are, for the server to refuse: a text model cannot see them.
"""

from __future__ import annotations

import json
from typing import Any

CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})


def plain_message(message: Any) -> Any:
    """`message` in the form llama-cpp-python's server takes (itself when it already is)."""
    if not isinstance(message, dict):
        return message
    out = message
    if out.get("role") == "developer":
        out = {**out, "role": "system"}
    content = out.get("content")
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        out = {**out, "content": "\n".join(p["text"] for p in content)}
    elif content is None and out.get("role") == "assistant":
        out = {**out, "content": ""}
    return out


def plain_body(body: bytes) -> bytes:
    """A chat request's body in the form the server takes: every message `plain_message`'s,
    `max_completion_tokens` (which it ignores, so the answer ran to the end of the context) as
    `max_tokens`, and a `json_schema` response format as its own `json_object` with that
    schema (it constrains decoding to the schema; OpenAI's form was refused). Anything that is
    not a chat request with a message list goes through unchanged, for the server to judge."""
    return _plain(body)[0]


def _plain(body: bytes) -> tuple[bytes, dict | None]:
    """`plain_body`, and the chat request it holds (None: not one)."""
    try:
        request = json.loads(body)
    except ValueError:
        return body, None
    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list):
        return body, None
    changes: dict[str, Any] = {}
    plain = [plain_message(m) for m in messages]
    if any(p is not m for p, m in zip(plain, messages, strict=True)):
        changes["messages"] = plain
    limit = request.get("max_completion_tokens")
    if limit is not None and request.get("max_tokens") is None:
        changes["max_tokens"] = limit
    fmt = request.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        changes["response_format"] = {"type": "json_object", "schema": schema or {}}
    if not changes:
        return body, request
    request = {**request, **changes}
    return json.dumps(request).encode(), request


class ChatRequests:
    """ASGI middleware: chat requests reach the app with `plain_body`'s messages, and a request
    for n > 1 choices (which the server answers with one) is answered n times over."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in CHAT_PATHS:
            await self.app(scope, receive, send)
            return
        parts, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left before the whole body
                return
            parts.append(message.get("body", b""))
            more = message.get("more_body", False)
        body, request = _plain(b"".join(parts))
        n = request.get("n") if request is not None else None
        if not isinstance(n, int) or isinstance(n, bool) or n <= 1:
            await self.app(_with_length(scope, body), _replay(body, receive), send)
        elif request.get("stream"):
            message = f"n: {n} choices in one stream are not supported by a local model"
            error = {"message": message, "type": "invalid_request_error", "param": "n"}
            await _send_json(send, 400, {"error": error})
        else:
            await self._several(scope, request, n, receive, send)

    async def _several(self, scope: dict, request: dict, n: int, receive: Any, send: Any) -> None:
        """One call per choice, in turn (the server runs one at a time anyway); the answer
        holds their choices, and usage counts the prompt once, as OpenAI's does."""
        one = json.dumps({**request, "n": 1}).encode()
        merged: dict | None = None
        for i in range(n):
            status, headers, content = await self._call(scope, one, receive)
            if status != 200:
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": content})
                return
            answer = json.loads(content)
            choices = [{**c, "index": i} for c in answer.get("choices") or []]
            if merged is None:
                merged = {**answer, "choices": choices}
                continue
            merged["choices"] += choices
            usage, more_usage = merged.get("usage"), answer.get("usage")
            if usage and more_usage:
                usage["completion_tokens"] += more_usage.get("completion_tokens") or 0
                usage["total_tokens"] = usage.get("prompt_tokens", 0) + usage["completion_tokens"]
        await _send_json(send, 200, merged)

    async def _call(self, scope: dict, body: bytes, receive: Any) -> tuple[int, list, bytes]:
        start: dict = {}
        content: list[bytes] = []

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                content.append(message.get("body", b""))

        await self.app(_with_length(scope, body), _replay(body, receive), capture)
        return start["status"], start.get("headers", []), b"".join(content)


def _with_length(scope: dict, body: bytes) -> dict:
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
    return {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}


def _replay(body: bytes, receive: Any) -> Any:
    delivered = False

    async def replay() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, when it comes

    return replay


async def _send_json(send: Any, status: int, payload: dict) -> None:
    content = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def main() -> None:
    """`python -m llama_cpp.server`, its app wrapped in `ChatRequests`."""
    import llama_cpp.server.__main__ as server

    create_app = server.create_app
    server.create_app = lambda **kw: ChatRequests(create_app(**kw))
    server.main()


if __name__ == "__main__":
    main()
