"""The Responses API and Anthropic's Messages API to and from chat completions, in one place.

Both agent-facing APIs are served by routing a chat request through the SDK, so each request
body is checked (every 4xx names the field, in the API's own path style), turned into chat
messages and parameters, and the chat answer (or its stream of chunks) is turned back into the
API's response object (or its typed events). Nothing here does I/O or routing.

- Responses (`POST /v1/responses`): `input` as a string or items (messages, `function_call`,
  `function_call_output`), `instructions`, function `tools`, `tool_choice`, `text.format`,
  `max_output_tokens`; the server resolves `previous_response_id` into earlier chat messages.
  Field paths look like OpenAI's: `input[2].call_id`.
- Messages (`POST /v1/messages`): `system`, multi-turn `messages` with text, image, `tool_use`
  and `tool_result` blocks, `tools`, `tool_choice`, `max_tokens`, `stop_sequences`. The
  conversion of a checked body to chat messages is litellm's Anthropic adapter; field paths
  look like Anthropic's: `messages.1.content.0.tool_use_id`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router.core.request import Message, RequestError
from router.server import validate

# ---- shared -------------------------------------------------------------------------------


@dataclass
class ChatCall:
    """A chat request made from another API's body: messages and SDK keyword arguments."""

    messages: list[Message]
    params: dict[str, Any]
    new_messages: int = 0  # how many of the last messages this request added (the rest: history)


def _fail(message: str, param: str) -> RequestError:
    return RequestError(f"{param}: {message}", param)


def _openai_path(loc: tuple) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _anthropic_path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def _in_body(data: Any, loc: tuple) -> tuple:
    """The part of a pydantic error location that exists in the body (union tags dropped)."""
    out: list = []
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        elif not out:
            out.append(part)
            break
        else:
            break
        out.append(part)
    return tuple(out)


def _validated(model: type[BaseModel], data: Any, style) -> Any:
    if not isinstance(data, dict):
        raise RequestError("request body must be a JSON object", None)
    try:
        validate.check_values(data)
    except RequestError as e:
        # check_values names fields OpenAI-style; re-spell them for Anthropic's API.
        if style is _anthropic_path and e.param:
            param = e.param.replace("][", ".").replace("[", ".").replace("]", "")
            raise _fail(str(e).split(": ", 1)[-1], param) from None
        raise
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        param = style(_in_body(data, err["loc"])) or None
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown parameter (not part of this API, or not supported by this router)"
        raise RequestError(f"{param}: {msg}" if param else msg, param) from None


