"""The local tier's server: llama-cpp-python's, taking the chat messages OpenAI's API takes.

llama-cpp-python's server checks chat messages against an older schema than the one clients
send now. It refuses the `developer` role and an assistant's `content: null` beside its tool
calls (422), its chat templates fail on content given as a list of text parts (500), and it
ignores `max_completion_tokens`. The
OpenAI SDKs, agent frameworks and the proxy's own Anthropic Messages endpoint send all three,
so a local model could answer none of them. `python -m router.serving.llama_server` takes the
same arguments as `python -m llama_cpp.server` and runs that server behind `ChatMessages`,
which rewrites such messages into the form it takes. Parts other than text (an image) are left
as they are, for the server to refuse: a text model cannot see them.
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
    """A chat request's body with every message in that form, and `max_completion_tokens`
    (which the server ignores, so the answer ran to the end of the context) as `max_tokens`.
    Anything that is not a chat request with a message list goes through unchanged, for the
    server to judge."""
    try:
        request = json.loads(body)
    except ValueError:
        return body
    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list):
        return body
    plain = [plain_message(m) for m in messages]
    limit = request.get("max_completion_tokens")
    if limit is None or request.get("max_tokens") is not None:
        if all(p is m for p, m in zip(plain, messages, strict=True)):
            return body
        return json.dumps({**request, "messages": plain}).encode()
    return json.dumps({**request, "messages": plain, "max_tokens": limit}).encode()


class ChatMessages:
    """ASGI middleware: chat requests reach the app with `plain_body`'s messages."""

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
        body = plain_body(b"".join(parts))
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        delivered = False

        async def replay() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app({**scope, "headers": headers}, replay, send)


def main() -> None:
    """`python -m llama_cpp.server`, its app wrapped in `ChatMessages`."""
    import llama_cpp.server.__main__ as server

    create_app = server.create_app
    server.create_app = lambda **kw: ChatMessages(create_app(**kw))
    server.main()


if __name__ == "__main__":
    main()
