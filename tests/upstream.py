"""An OpenAI-compatible upstream for tests, served on 127.0.0.1 in a background thread.

Behaviour is chosen by the requested model name:
- `fail-500`, `fail-502`, `fail-503`, `fail-429`: that HTTP status (429 carries Retry-After: 0);
- `retry-after-<s>`: 429 with `Retry-After: <s>` on the first call for each prompt text, then
  answers (so a test can see the wait honoured);
- `flaky-<pct>`: every call fails with 500 at a steady rate of pct in 100 (by a call counter,
  not at random), else answers;
- `slow`: sleeps 10 s before answering (for time-outs); `delay-<s>`: sleeps s seconds (≤ 30);
- `patient-<s>`: answers after s seconds (≤ 30), unless its client leaves first: then its
  prompt joins `abandoned` (a model call someone stopped waiting for);
- `hang`: accepts the request and never answers (ends when the upstream stops, or after 30 s);
- `stall-body`: sends 200 and half a JSON body, then stalls like `hang`;
- `malformed`: 200 with a body that is not JSON; `garbage-stream`: SSE whose data is not JSON;
- `cut-stream`: a stream that ends mid-way with a broken connection;
- `stall-stream`: a stream that sends two chunks, then stalls like `hang`;
- `slow-stream`: a stream of one word every 0.3 s (in-flight work for shutdown tests);
- `gated`: answers once the test sets `gate` (bounded like `hang`); `gated-stream`: sends its
  first chunk, then waits for `gate` before the rest (in-flight work a test controls);
- `switch-<x>`: 503 while `switch-<x>` is in the `down` set, else answers (a test takes a
  model down and brings it back);
- `small-window`: OpenAI's 400 `context_length_exceeded` for messages over WINDOW_CHARS
  characters (of their JSON), else answers;
- `echo-secret`: a 500 whose message quotes the caller's Authorization header and the prompt
  (bait for leaks into logs, headers and the decision log);
- `dunno-<word>`: answers "I don't know." when the prompt mentions <word>, else echoes (a cheap
  model that fails on one domain);
- `judge`: grades "Answer A:" / "Answer B:" in the prompt as JSON {"A": n, "B": n}: 2 for an
  answer that says "I don't know", 9 otherwise (a shadow judge);
- anything else: answers "echo: <last user text>" (streamed as SSE when asked).
Every request body is kept in `requests` so tests can check what was passed through, and how
each stream ended in `stream_ends` (by its answer's text: sent whole, or abandoned by a client
that left).
Hangs and stalls are bounded (HANG_S) and end as soon as `stop()` is called, so the upstream
never keeps a test process alive. `python -m tests.upstream --port N` serves it stand-alone.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import socket
import threading
import time
from collections import Counter

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

HANG_S = 30.0  # the longest any hang or stall lasts


def _judge(prompt: str) -> str:
    """The loopback judge's verdict on the two answers quoted in a judge prompt."""
    b_at = prompt.find("Answer B:")
    a_at = prompt.find("Answer A:")
    a, b = prompt[a_at:b_at] if 0 <= a_at < b_at else "", prompt[b_at:] if b_at >= 0 else ""

    def grade(answer: str) -> int:
        return 2 if "i don't know" in answer.lower() else 9

    return json.dumps({"A": grade(a), "B": grade(b)})


def _last_user_text(body: dict) -> str:
    for m in reversed(body.get("messages", [])):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if p.get("type") == "text")
            return c or ""
    return ""


WINDOW_CHARS = 300