def _text(value: Any, param: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _fail("must be a string", param)
    if not allow_empty and not value.strip():
        raise _fail("must not be empty", param)
    return value


def _json_object_text(arguments: str) -> dict:
    """Tool-call arguments as an object (the Messages API's `input`); non-JSON kept as text."""
    try:
        value = json.loads(arguments) if arguments else {}
    except ValueError:
        return {"_arguments": arguments}
    return value if isinstance(value, dict) else {"_arguments": value}


def _now() -> int:
    return int(time.time())


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


@dataclass
class Reply:
    """A chat answer reduced to what both APIs need: text, tool calls, finish reason, usage."""

    text: str = ""
    calls: list[dict] = field(default_factory=list)  # {"id", "name", "arguments"}
    finish: str | None = None
    usage: tuple[int, int] | None = None

    @classmethod
    def of(cls, response: Any) -> Reply:
        choices = _get(response, "choices") or []
        out = cls()
        if choices:
            msg = _get(choices[0], "message")
            out.text = _get(msg, "content") or ""
            out.finish = _get(choices[0], "finish_reason")
            for c in _get(msg, "tool_calls") or []:
                fn = _get(c, "function")
                out.calls.append(
                    {
                        "id": _get(c, "id") or new_id("call"),
                        "name": _get(fn, "name") or "",
                        "arguments": _get(fn, "arguments") or "",
                    }
                )
        usage = _get(response, "usage")
        if usage is not None:
            out.usage = (
                int(_get(usage, "prompt_tokens") or 0),
                int(_get(usage, "completion_tokens") or 0),
            )
        return out

    def message(self) -> Message:
        """The assistant chat message (what a later turn carries back)."""
        out: Message = {"role": "assistant", "content": self.text or None}
        if self.calls:
            out["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in self.calls
            ]
        return out


@dataclass
class _Delta:
    """One streamed chat chunk, reduced: text, tool-call pieces by index, finish, usage."""

    text: str = ""
    calls: list[tuple[int, str | None, str | None, str]] = field(default_factory=list)
    finish: str | None = None
    usage: tuple[int, int] | None = None

    @classmethod
    def of(cls, chunk: Any) -> _Delta:
        out = cls()
        usage = _get(chunk, "usage")
        if usage is not None and _get(usage, "completion_tokens") is not None:
            out.usage = (
                int(_get(usage, "prompt_tokens") or 0),
                int(_get(usage, "completion_tokens") or 0),
            )
        choices = _get(chunk, "choices") or []
        if not choices:
            return out
        out.finish = _get(choices[0], "finish_reason")
        d = _get(choices[0], "delta")
        if d is None:
            return out
        out.text = _get(d, "content") or ""
        for tc in _get(d, "tool_calls") or []:
            fn = _get(tc, "function")
            out.calls.append(
                (
                    _get(tc, "index") or 0,
                    _get(tc, "id"),
                    _get(fn, "name"),
                    _get(fn, "arguments") or "",
                )
            )
        return out


# ---- Responses API: request ---------------------------------------------------------------


class ResponsesBody(BaseModel):
    """POST /v1/responses; unknown fields are refused (400 naming them)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1, max_length=256)
    input: str | list[Any] | None = None
    instructions: str | None = None
    previous_response_id: str | None = Field(default=None, min_length=1, max_length=256)
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    stream: bool | None = None
    store: bool | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    metadata: dict[str, str] | None = None
    user: str | None = Field(default=None, max_length=256)
    text: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    # Accepted and not acted on: they change nothing a routed chat call could honour.
    include: list[str] | None = None
    reasoning: dict[str, Any] | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    stream_options: dict[str, Any] | None = None
    background: Literal[False] | None = None
    # Newer or provider-side options of OpenAI's API: accepted (so agents that send them work)
    # and not forwarded. `conversation` and `prompt` change what the input is: refused.
    top_logprobs: Any = None
    max_tool_calls: Any = None
    context_management: Any = None
    prompt_cache_options: Any = None
    prompt_cache_retention: Any = None
    background_options: Any = None
    moderation: Any = None
    access_programs: Any = None
    image: Any = None


# What ResponsesBody accepts without acting on it (documented as "any" in the OpenAPI body).
RESPONSES_IGNORED = (
    "top_logprobs",
    "max_tool_calls",
    "context_management",
    "prompt_cache_options",
    "prompt_cache_retention",
    "background_options",
    "moderation",
    "access_programs",
    "image",
    "reasoning",
    "stream_options",
)


RESPONSE_ROLES = ("user", "assistant", "system", "developer")


def parse_responses(data: Any) -> ResponsesBody:
    """A Responses body, checked; RequestError naming the field otherwise."""
    body = _validated(ResponsesBody, data, _openai_path)
    if body.input is None and body.previous_response_id is None:
        raise _fail("required (a string or a list of input items)", "input")
    if isinstance(body.input, str) and not body.input.strip():
        raise _fail("must not be empty", "input")
    if isinstance(body.input, list) and not body.input:
        raise _fail("must not be an empty list", "input")
    return body


def responses_to_chat(body: ResponsesBody, history: list[Message]) -> ChatCall:
    """Chat messages and parameters for a checked Responses body; `history` is the chat form of
    the `previous_response_id` chain (instructions are not carried over, as with OpenAI)."""
    new: list[Message] = []
    if isinstance(body.input, str):
        new.append({"role": "user", "content": body.input})
    elif body.input is not None:
        new = _input_items(body.input)
    messages: list[Message] = []
    if body.instructions is not None and body.instructions.strip():
        messages.append({"role": "system", "content": body.instructions})
    messages += history + new
    params: dict[str, Any] = {}
    tools = _responses_tools(body.tools)
    if tools:
        params["tools"] = tools
    if body.tool_choice is not None:
        params["tool_choice"] = _responses_tool_choice(body.tool_choice, tools)
    if body.parallel_tool_calls is not None and tools:
        params["parallel_tool_calls"] = body.parallel_tool_calls
    for src, dst in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("max_output_tokens", "max_tokens"),
        ("user", "user"),
        ("metadata", "metadata"),
    ):
        value = getattr(body, src)
        if value is not None:
            params[dst] = value
    fmt = _responses_format(body.text)
    if fmt is not None:
        params["response_format"] = fmt
    if body.stream:
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
    try:
        validate.check_tools(params.get("tools"), params.get("tool_choice"))
        validate.check_response_format(params.get("response_format"))
    except RequestError as e:
        raise _fail(str(e).split(": ", 1)[-1], _chat_param_to_responses(e.param)) from None
    return ChatCall(messages, params, len(new))


def _chat_param_to_responses(param: str | None) -> str:
    """tools[0].function.name (chat) → tools[0].name (Responses); response_format → text."""
    if not param:
        return "input"
    if param.startswith("tools[") and ".function." in param:
        return param.replace(".function.", ".", 1)
    if param.startswith("tool_choice.function."):
        return param.replace("tool_choice.function.", "tool_choice.", 1)
    if param.startswith("response_format"):
        return "text.format"
    return param


def _input_items(items: list[Any]) -> list[Message]:
    out: list[Message] = []
    for i, item in enumerate(items):
        at = f"input[{i}]"
        if not isinstance(item, dict):
            raise _fail("must be an object (a message or an item with a 'type')", at)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            out.append(_input_message(item, at))
        elif kind == "function_call":
            call = {
                "id": _text(item.get("call_id"), f"{at}.call_id"),
                "type": "function",
                "function": {
                    "name": _text(item.get("name"), f"{at}.name"),
                    "arguments": _text(item.get("arguments"), f"{at}.arguments", True),
                },
            }
            last = out[-1] if out else None
            # Consecutive calls (and the text just before them) are one assistant turn in chat.
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = _text(item.get("call_id"), f"{at}.call_id")
            output = item.get("output")
            if isinstance(output, list):
                output = "\n".join(_part_text(p, f"{at}.output[{j}]") for j, p in enumerate(output))
            elif not isinstance(output, str):
                raise _fail("required, a string or a list of input_text parts", f"{at}.output")
            known = {c["id"] for m in out for c in m.get("tool_calls", [])}
            if out and known and call_id not in known:
                raise _fail(f"no function_call with call_id {call_id!r} before it", f"{at}.call_id")
            # An empty result is still a result; chat upstreams refuse empty tool content.
            out.append({"role": "tool", "tool_call_id": call_id, "content": output or "(empty)"})
        elif kind == "reasoning":
            continue  # reasoning items of another model mean nothing to the next one
        elif kind == "item_reference":
            raise _fail("item references are not supported; use previous_response_id", f"{at}.type")
        elif kind is None:
            raise _fail(
                "required: 'message', 'function_call' or 'function_call_output'", f"{at}.type"
            )
        else:
            raise _fail(
                f"unsupported item type {str(kind)[:64]!r}; this router takes 'message', "
                "'function_call' and 'function_call_output' items",
                f"{at}.type",
            )
    return out


def _input_message(item: dict, at: str) -> Message:
    role = item.get("role")
    if role not in RESPONSE_ROLES:
        raise _fail(f"must be one of {list(RESPONSE_ROLES)}", f"{at}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": _text(content, f"{at}.content")}
    if not isinstance(content, list) or not content:
        raise _fail("required, a string or a non-empty list of content parts", f"{at}.content")
    parts: list[dict] = []
    for j, p in enumerate(content):
        here = f"{at}.content[{j}]"
        if not isinstance(p, dict):
            raise _fail("must be an object with a 'type'", here)
        kind = p.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": _text(p.get("text"), f"{here}.text")})
        elif kind == "refusal":
            parts.append({"type": "text", "text": _text(p.get("refusal"), f"{here}.refusal")})
        elif kind == "input_image" and role == "user":
            url = p.get("image_url")
            if not isinstance(url, str) or not url:
                raise _fail(
                    "an image needs an 'image_url' (file ids are not supported)",
                    f"{here}.image_url",
                )
            image = {"url": url}
            if isinstance(p.get("detail"), str):
                image["detail"] = p["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise _fail(
                f"unsupported content part {str(kind)[:64]!r} for role {role!r}", f"{here}.type"
            )
    if all(p["type"] == "text" for p in parts):
        # Text only: one string, as a later turn's reply carries it back.
        return {"role": role, "content": "\n".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _part_text(p: Any, at: str) -> str:
    if not isinstance(p, dict) or p.get("type") not in ("input_text", "output_text", "text"):
        raise _fail("must be an input_text part", at)
    return _text(p.get("text"), f"{at}.text", True)


def _responses_tools(tools: list[Any] | None) -> list[dict]:
    out = []
    for i, t in enumerate(tools or []):
        at = f"tools[{i}]"
        if not isinstance(t, dict):
            raise _fail("must be an object", at)
        if t.get("type") != "function":
            raise _fail("only 'function' tools are supported by this router", f"{at}.type")
        fn: dict[str, Any] = {"name": t.get("name")}
        for k in ("description", "parameters", "strict"):
            if k in t and t[k] is not None:
                fn[k] = t[k]
        if "strict" in fn and not isinstance(fn["strict"], bool):
            raise _fail("must be true or false", f"{at}.strict")
        out.append({"type": "function", "function": fn})
    return out


def _responses_tool_choice(choice: Any, tools: list[dict]) -> Any:
    if isinstance(choice, str):
        return choice
    if choice.get("type") == "function":
        name = choice.get("name")
        if not isinstance(name, str) or name not in {t["function"]["name"] for t in tools}:
            raise _fail(f"{str(name)[:64]!r} is not one of the tools", "tool_choice.name")
        return {"type": "function", "function": {"name": name}}
    if choice.get("type") == "allowed_tools":
        raise _fail("allowed_tools is not supported by this router", "tool_choice.type")
    raise _fail("must be 'none', 'auto', 'required' or a function choice", "tool_choice")


def _responses_format(text: dict | None) -> dict | None:
    if not text or text.get("format") is None:
        return None
    fmt = text["format"]
    if not isinstance(fmt, dict):
        raise _fail("must be an object with a 'type'", "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        if not isinstance(schema.get("name"), str):
            raise _fail("a json_schema format needs a 'name'", "text.format.name")
        return {"type": "json_schema", "json_schema": schema}
    raise _fail("must be 'text', 'json_object' or 'json_schema'", "text.format.type")


# ---- Responses API: response --------------------------------------------------------------


def response_object(
    rid: str,
    body: ResponsesBody,
    model: str,
    status: str,
    output: list[dict],
    usage: tuple[int, int] | None,
    error: dict | None = None,
    incomplete: str | None = None,
    created: int | None = None,
) -> dict:
    """The Responses API's response object."""
    fmt = (body.text or {}).get("format") or {"type": "text"}
    out = {
        "id": rid,
        "object": "response",
        "created_at": created or _now(),
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "model": model,
        "output": output,
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id,
        "reasoning": None,
        "store": body.store is not False,
        "temperature": body.temperature,
        "text": {"format": fmt},
        "tool_choice": body.tool_choice if body.tool_choice is not None else "auto",
        "tools": body.tools or [],
        "top_p": body.top_p,
        "truncation": body.truncation or "disabled",
        "usage": _responses_usage(usage) if usage is not None else None,
        "user": body.user,
        "metadata": body.metadata or {},
    }
    if status == "completed":
        out["completed_at"] = _now()
    return out


def _responses_usage(usage: tuple[int, int]) -> dict:
    p, c = usage
    return {
        "input_tokens": p,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": c,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": p + c,
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> dict:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        if status != "in_progress"
        else [],
    }


def _call_item(item_id: str, call: dict, status: str = "completed") -> dict:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call["id"],
        "name": call["name"],
        "arguments": call["arguments"],
    }


