"""The local tier's server: llama-cpp-python's, taking the chat requests OpenAI's API takes.

llama-cpp-python's server checks chat messages against an older schema than the one clients
send now. It refuses the `developer` role and an assistant's `content: null` beside its tool
calls (422), and its chat templates fail on content given as a list of text parts (500): the
OpenAI SDKs, agent frameworks and the proxy's own Anthropic Messages endpoint send all three.
It ignores `max_completion_tokens` (the answer runs to the end of the context), refuses
OpenAI's `json_schema` response format (it has its own), answers a request for n choices
with one, and ends a stream without the usage that `stream_options.include_usage` asks for.
`python -m router.serving.llama_server` takes the same arguments as `python -m llama_cpp.server`
and runs that server behind `ChatRequests`, which rewrites such requests into the form it
takes, answers n choices with n calls, and counts a stream's tokens with the model's own
vocabulary and chat template (`TokenCounter`). The server notices a caller that left only
between streamed tokens, so whole answers are generated as streams and put together. Parts
other than text (an image) are left as they are, for the server to refuse: a text model cannot
see them.

Started by `router.serving.local`, it ends itself when the process that started it is gone
without stopping it (`exit_with_parent`): killed, or out of memory.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

# The process that started this server (set by router.serving.local): it lives as long as that.
PARENT_ENV = "ROUTER_LLAMA_SERVER_PARENT"

CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
EMBEDDING_PATHS = frozenset({"/v1/embeddings", "/embeddings"})
NO_EMBEDDINGS = {
    "error": {
        "message": "this local model serves chat and completions, not embeddings: it was "
        "started without `embedding`",
        "type": "invalid_request_error",
        "param": "model",
        "code": "embeddings_not_served",
    }
}


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


class TokenCounter:
    """A chat request's prompt tokens and an answer's tokens, counted as the server counts them:
    the GGUF file's chat template rendered and tokenized by the model's own vocabulary, loaded
    on its own (`vocab_only`), so that counting never waits for the server's model lock."""

    def __init__(self, model_path: str) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._vocab = llama_cpp.Llama(model_path=model_path, vocab_only=True, verbose=False)
        template = self._vocab.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{model_path}: the GGUF file has no chat template to count with")
        eos, bos = self._vocab.token_eos(), self._vocab.token_bos()
        self._format = Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(eos),
            bos_token=self._token_text(bos),
            stop_token_ids=[eos],
        )

    def _token_text(self, token: int) -> str:
        if token == -1:
            return ""
        return self._vocab.detokenize([token], special=True).decode("utf-8", errors="replace")

    def prompt(self, request: dict) -> int:
        """Tokens of the prompt the server builds from `request` (a `plain_body` request)."""
        built = self._format(
            messages=request["messages"],
            functions=request.get("functions"),
            function_call=request.get("function_call"),
            tools=request.get("tools"),
            tool_choice=request.get("tool_choice"),
        )
        prompt = built.prompt.encode("utf-8")
        return len(self._vocab.tokenize(prompt, add_bos=not built.added_special, special=True))

    def text(self, text: str) -> int:
        """Tokens of generated `text`."""
        return len(self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))