class Upstream:
    def __init__(self, port: int | None = None, keep_requests: bool = True) -> None:
        self.requests: list[dict] = []
        self.abandoned: list[str] = []  # prompts of `patient-` calls whose client left
        self.stream_ends: dict[str, str] = {}  # answer text → "whole" / "abandoned" (client left)
        self.keep_requests = keep_requests  # off for long load runs (memory)
        self.calls: Counter[str] = Counter()  # per model name
        self._seen: set[tuple[str, str]] = set()
        self.down: set[str] = set()  # switch-* models that fail for now
        self.gate = threading.Event()  # releases gated* models
        self._stopping = threading.Event()
        self.port = port or _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                # Pass-through endpoints of the proxy (router/server/passthrough.py).
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=2,  # hanging handlers must not hold up stop()
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Upstream:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("test upstream did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.server.should_exit = True
        self.thread.join(timeout=10)

    async def _hang(self, limit: float = HANG_S, until: threading.Event | None = None) -> None:
        """Sleep until the upstream stops, `until` is set or `limit` seconds pass (bounded)."""
        deadline = time.monotonic() + limit
        while not self._stopping.is_set() and time.monotonic() < deadline:
            if until is not None and until.is_set():
                return
            await asyncio.sleep(0.05)

    def _fails_now(self, model: str, pct: int) -> bool:
        """True for pct in every 100 calls of `model`, spread evenly (call n fails when the
        running count of failures due goes up)."""
        n = self.calls[model]
        return (n * pct) // 100 > ((n - 1) * pct) // 100

    async def chat(self, request: Request):
        body = await request.json()
        if self.keep_requests:
            self.requests.append(body)
        model = body.get("model", "")
        self.calls[model] += 1
        if model.startswith("fail-"):
            status = int(model.split("-")[1])
            return _error(
                status, f"injected {status}", {"Retry-After": "0"} if status == 429 else {}
            )
        if model.startswith("retry-after-"):
            key = (model, _last_user_text(body))
            if key not in self._seen:
                self._seen.add(key)
                wait = model.removeprefix("retry-after-")
                return _error(429, "injected rate limit", {"Retry-After": wait})
        if model.startswith("flaky-") and self._fails_now(model, int(model.split("-")[1])):
            return _error(500, "injected flaky failure")
        if model in self.down:
            return _error(503, "switched off")
        if model == "echo-secret":
            leak = f"bad credentials {request.headers.get('authorization')} for {_last_user_text(body)}"
            return _error(500, leak)
        if model == "malformed":
            return Response(b'{"id": "chatcmpl-x", "choices": [', media_type="application/json")
        if model == "small-window" and len(json.dumps(body.get("messages"))) > WINDOW_CHARS:
            return JSONResponse(
                {
                    "error": {
                        "message": "This model's maximum context length is 64 tokens. However, "
                        "you requested 300 tokens. Please reduce the length of the messages.",
                        "type": "invalid_request_error",
                        "param": "messages",
                        "code": "context_length_exceeded",
                    }
                },
                status_code=400,
            )
        if model == "stall-body":

            async def half():
                yield b'{"id": "chatcmpl-x", "object": "chat.completion", '
                await self._hang()

            return StreamingResponse(half(), media_type="application/json")
        if model == "hang":
            await self._hang()
            return _error(504, "hung upstream gave up")
        if model == "slow":
            await asyncio.sleep(10)
        if model == "gated":
            await self._hang(until=self.gate)
        if model.startswith("delay-"):
            await asyncio.sleep(min(float(model.removeprefix("delay-")), HANG_S))
        if model.startswith("patient-"):
            deadline = time.monotonic() + min(float(model.removeprefix("patient-")), HANG_S)
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    self.abandoned.append(_last_user_text(body))
                    return _error(499, "the client left")
                await asyncio.sleep(0.05)
        text = "echo: " + _last_user_text(body)
        if model.startswith("dunno-") and model.removeprefix("dunno-") in text.lower():
            text = "I don't know."
        if model == "judge":
            text = _judge(_last_user_text(body))
        created = int(time.time())
        if body.get("tools"):
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": body["tools"][0]["function"]["name"],
                            "arguments": json.dumps({"q": _last_user_text(body)}),
                        },
                    }
                ],
            }
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": text}
            finish = "stop"
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                }
            )

        async def sse():
            whole = False
            try:
                async for frame in frames():
                    yield frame
                whole = True
            finally:
                self.stream_ends[text] = "whole" if whole else "abandoned"

        async def frames():
            words = text.split(" ")
            for i, w in enumerate(words):
                if model == "cut-stream" and i == 2:
                    raise ConnectionResetError("injected cut")
                if model == "stall-stream" and i == 2:
                    await self._hang()
                    return
                if model == "garbage-stream" and i == 1:
                    yield "data: {this is not json\n\n"
                    continue
                if model == "slow-stream" and i > 0:
                    await asyncio.sleep(0.3)
                if model == "gated-stream" and i == 1:
                    await self._hang(until=self.gate)
                chunk = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": (w if i == 0 else " " + w)},
                            "finish_reason": None,
                        }
                    ],
                }
                yield f"data: {json.dumps(chunk)}\n\n"
            done = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            yield f"data: {json.dumps(done)}\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {
                    **done,
                    "choices": [],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                }
                yield f"data: {json.dumps(usage)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    async def embeddings(self, request: Request):
        """Deterministic 8-dimensional vectors: the same text always gets the same vector."""
        body = await request.json()
        if self.keep_requests:
            self.requests.append(body)
        model = body.get("model", "")
        self.calls[model] += 1
        if model.startswith("fail-"):
            return _error(int(model.split("-")[1]), "injected failure")
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        data = []
        for i, t in enumerate(texts):
            seed = hashlib.sha256(json.dumps(t).encode()).digest()
            vector = [b / 255 for b in seed[:8]]
            data.append({"object": "embedding", "index": i, "embedding": vector})
        usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
        return JSONResponse({"object": "list", "data": data, "model": model, "usage": usage})

    async def completions(self, request: Request):
        """Legacy text completions: \"echo: <prompt>\", streamed as SSE when asked."""
        body = await request.json()
        if self.keep_requests:
            self.requests.append(body)
        model = body.get("model", "")
        self.calls[model] += 1
        if model.startswith("fail-"):
            return _error(int(model.split("-")[1]), "injected failure")
        prompt = body.get("prompt")
        text = "echo: " + (prompt if isinstance(prompt, str) else json.dumps(prompt))
        base = {"id": "cmpl-test", "object": "text_completion", "created": int(time.time())}
        base["model"] = model
        if not body.get("stream"):
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
            usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
            return JSONResponse({**base, "choices": [choice], "usage": usage})

        async def sse():
            for i, w in enumerate(text.split(" ")):
                piece = w if i == 0 else " " + w
                choice = {"index": 0, "text": piece, "logprobs": None, "finish_reason": None}
                yield f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"
            end = {"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}
            yield f"data: {json.dumps({**base, 'choices': [end]})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    err = {"error": {"message": message, "type": "server_error", "code": None}}
    return JSONResponse(err, status_code=status, headers=headers or {})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    """Serve the test upstream in the foreground on 127.0.0.1 (for bench/load.py)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    up = Upstream(ap.parse_args().port, keep_requests=False)
    up.server.run()


if __name__ == "__main__":
    main()