def _incomplete_reason(finish: str | None) -> str | None:
    return {"length": "max_output_tokens", "content_filter": "content_filter"}.get(finish or "")


def chat_to_response(rid: str, body: ResponsesBody, model: str, reply: Reply) -> dict:
    """A non-streamed chat answer as a Responses API response object."""
    output = []
    if reply.text:
        output.append(_message_item(new_id("msg"), reply.text))
    output += [_call_item(new_id("fc"), c) for c in reply.calls]
    incomplete = _incomplete_reason(reply.finish)
    status = "incomplete" if incomplete else "completed"
    return response_object(rid, body, model, status, output, reply.usage, None, incomplete)


class ResponsesStream:
    """Chat chunks → the Responses API's typed stream events (dicts), in the documented order:
    response.created, response.in_progress, then per output item output_item.added,
    (content_part.added, output_text.delta..., output_text.done, content_part.done) or
    (function_call_arguments.delta..., function_call_arguments.done), output_item.done, and
    response.completed (or response.incomplete / response.failed)."""

    def __init__(self, rid: str, body: ResponsesBody, model: str) -> None:
        self.rid, self.body, self.model = rid, body, model
        self.created = _now()
        self.seq = 0
        self.output: list[dict] = []  # items in output order
        self._text_at: int | None = None  # output index of the open message item
        self._text: list[str] = []
        self._calls: dict[int, int] = {}  # chat tool-call index → output index
        self._args: dict[int, list[str]] = {}
        self.finish: str | None = None
        self.usage: tuple[int, int] | None = None

    def _event(self, kind: str, **fields: Any) -> dict:
        ev = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return ev

    def _response(self, status: str, **kw: Any) -> dict:
        return response_object(
            self.rid,
            self.body,
            self.model,
            status,
            kw.pop("output", []),
            kw.pop("usage", None),
            created=self.created,
            **kw,
        )

    def start(self) -> list[dict]:
        r = self._response("in_progress")
        return [
            self._event("response.created", response=r),
            self._event("response.in_progress", response=r),
        ]

    def feed(self, chunk: Any) -> list[dict]:
        d = _Delta.of(chunk)
        events: list[dict] = []
        if d.usage is not None:
            self.usage = d.usage
        if d.finish:
            self.finish = d.finish
        if d.text:
            if self._text_at is None:
                self._text_at = len(self.output)
                item = _message_item(new_id("msg"), "", "in_progress")
                self.output.append(item)
                events.append(
                    self._event("response.output_item.added", output_index=self._text_at, item=item)
                )
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                events.append(
                    self._event(
                        "response.content_part.added",
                        item_id=item["id"],
                        output_index=self._text_at,
                        content_index=0,
                        part=part,
                    )
                )
            self._text.append(d.text)
            events.append(
                self._event(
                    "response.output_text.delta",
                    item_id=self.output[self._text_at]["id"],
                    output_index=self._text_at,
                    content_index=0,
                    delta=d.text,
                    logprobs=[],
                )
            )
        for index, cid, name, args in d.calls:
            if index not in self._calls:
                at = len(self.output)
                self._calls[index] = at
                self._args[index] = []
                call = {"id": cid or new_id("call"), "name": name or "", "arguments": ""}
                item = _call_item(new_id("fc"), call, "in_progress")
                self.output.append(item)
                events.append(self._event("response.output_item.added", output_index=at, item=item))
            at = self._calls[index]
            item = self.output[at]
            if cid:
                item["call_id"] = cid
            if name:
                item["name"] = name
            if args:
                self._args[index].append(args)
                events.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=at,
                        delta=args,
                    )
                )
        return events

    def finish_events(self) -> list[dict]:
        """The closing events: every open item done, then the final response."""
        events: list[dict] = []
        final: list[dict] = []
        for at, item in enumerate(self.output):
            if item["type"] == "message":
                text = "".join(self._text)
                done = _message_item(item["id"], text)
                common = {"item_id": item["id"], "output_index": at, "content_index": 0}
                events.append(
                    self._event("response.output_text.done", **common, text=text, logprobs=[])
                )
                events.append(
                    self._event("response.content_part.done", **common, part=done["content"][0])
                )
            else:
                index = next(i for i, o in self._calls.items() if o == at)
                args = "".join(self._args[index])
                call = {"id": item["call_id"], "name": item["name"], "arguments": args}
                done = _call_item(item["id"], call)
                events.append(
                    self._event(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=at,
                        name=item["name"],
                        arguments=args,
                    )
                )
            events.append(self._event("response.output_item.done", output_index=at, item=done))
            final.append(done)
        incomplete = _incomplete_reason(self.finish)
        status = "incomplete" if incomplete else "completed"
        response = self._response(status, output=final, usage=self.usage, incomplete=incomplete)
        self.final = response
        kind = "response.incomplete" if incomplete else "response.completed"
        events.append(self._event(kind, response=response))
        return events

    def fail_events(self, message: str, code: str = "server_error") -> list[dict]:
        error = {"code": code, "message": message}
        response = self._response("failed", output=[], usage=self.usage, error=error)
        return [
            self._event("error", code=code, message=message, param=None),
            self._event("response.failed", response=response),
        ]

    def reply(self) -> Reply:
        """What was streamed, as a Reply (for the stored conversation)."""
        calls = []
        for index, at in sorted(self._calls.items()):
            item = self.output[at]
            calls.append(
                {
                    "id": item["call_id"],
                    "name": item["name"],
                    "arguments": "".join(self._args[index]),
                }
            )
        return Reply("".join(self._text), calls, self.finish, self.usage)