class ChatRequests:
    """ASGI middleware: chat requests reach the app with `plain_body`'s messages; a request for
    n > 1 choices (which the server answers with one) is answered n times over; a stream that
    asks for its usage gets it, counted by `counter`; and with a counter, whole answers are
    streamed and put together (without one: no usage in streams, whole answers asked whole)."""

    def __init__(
        self, app: Any, counter: TokenCounter | None = None, embeddings: bool = True
    ) -> None:
        self.app = app
        self.counter = counter
        # False: the model was loaded without `embedding`, and the server's answer to an
        # embeddings request would be a 500 (which a caller retries, or takes for an outage).
        self.embeddings = embeddings

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if scope["path"] in EMBEDDING_PATHS and not self.embeddings:
            await _send_json(send, 400, NO_EMBEDDINGS)
            return
        if scope["path"] not in CHAT_PATHS:
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
        several = isinstance(n, int) and not isinstance(n, bool) and n > 1
        if request is not None and request.get("stream") is True:
            options = request.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            if several or (usage and self.counter is not None):
                await self._stream(scope, request, n if several else 1, usage, receive, send)
                return
        if several:
            await self._several(scope, request, n, receive, send)
        elif request is not None and self._assemblable(request):
            await _send_answer(send, *await self._assembled(scope, request, receive))
        else:
            await self.app(_with_length(scope, body), _replay(body, receive), send)

    def _assemblable(self, request: dict) -> bool:
        """Can a whole answer to `request` be generated as a stream and put together? Its text,
        finish and usage can (usage by `counter`); logprobs and tool calls are left whole."""
        return (
            self.counter is not None
            and request.get("stream") is not True
            and not request.get("logprobs")
            and not request.get("tools")
            and not request.get("functions")
        )

    async def _whole(self, scope: dict, request: dict, receive: Any) -> tuple[int, list, bytes]:
        """One whole answer to `request` (status, headers, body)."""
        if self._assemblable(request):
            return await self._assembled(scope, request, receive)
        return await self._call(scope, json.dumps(request).encode(), receive)

    async def _assembled(self, scope: dict, request: dict, receive: Any) -> tuple[int, list, bytes]:
        """A whole answer generated as a stream, then put together. llama-cpp-python's server
        notices a client that left only between streamed tokens: a whole answer whose caller
        gave up (a time-out, a retry) ran to its end for nobody, and the next request waited."""
        assert self.counter is not None
        try:
            prompt = await _to_thread(self.counter.prompt, request)
        except Exception:  # noqa: BLE001 - a template it cannot render: asked whole, as before
            return await self._call(scope, json.dumps(request).encode(), receive)
        streamed = {**request, "stream": True, "n": 1}
        streamed.pop("stream_options", None)
        body = json.dumps(streamed).encode()
        collected = _Collector()
        await self.app(_with_length(scope, body), _replay(body, receive), collected.send)
        if collected.status != 200 or not collected.done:  # an error, or the caller left
            return collected.status or 499, collected.headers, b"".join(collected.raw)
        chunks = collected.chunks
        text = "".join(
            (choice.get("delta") or {}).get("content") or ""
            for chunk in chunks
            for choice in chunk.get("choices") or []
        )
        finish = next(
            (
                choice["finish_reason"]
                for chunk in reversed(chunks)
                for choice in chunk.get("choices") or []
                if choice.get("finish_reason")
            ),
            None,
        )
        first = chunks[0] if chunks else {}
        completion = await _to_thread(self.counter.text, text)
        answer = {
            "id": first.get("id"),
            "object": "chat.completion",
            "created": first.get("created"),
            "model": first.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": _usage(prompt, completion),
        }
        return 200, [(b"content-type", b"application/json")], json.dumps(answer).encode()

    async def _several(self, scope: dict, request: dict, n: int, receive: Any, send: Any) -> None:
        """One call per choice, in turn (the server runs one at a time anyway); the answer
        holds their choices, and usage counts the prompt once, as OpenAI's does."""
        merged: dict | None = None
        for i in range(n):
            status, headers, content = await self._whole(scope, {**request, "n": 1}, receive)
            if status != 200:
                await _send_answer(send, status, headers, content)
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

    async def _stream(
        self, scope: dict, request: dict, n: int, usage: bool, receive: Any, send: Any
    ) -> None:
        """A stream of n choices as n streamed calls in turn, each chunk carrying its choice's
        index (OpenAI's streams interleave choices by index; in turn is one valid order), and
        one closing [DONE]; before it, when asked, a chunk with the usage of them all."""
        one = json.dumps({**request, "n": 1}).encode()
        relay = _StreamRelay(send)
        for i in range(n):
            relay.index = i
            await self.app(_with_length(scope, one), _replay(one, receive), relay.send)
            if not relay.done:  # an error answer, or the stream was cut (the client left)
                break
        else:
            if usage and self.counter is not None and relay.last is not None:
                chunk = await _to_thread(self._usage_chunk, request, relay)
                if chunk is not None:
                    await relay.event(chunk)
            await relay.finish()

    def _usage_chunk(self, request: dict, relay: _StreamRelay) -> dict | None:
        assert self.counter is not None and relay.last is not None
        try:
            prompt = self.counter.prompt(request)
            completion = sum(self.counter.text(t) for t in relay.texts.values())
        except Exception:  # noqa: BLE001 - a template it cannot render: no usage, as before
            return None
        last = relay.last
        return {
            "id": last.get("id"),
            "object": "chat.completion.chunk",
            "created": last.get("created"),
            "model": last.get("model"),
            "choices": [],
            "usage": _usage(prompt, completion),
        }

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


