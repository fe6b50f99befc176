"""A loopback upstream that behaves like a tool-using model, for the agent tests.

It extends `tests.upstream.Upstream` (faults such as `fail-500` and `switch-<x>` still work):
- without tools: "echo: <last user text>"; `max_tokens` cuts the answer to that many words
  (finish_reason "length") and a `stop` string cuts it where it appears;
- with tools (and tool_choice not "none"): one tool call per round, tool k in round k, until
  every tool was called; then a text answer quoting every tool result it was given
  ("done: r1 | r2 ..."). A last user text containing "parallel" gets every tool called at once
  (parallel tool calls in one message).
Streams carry text word by word and tool-call arguments in pieces, as real providers do. Every
call's tool-call ids are unique. The answering model is the requested model name, so a test
can tell from `requests` which model saw which turn.
"""

from __future__ import annotations

import itertools
import json
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from tests.upstream import Upstream, _last_user_text

SILENT = "[say nothing]"  # in the last user message: the answer is empty
_ids = itertools.count(1)


def _rounds_since_user(messages: list[dict]) -> int:
    """Assistant tool-call messages after the last user message (text a user message adds
    right after tool results, as Claude Code's reminders, is no new question)."""
    n = 0
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        after_results = i > 0 and messages[i - 1].get("role") == "tool"
        if m.get("role") == "user" and not after_results:
            break
        if m.get("role") == "assistant" and m.get("tool_calls"):
            n += 1
    return n


def _tool_results(messages: list[dict]) -> list[str]:
    out = []
    for m in messages:
        if m.get("role") == "tool":
            c = m.get("content")
            if isinstance(c, list):
                c = " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            out.append(str(c))
    return out


class AgentUpstream(Upstream):
    async def chat(self, request: Request):
        body = await request.json()
        model = body.get("model", "")
        if model == "cut-stream" or model.startswith("fail-") or model in self.down:
            return await super().chat(request)  # the shared upstream's faults
        if self.keep_requests:
            self.requests.append(body)
        self.calls[model] += 1
        messages = body.get("messages", [])
        tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
        calls: list[dict] = []
        text = None
        finish = "stop"
        if tools and body.get("tool_choice") != "none":
            rounds = _rounds_since_user(messages)
            user = _last_user_text(body)
            if "parallel" in user and rounds == 0:
                picked = tools
            elif "parallel" not in user and rounds < len(tools):
                picked = [tools[rounds]]
            else:
                picked = []
            for k, t in enumerate(picked):
                args = {"step": rounds + 1 + k, "q": user}
                calls.append(
                    {
                        "id": f"call_{next(_ids)}",
                        "type": "function",
                        "function": {"name": t["function"]["name"], "arguments": json.dumps(args)},
                    }
                )
        if calls:
            finish = "tool_calls"
        else:
            results = _tool_results(messages)
            text = ("done: " + " | ".join(results)) if results else "echo: " + _last_user_text(body)
            if SILENT in _last_user_text(body):
                text = ""  # a model that answers with nothing
            stops = body.get("stop") or []
            for s in [stops] if isinstance(stops, str) else stops:
                if s and s in text:
                    text = text[: text.index(s)]
            limit = body.get("max_tokens") or body.get("max_completion_tokens")
            words = text.split(" ")
            if limit and len(words) > limit:
                text, finish = " ".join(words[:limit]), "length"
        created = int(time.time())
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            if calls:
                message["tool_calls"] = calls
            return JSONResponse(
                {
                    "id": f"chatcmpl-{next(_ids)}",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                }
            )

        def chunk(delta: dict, reason: str | None = None) -> str:
            data = {
                "id": "chatcmpl-agent",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
            }
            return f"data: {json.dumps(data)}\n\n"

        async def sse():
            yield chunk({"role": "assistant", "content": ""})
            if text is not None:
                for i, w in enumerate(text.split(" ")):
                    yield chunk({"content": w if i == 0 else " " + w})
            for i, c in enumerate(calls):
                fn = c["function"]
                head = {"index": i, "id": c["id"], "type": "function"}
                yield chunk({"tool_calls": [{**head, "function": {"name": fn["name"]}}]})
                args = fn["arguments"]
                cut = len(args) // 2
                for piece in (args[:cut], args[cut:]):
                    yield chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
            yield chunk({}, finish)
            if (body.get("stream_options") or {}).get("include_usage"):
                data = {
                    "id": "chatcmpl-agent",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
                yield f"data: {json.dumps(data)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    def models_seen(self, marker: str) -> list[str]:
        """The model of every request whose messages mention `marker`, in order."""
        return [
            r.get("model", "")
            for r in self.requests
            if marker in json.dumps(r.get("messages", []), ensure_ascii=False)
        ]