def response_items_to_chat(output: list[dict]) -> Message | None:
    """A stored response's output items as the assistant chat message a later turn carries."""
    text = "".join(
        c.get("text", "")
        for item in output
        if item.get("type") == "message"
        for c in item.get("content", [])
    )
    calls = [
        {"id": i["call_id"], "name": i["name"], "arguments": i["arguments"]}
        for i in output
        if i.get("type") == "function_call"
    ]
    if not text and not calls:
        return None
    return Reply(text, calls).message()


# ---- Anthropic Messages API: request ------------------------------------------------------


class MessagesBody(BaseModel):
    """POST /v1/messages; unknown fields are refused (400 naming them)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1, max_length=256)
    max_tokens: int = Field(ge=1)
    messages: list[Any] = Field(min_length=1)
    system: str | list[Any] | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    tools: list[Any] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    # Accepted and not acted on (Anthropic-side features a routed chat call cannot honour);
    # `output_config.format` (structured output) is translated. `mcp_servers` is refused.
    service_tier: str | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    cache_control: Any = None
    container: Any = None
    context_management: Any = None
    compaction: Any = None
    diagnostics: Any = None
    inference_geo: Any = None
    speed: Any = None
    user_profile_id: Any = None
    workspace_id: Any = None
    billing_policy: Any = None
    fallbacks: Any = None
    fallback_credit_token: Any = None
    mcp_servers: list[Any] | None = None


# What MessagesBody accepts without acting on it (documented as "any" in the OpenAPI body).
MESSAGES_IGNORED = (
    "thinking",
    "cache_control",
    "container",
    "context_management",
    "compaction",
    "diagnostics",
    "inference_geo",
    "speed",
    "user_profile_id",
    "workspace_id",
    "billing_policy",
    "fallbacks",
    "fallback_credit_token",
)


BLOCKS_USER = ("text", "image", "tool_result")
BLOCKS_ASSISTANT = ("text", "tool_use", "thinking", "redacted_thinking")
TOOL_CHOICES = ("auto", "any", "tool", "none")


def parse_messages(data: Any) -> MessagesBody:
    """An Anthropic Messages body, checked; RequestError naming the field otherwise."""
    body = _validated(MessagesBody, data, _anthropic_path)
    _check_system(body.system)
    tool_ids: set[str] = set()
    for i, m in enumerate(body.messages):
        at = f"messages.{i}"
        if not isinstance(m, dict):
            raise _fail("must be an object with 'role' and 'content'", at)
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise _fail("must be 'user' or 'assistant'", f"{at}.role")
        extra = set(m) - {"role", "content"}
        if extra:
            raise _fail("unknown field", f"{at}.{sorted(extra)[0]}")
        content = m.get("content")
        if isinstance(content, str):
            if not content.strip():
                raise _fail("must not be empty", f"{at}.content")
            continue
        if not isinstance(content, list) or not content:
            raise _fail("required, a string or a non-empty list of content blocks", f"{at}.content")
        allowed = BLOCKS_USER if role == "user" else BLOCKS_ASSISTANT
        for j, block in enumerate(content):
            _check_block(block, f"{at}.content.{j}", role, allowed, tool_ids)
    if body.messages[0].get("role") != "user":
        raise _fail("the first message must have role 'user'", "messages.0.role")
    if body.mcp_servers:
        raise _fail("MCP servers are not supported by this router", "mcp_servers")
    _check_output_config(body.output_config)
    _check_anthropic_tools(body.tools)
    _check_anthropic_tool_choice(body.tool_choice, body.tools)
    for k, s in enumerate(body.stop_sequences or []):
        if not s:
            raise _fail("must not be empty", f"stop_sequences.{k}")
    meta = body.metadata or {}
    if "user_id" in meta and not isinstance(meta["user_id"], str | None):
        raise _fail("must be a string", "metadata.user_id")
    return body


def _check_output_config(config: dict | None) -> None:
    fmt = (config or {}).get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise _fail("must be a json_schema format", "output_config.format")
    if not isinstance(fmt.get("schema"), dict):
        raise _fail("required, a JSON schema object", "output_config.format.schema")


def _check_system(system: Any) -> None:
    if isinstance(system, list):
        for j, block in enumerate(system):
            at = f"system.{j}"
            if not isinstance(block, dict) or block.get("type") != "text":
                raise _fail("must be a text block", at)
            _text(block.get("text"), f"{at}.text", True)


def _check_block(block: Any, at: str, role: str, allowed: tuple, tool_ids: set[str]) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise _fail("must be an object with a 'type'", at)
    kind = block["type"]
    if kind not in allowed:
        raise _fail(f"unsupported block {kind[:64]!r} in a {role} message", f"{at}.type")
    if kind == "text":
        _text(block.get("text"), f"{at}.text", True)
    elif kind == "image":
        src = block.get("source")
        ok = isinstance(src, dict) and (
            (
                src.get("type") == "base64"
                and all(isinstance(src.get(k), str) for k in ("media_type", "data"))
            )
            or (src.get("type") == "url" and isinstance(src.get("url"), str))
        )
        if not ok:
            raise _fail("a base64 (media_type, data) or url source", f"{at}.source")
    elif kind == "tool_use":
        tool_ids.add(_text(block.get("id"), f"{at}.id"))
        _text(block.get("name"), f"{at}.name")
        if not isinstance(block.get("input"), dict):
            raise _fail("required, an object", f"{at}.input")
    elif kind == "tool_result":
        use_id = _text(block.get("tool_use_id"), f"{at}.tool_use_id")
        if use_id not in tool_ids:
            raise _fail(f"no earlier tool_use block has id {use_id[:64]!r}", f"{at}.tool_use_id")
        content = block.get("content")
        if content is not None and not isinstance(content, str):
            if not isinstance(content, list):
                raise _fail("must be a string or a list of text and image blocks", f"{at}.content")
            for k, part in enumerate(content):
                _check_block(part, f"{at}.content.{k}", "tool_result", ("text", "image"), tool_ids)
        if "is_error" in block and not isinstance(block["is_error"], bool):
            raise _fail("must be true or false", f"{at}.is_error")


def _check_anthropic_tools(tools: list[Any] | None) -> None:
    for i, t in enumerate(tools or []):
        at = f"tools.{i}"
        if not isinstance(t, dict):
            raise _fail("must be an object", at)
        if t.get("type") not in (None, "custom"):
            raise _fail(
                "server tools are not supported by this router (custom tools only)", f"{at}.type"
            )
        name = t.get("name")
        if not isinstance(name, str) or not validate.TOOL_NAME.match(name):
            raise _fail("required, 1-64 of a-z, A-Z, 0-9, _ and -", f"{at}.name")
        if "description" in t and not isinstance(t["description"], str):
            raise _fail("must be a string", f"{at}.description")
        schema = t.get("input_schema")
        if not isinstance(schema, dict):
            raise _fail("required, a JSON schema object", f"{at}.input_schema")
        try:
            validate._check_json_schema(schema, f"{at}.input_schema")
        except RequestError as e:
            raise _fail(str(e).split(": ", 1)[-1], e.param or f"{at}.input_schema") from None


def _check_anthropic_tool_choice(choice: dict | None, tools: list[Any] | None) -> None:
    if choice is None:
        return
    kind = choice.get("type")
    if kind not in TOOL_CHOICES:
        raise _fail(f"must be one of {list(TOOL_CHOICES)}", "tool_choice.type")
    if kind in ("any", "tool") and not tools:
        raise _fail(f"{kind!r} needs tools", "tool_choice.type")
    if kind == "tool":
        names = {t.get("name") for t in tools or []}
        if choice.get("name") not in names:
            raise _fail(
                f"{str(choice.get('name'))[:64]!r} is not one of the tools", "tool_choice.name"
            )
    if "disable_parallel_tool_use" in choice and not isinstance(
        choice["disable_parallel_tool_use"], bool
    ):
        raise _fail("must be true or false", "tool_choice.disable_parallel_tool_use")


def messages_to_chat(body: MessagesBody, data: dict) -> ChatCall:
    """Chat messages and parameters for a checked Messages body (`data`: the raw JSON), through
    litellm's Anthropic adapter."""
    from litellm.llms.anthropic.messages.adapters.transformation import (
        LiteLLMAnthropicMessagesAdapter,
    )

    keep = ("model", "messages", "system", "max_tokens", "stop_sequences", "temperature", "top_p")
    keep += ("tools", "tool_choice", "metadata")
    request = {k: v for k, v in data.items() if k in keep}
    chat, _ = LiteLLMAnthropicMessagesAdapter().translate_anthropic_to_openai(request)
    messages = [_clean(m) for m in chat["messages"]]
    params: dict[str, Any] = {"max_tokens": body.max_tokens}
    for k in (
        "tools",
        "tool_choice",
        "stop",
        "temperature",
        "top_p",
        "user",
        "parallel_tool_calls",
    ):
        if chat.get(k) is not None:
            params[k] = chat[k]
    # top_k is accepted and not forwarded: most chat providers refuse it (litellm raises).
    fmt = (body.output_config or {}).get("format")
    if fmt is not None:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": fmt["schema"]},
        }
    if body.stream:
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
    return ChatCall(messages, params, len(messages))