class _StreamRelay:
    """Passes the server's server-sent events on to the client for one streamed call after
    another: the first call's response start only, each chunk with its choice's `index` and the
    first call's id, no [DONE] (`finish` sends the one that ends it all), and what each choice
    said, to count."""

    def __init__(self, send: Callable[[dict], Awaitable[None]]) -> None:
        self._send = send
        self.index = 0
        self.started = False
        self.done = False  # the current call's stream ended with its [DONE]
        self.texts: dict[int, str] = {}
        self.last: dict | None = None  # the last chunk, whose id, created and model close it
        self._buffer = b""
        self._error = False

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.done = False
            self._error = message["status"] != 200
            if self._error and self.started:  # a later call failed: its error ends the stream
                return
            if not self.started:
                self.started = True
                await self._send(message)
            return
        if message["type"] != "http.response.body":
            return
        if self._error:
            await self._pass_error(message)
            return
        frames, self._buffer = _frames(self._buffer + message.get("body", b""))
        for frame in frames:
            await self._frame(frame)

    async def _frame(self, frame: bytes) -> None:
        data = _frame_data(frame)
        if not data:  # a comment (the server's pings) or an empty frame
            await self._send(
                {"type": "http.response.body", "body": frame + b"\n\n", "more_body": True}
            )
            return
        if data.strip() == b"[DONE]":
            self.done = True
            return
        chunk = _chunk_of(data)
        if chunk is not None and isinstance(chunk.get("choices"), list):
            if self.last is not None:  # one stream: every chunk has the first call's id
                chunk["id"], chunk["created"] = self.last.get("id"), self.last.get("created")
            self.last = chunk
            for choice in chunk["choices"]:
                if isinstance(choice, dict):
                    choice["index"] = self.index
                    self._keep(choice.get("delta"))
            await self.event(chunk)
            return
        await self._send({"type": "http.response.body", "body": frame + b"\n\n", "more_body": True})

    def _keep(self, delta: Any) -> None:
        if not isinstance(delta, dict):
            return
        said = [delta.get("content") or ""]
        for call in delta.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                said.append(function.get("arguments") or "")
        self.texts[self.index] = self.texts.get(self.index, "") + "".join(said)

    async def _pass_error(self, message: dict) -> None:
        """A failed call's answer: as it came for the first call, as an error event after."""
        if not self.texts and self.last is None:
            await self._send(message)
            return
        body = message.get("body", b"")
        if body.strip():
            await self.event({"error": {"message": body.decode("utf-8", "replace")}})
        if not message.get("more_body", False):
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def event(self, payload: dict) -> None:
        line = b"data: " + json.dumps(payload).encode() + b"\n\n"
        await self._send({"type": "http.response.body", "body": line, "more_body": True})

    async def finish(self) -> None:
        await self._send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


class _Collector:
    """Keeps what a streamed call sent: its status and headers, and its chunks (or, for an
    error answer, its body as it came)."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: list = []
        self.raw: list[bytes] = []
        self.chunks: list[dict] = []
        self.done = False  # the stream ended with its [DONE]
        self._buffer = b""

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status, self.headers = message["status"], message.get("headers", [])
            return
        body = message.get("body", b"") if message["type"] == "http.response.body" else b""
        if self.status != 200:
            self.raw.append(body)
            return
        frames, self._buffer = _frames(self._buffer + body)
        for frame in frames:
            data = _frame_data(frame)
            if data.strip() == b"[DONE]":
                self.done = True
            elif (chunk := _chunk_of(data)) is not None:
                self.chunks.append(chunk)


def _frame_data(frame: bytes) -> bytes:
    """The data of one server-sent event (empty for a comment, such as the server's pings)."""
    return b"".join(
        line[5:].lstrip(b" ") for line in frame.splitlines() if line.startswith(b"data:")
    )


def _frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The whole server-sent events at the start of `buffer`, and the rest (the start of one
    that has not all arrived)."""
    frames = []
    while True:
        ends = [(i, i + len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (i := buffer.find(sep)) >= 0]
        if not ends:
            return frames, buffer
        end, start = min(ends)
        frames.append(buffer[:end])
        buffer = buffer[start:]


def _chunk_of(data: bytes) -> dict | None:
    """An event's data as a JSON object (None when it is not one)."""
    try:
        chunk = json.loads(data)
    except ValueError:
        return None
    return chunk if isinstance(chunk, dict) else None


def _usage(prompt: int, completion: int) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def _to_thread(fn: Callable[..., Any], *args: Any) -> Any:
    import anyio.to_thread

    return await anyio.to_thread.run_sync(fn, *args)


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


async def _send_answer(send: Any, status: int, headers: list, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Any, status: int, payload: dict) -> None:
    content = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
    ]
    await _send_answer(send, status, headers, content)


def exit_with_parent(
    parent: int, interval: float = 1.0, exit: Callable[[int], Any] = os._exit
) -> threading.Thread:
    """Watch, in a daemon thread, that `parent` is still this process's parent, and `exit`
    when it is not. A parent that is killed (SIGKILL, the OOM killer, a notebook kernel killed)
    stops nothing: without this, its llama.cpp server kept running, with the model's memory,
    until someone found it, and each such restart left one more."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        exit(0)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def main() -> None:
    """`python -m llama_cpp.server`, its app wrapped in `ChatRequests`, counting streams' usage
    with its model's vocabulary when it serves one model on the GGUF file's own chat template."""
    import llama_cpp.server.__main__ as server

    parent = os.environ.get(PARENT_ENV, "")
    if parent.isdigit():
        exit_with_parent(int(parent))

    create_app = server.create_app

    def wrapped(**kw: Any) -> ChatRequests:
        models = kw.get("model_settings") or []
        counter = None
        if len(models) == 1 and models[0].chat_format is None:
            try:
                counter = TokenCounter(models[0].model)
            except ValueError:
                counter = None  # no template in the file: streams go without usage
        embeddings = not models or any(getattr(m, "embedding", False) for m in models)
        return ChatRequests(create_app(**kw), counter, embeddings=embeddings)

    server.create_app = wrapped
    server.main()


if __name__ == "__main__":
    main()
