"""A loopback OpenAI-compatible upstream for cascade tests: arithmetic answers that are right or
visibly wrong, with token logprobs.

Prompts look like "What is A + B?". Models:
- `cheap-math`: right ("A + B = <<A+B=C>>C ... #### C", confident logprobs) when A is even;
  visibly wrong (the sum off by one in its own annotation, hesitant logprobs) when A is odd.
  A tool request gets a tool call; JSON mode gets broken JSON when A is odd.
- `large-math`: always right, in a different wording ("The answer is C.").
- `judge`: an LLM verifier that says "Yes" when the answer's arithmetic holds, else "No".
- `<model>-slow`: as `<model>`, but held at `gate` (bounded): a stream after its first
  SLOW_AFTER words, any other answer before it is sent. Tests see what happens meanwhile.
Streams send one word a chunk (logprobs per chunk when asked). Every request body is kept;
`at_gate` counts the answers held at the gate now.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tests.upstream import _free_port, _last_user_text

CHEAP_TOKENS = 40  # the cheap model's answer is padded to about this many words
SLOW_AFTER = 20  # a `-slow` stream's words before it waits for the gate
GATE_S = 30.0  # the longest a `-slow` model waits


def answer_for(model: str, prompt: str, json_mode: bool) -> tuple[str, float, bool]:
    """(answer text, logprob per token, right?) for a prompt."""
    m = re.search(r"(\d+)\s*\+\s*(\d+)", prompt)
    a, b = (int(m.group(1)), int(m.group(2))) if m else (2, 2)
    right = model != "cheap-math" or a % 2 == 0
    c = a + b if right else a + b + 1
    if json_mode:
        return (json.dumps({"answer": c}) if right else '{"answer": ' + str(c)), -0.05, right
    if model == "large-math":
        return f"The answer is {a + b}.", -0.01, True
    if model == "judge":
        said = re.findall(r"<<(\d+)\+(\d+)=(\d+)>>", prompt)
        ok = bool(said) and all(int(x) + int(y) == int(z) for x, y, z in said)
        return ("Yes" if ok else "No"), -0.01, True
    steps = " ".join(["We", "add", "the", "two", "numbers", "step", "by", "step."] * 4)
    text = f"{steps} {a} + {b} = <<{a}+{b}={c}>>{c}\n#### {c}"
    return text, (-0.05 if right else -2.0), right


def _logprobs(words: list[str], lp: float) -> dict:
    return {
        "content": [
            {
                "token": w,
                "logprob": lp,
                "bytes": None,
                "top_logprobs": [
                    {"token": w, "logprob": lp, "bytes": None},
                    {"token": "x", "logprob": lp - 1.0, "bytes": None},
                ],
            }
            for w in words
        ]
    }


class CascadeUpstream:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.gate = threading.Event()  # releases the `-slow` models
        self.at_gate = 0  # answers held at the gate now
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> CascadeUpstream:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("cascade upstream did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def models_called(self) -> list[str]:
        return [r["model"] for r in self.requests]

    async def _at_gate(self) -> None:
        self.at_gate += 1
        try:
            deadline = time.monotonic() + GATE_S
            while not self.gate.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            self.at_gate -= 1

    async def chat(self, request: Request):
        body = await request.json()
        self.requests.append(body)
        slow = body.get("model", "").endswith("-slow")
        model = body.get("model", "").removesuffix("-slow")
        prompt = _last_user_text(body)
        rf = body.get("response_format") or {}
        json_mode = rf.get("type") in ("json_object", "json_schema")
        text, lp, _ = answer_for(model, prompt, json_mode)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        words = text.split(" ")
        finish = "stop"
        if max_tokens and len(words) > max_tokens:
            words, finish = words[:max_tokens], "length"
        want_lp = bool(body.get("logprobs"))
        created = int(time.time())
        tool_call = None
        if body.get("tools") and model == "cheap-math":
            tool_call = {
                "id": "call_1",
                "type": "function",
                "function": {"name": body["tools"][0]["function"]["name"], "arguments": "{}"},
            }
        usage = {
            "prompt_tokens": 12,
            "completion_tokens": len(words),
            "total_tokens": 12 + len(words),
        }
        if not body.get("stream"):
            if slow:
                await self._at_gate()
            message = {"role": "assistant", "content": " ".join(words)}
            if tool_call:
                message, finish = (
                    {"role": "assistant", "content": None, "tool_calls": [tool_call]},
                    "tool_calls",
                )
            choice = {"index": 0, "message": message, "finish_reason": finish}
            if want_lp:
                choice["logprobs"] = _logprobs(words, lp)
            return JSONResponse(
                {
                    "id": "chatcmpl-cascade",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [choice],
                    "usage": usage,
                }
            )

        def chunk(delta: dict, finish_reason=None, lp_words=None) -> str:
            c = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            if lp_words is not None and want_lp:
                c["logprobs"] = _logprobs(lp_words, lp)
            body_ = {
                "id": "chatcmpl-cascade",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [c],
            }
            return f"data: {json.dumps(body_)}\n\n"

        async def sse():
            yield chunk({"role": "assistant", "content": ""})
            if tool_call:
                yield chunk({"tool_calls": [{"index": 0, **tool_call}]})
                yield chunk({}, "tool_calls")
            else:
                for i, w in enumerate(words):
                    if slow and i == SLOW_AFTER:
                        await self._at_gate()
                    yield chunk({"content": w if i == 0 else " " + w}, None, [w])
                yield chunk({}, finish)
            if (body.get("stream_options") or {}).get("include_usage"):
                u = {
                    "id": "chatcmpl-cascade",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
                yield f"data: {json.dumps(u)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")