def _clean(m: Any) -> Message:
    """An adapter message as a plain chat message (no empty provider-specific keys)."""
    out = {k: v for k, v in dict(m).items() if v is not None or k == "content"}
    if out.get("role") == "assistant" and out.get("content") in ("", []):
        out["content"] = None
    return out


# ---- Anthropic Messages API: response -----------------------------------------------------

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def _stop_reason(finish: str | None, calls: bool) -> str:
    """Anthropic's stop_reason for a chat finish_reason. A chat "stop" does not say whether a
    stop sequence ended it, so that shows as end_turn (and stop_sequence stays null)."""
    return "tool_use" if calls else STOP_REASONS.get(finish or "stop", "end_turn")


def chat_to_message(mid: str, model: str, reply: Reply) -> dict:
    """A non-streamed chat answer as an Anthropic Message."""
    content: list[dict] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for c in reply.calls:
        content.append(
            {
                "type": "tool_use",
                "id": c["id"],
                "name": c["name"],
                "input": _json_object_text(c["arguments"]),
            }
        )
    p, c = reply.usage or (0, 0)
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(reply.finish, bool(reply.calls)),
        "stop_sequence": None,
        "usage": {"input_tokens": p, "output_tokens": c},
    }


class MessagesStream:
    """Chat chunks → Anthropic's stream events (dicts): message_start, then per content block
    content_block_start, content_block_delta (text_delta / input_json_delta),
    content_block_stop; then message_delta (stop_reason, usage) and message_stop."""

    def __init__(self, mid: str, model: str) -> None:
        self.mid, self.model = mid, model
        self.index = -1  # the open block
        self.kind: str | None = None  # "text" or "tool_use"
        self._calls: dict[int, int] = {}  # chat tool-call index → block index
        self._open_call: int | None = None
        self.text: list[str] = []
        self.calls: dict[int, dict] = {}
        self.finish: str | None = None
        self.usage: tuple[int, int] | None = None

    def start(self, input_tokens: int = 0) -> list[dict]:
        message = {
            "id": self.mid,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}]

    def _close(self) -> list[dict]:
        if self.kind is None:
            return []
        self.kind = None
        return [{"type": "content_block_stop", "index": self.index}]

    def feed(self, chunk: Any) -> list[dict]:
        d = _Delta.of(chunk)
        events: list[dict] = []
        if d.usage is not None:
            self.usage = d.usage
        if d.finish:
            self.finish = d.finish
        if d.text:
            if self.kind != "text":
                events += self._close()
                self.index += 1
                self.kind = "text"
                events.append(
                    {
                        "type": "content_block_start",
                        "index": self.index,
                        "content_block": {"type": "text", "text": ""},
                    }
                )
            self.text.append(d.text)
            events.append(
                {
                    "type": "content_block_delta",
                    "index": self.index,
                    "delta": {"type": "text_delta", "text": d.text},
                }
            )
        for index, cid, name, args in d.calls:
            call = self.calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            if cid:
                call["id"] = cid
            if name:
                call["name"] = name
            if index not in self._calls:
                events += self._close()
                self.index += 1
                self.kind = "tool_use"
                self._calls[index] = self.index
                self._open_call = index
                block = {
                    "type": "tool_use",
                    "id": call["id"] or new_id("toolu"),
                    "name": call["name"],
                    "input": {},
                }
                call["id"] = block["id"]
                events.append(
                    {"type": "content_block_start", "index": self.index, "content_block": block}
                )
            if args:
                call["arguments"] += args
                if self._open_call == index:
                    events.append(
                        {
                            "type": "content_block_delta",
                            "index": self._calls[index],
                            "delta": {"type": "input_json_delta", "partial_json": args},
                        }
                    )
        return events

    def finish_events(self) -> list[dict]:
        events = self._close()
        reason = _stop_reason(self.finish, bool(self.calls))
        p, c = self.usage or (0, 0)
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": None},
                "usage": {"input_tokens": p, "output_tokens": c},
            }
        )
        events.append({"type": "message_stop"})
        return events

    @staticmethod
    def fail_events(message: str, kind: str = "api_error") -> list[dict]:
        return [{"type": "error", "error": {"type": kind, "message": message}}]


def sse_events(events: list[dict], named: bool = True) -> Iterator[bytes]:
    """Events as SSE frames, each with its `event:` line (both APIs name their events)."""
    for ev in events:
        data = json.dumps(ev, ensure_ascii=False, separators=(",", ":"))
        head = f"event: {ev['type']}\n" if named else ""
        yield f"{head}data: {data}\n\n".encode()


def nullable(schema: dict) -> dict:
    """An optional field's JSON schema: the parsers take null for "not given"."""
    return {"anyOf": [schema, {"type": "null"}]}
