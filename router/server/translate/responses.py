"""The Responses API (`POST /v1/responses`) to and from chat completions.

`input` as a string or items (messages, `function_call`, `function_call_output`),
`instructions`, function `tools`, `tool_choice`, `text.format`, `max_output_tokens`; the server
resolves `previous_response_id` into earlier chat messages. Field paths look like OpenAI's:
`input[2].call_id`. Nothing here does I/O or routing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from router.core.request import Message, RequestError, check_response_format, check_tools
from router.server.translate.common import (
    ChatCall,
    Reply,
    StreamDelta,
    field_error,
    new_id,
    now_s,
    openai_path,
    text_of,
    validated,
)
from router.server.validate import EMPTY_TOOL_RESULT

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
    body = validated(ResponsesBody, data, openai_path)
    if body.input is None and body.previous_response_id is None:
        raise field_error("required (a string or a list of input items)", "input")
    if isinstance(body.input, str) and not body.input.strip():
        raise field_error("must not be empty", "input")
    if isinstance(body.input, list) and not body.input:
        raise field_error("must not be an empty list", "input")
    return body


def responses_to_chat(body: ResponsesBody, history: list[Message]) -> ChatCall:
    """Chat messages and parameters for a checked Responses body; `history` is the chat form of
    the `previous_response_id` chain (instructions are not carried over, as with OpenAI)."""
    new: list[Message] = []
    if isinstance(body.input, str):
        new.append({"role": "user", "content": body.input})
    elif body.input is not None:
        new = _input_items(body.input, history)
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
            # A copy: litellm writes its own timings into the `metadata` it is given, and the
            # response echoes the caller's metadata (string values only, per the API).
            params[dst] = dict(value) if isinstance(value, dict) else value
    fmt = _responses_format(body.text)
    if fmt is not None:
        params["response_format"] = fmt
    if body.stream:
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
    try:
        check_tools(params.get("tools"), params.get("tool_choice"))
        check_response_format(params.get("response_format"))
    except RequestError as e:
        raise field_error(str(e).split(": ", 1)[-1], _chat_param_to_responses(e.param)) from None
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


def _input_items(items: list[Any], history: list[Message] = ()) -> list[Message]:
    """Chat messages for input items; `history` (the previous_response_id chain) holds the
    calls a `function_call_output` may answer besides those of the items before it."""
    out: list[Message] = []
    for i, item in enumerate(items):
        at = f"input[{i}]"
        if not isinstance(item, dict):
            raise field_error("must be an object (a message or an item with a 'type')", at)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            out.append(_input_message(item, at))
        elif kind == "function_call":
            call = {
                "id": text_of(item.get("call_id"), f"{at}.call_id"),
                "type": "function",
                "function": {
                    "name": text_of(item.get("name"), f"{at}.name"),
                    "arguments": text_of(item.get("arguments"), f"{at}.arguments", True),
                },
            }
            last = out[-1] if out else None
            # Consecutive calls (and the text just before them) are one assistant turn in chat.
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = text_of(item.get("call_id"), f"{at}.call_id")
            output = item.get("output")
            if isinstance(output, list):
                output = "\n".join(_part_text(p, f"{at}.output[{j}]") for j, p in enumerate(output))
            elif not isinstance(output, str):
                raise field_error(
                    "required, a string or a list of input_text parts", f"{at}.output"
                )
            known = {c["id"] for m in [*history, *out] for c in m.get("tool_calls") or []}
            if call_id not in known:
                raise field_error(
                    f"no function_call with call_id {call_id!r} before it", f"{at}.call_id"
                )
            # An empty result is still a result; chat upstreams refuse empty tool content.
            content = output if output.strip() else EMPTY_TOOL_RESULT
            out.append({"role": "tool", "tool_call_id": call_id, "content": content})
        elif kind == "reasoning":
            continue  # reasoning items of another model mean nothing to the next one
        elif is_item_reference(item):
            # The server puts the item it names in its place before this (responses.py).
            raise field_error("an item reference must be resolved first", f"{at}.id")
        elif kind is None:
            raise field_error(
                "required: 'message', 'function_call' or 'function_call_output'", f"{at}.type"
            )
        else:
            raise field_error(
                f"unsupported item type {str(kind)[:64]!r}; this router takes 'message', "
                "'function_call' and 'function_call_output' items",
                f"{at}.type",
            )
    return out


def is_item_reference(item: Any) -> bool:
    """An `item_reference` input item: `{"type": "item_reference", "id": ...}`, or as the API
    also takes it, an object with an `id` and neither a `type` nor a `role`."""
    if not isinstance(item, dict):
        return False
    if item.get("type") == "item_reference":
        return True
    return "type" not in item and "role" not in item and "id" in item


def _input_message(item: dict, at: str) -> Message:
    role = item.get("role")
    if role not in RESPONSE_ROLES:
        raise field_error(f"must be one of {list(RESPONSE_ROLES)}", f"{at}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": text_of(content, f"{at}.content")}
    if not isinstance(content, list) or not content:
        raise field_error(
            "required, a string or a non-empty list of content parts", f"{at}.content"
        )
    parts: list[dict] = []
    for j, p in enumerate(content):
        here = f"{at}.content[{j}]"
        if not isinstance(p, dict):
            raise field_error("must be an object with a 'type'", here)
        kind = p.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": text_of(p.get("text"), f"{here}.text")})
        elif kind == "refusal":
            parts.append({"type": "text", "text": text_of(p.get("refusal"), f"{here}.refusal")})
        elif kind == "input_image" and role == "user":
            url = p.get("image_url")
            if not isinstance(url, str) or not url:
                raise field_error(
                    "an image needs an 'image_url' (file ids are not supported)",
                    f"{here}.image_url",
                )
            image = {"url": url}
            if isinstance(p.get("detail"), str):
                image["detail"] = p["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise field_error(
                f"unsupported content part {str(kind)[:64]!r} for role {role!r}", f"{here}.type"
            )
    if all(p["type"] == "text" for p in parts):
        # Text only: one string, as a later turn's reply carries it back.
        return {"role": role, "content": "\n".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _part_text(p: Any, at: str) -> str:
    if not isinstance(p, dict) or p.get("type") not in ("input_text", "output_text", "text"):
        raise field_error("must be an input_text part", at)
    return text_of(p.get("text"), f"{at}.text", True)


def _responses_tools(tools: list[Any] | None) -> list[dict]:
    out = []
    for i, t in enumerate(tools or []):
        at = f"tools[{i}]"
        if not isinstance(t, dict):
            raise field_error("must be an object", at)
        if t.get("type") != "function":
            raise field_error("only 'function' tools are supported by this router", f"{at}.type")
        fn: dict[str, Any] = {"name": t.get("name")}
        for k in ("description", "parameters", "strict"):
            if k in t and t[k] is not None:
                fn[k] = t[k]
        if "strict" in fn and not isinstance(fn["strict"], bool):
            raise field_error("must be true or false", f"{at}.strict")
        out.append({"type": "function", "function": fn})
    return out


def _responses_tool_choice(choice: Any, tools: list[dict]) -> Any:
    if isinstance(choice, str):
        return choice
    if choice.get("type") == "function":
        name = choice.get("name")
        if not isinstance(name, str) or name not in {t["function"]["name"] for t in tools}:
            raise field_error(f"{str(name)[:64]!r} is not one of the tools", "tool_choice.name")
        return {"type": "function", "function": {"name": name}}
    if choice.get("type") == "allowed_tools":
        raise field_error("allowed_tools is not supported by this router", "tool_choice.type")
    raise field_error("must be 'none', 'auto', 'required' or a function choice", "tool_choice")


def _responses_format(text: dict | None) -> dict | None:
    if not text or text.get("format") is None:
        return None
    fmt = text["format"]
    if not isinstance(fmt, dict):
        raise field_error("must be an object with a 'type'", "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        if not isinstance(schema.get("name"), str):
            raise field_error("a json_schema format needs a 'name'", "text.format.name")
        return {"type": "json_schema", "json_schema": schema}
    raise field_error("must be 'text', 'json_object' or 'json_schema'", "text.format.type")


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
        "created_at": created or now_s(),
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
        out["completed_at"] = now_s()
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


def call_item(item_id: str, call: dict, status: str = "completed") -> dict:
    """A `function_call` item of a chat tool call (`id`, `name`, `arguments`)."""
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
    if reply.text or not reply.calls:  # an empty answer is an empty message, not no output
        output.append(_message_item(new_id("msg"), reply.text))
    output += [call_item(new_id("fc"), c) for c in reply.calls]
    incomplete = _incomplete_reason(reply.finish)
    status = "incomplete" if incomplete else "completed"
    return response_object(rid, body, model, status, output, reply.usage, None, incomplete)


class ResponsesStream:
    """Chat chunks → the Responses API's typed stream events (dicts), in the documented order:
    response.created, response.in_progress, then per output item output_item.added,
    (content_part.added, output_text.delta..., output_text.done, content_part.done) or
    (function_call_arguments.delta..., function_call_arguments.done), output_item.done, and
    response.completed (or response.incomplete / response.failed). One item is open at a time,
    as the API streams them: the next item's first event closes the one before."""

    def __init__(self, rid: str, body: ResponsesBody, model: str) -> None:
        self.rid, self.body, self.model = rid, body, model
        self.created = now_s()
        self.seq = 0
        self.output: list[dict] = []  # items in output order
        self._text_at: int | None = None  # output index of the open message item
        self._text: list[str] = []  # every text delta (the reply's text)
        self._item_text: dict[int, list[str]] = {}  # output index → its message's text
        self._open: int | None = None  # output index of the item open now
        self._done: dict[int, dict] = {}  # output index → the item as output_item.done gave it
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
        d = StreamDelta.of(chunk)
        events: list[dict] = []
        if d.usage is not None:
            self.usage = d.usage
        if d.finish:
            self.finish = d.finish
        if d.text:
            if self._text_at is None:
                events += self._close_open() + self._open_message()
            self._text.append(d.text)
            self._item_text[self._text_at].append(d.text)
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
                events += self._close_open()
                at = len(self.output)
                self._calls[index] = at
                self._args[index] = []
                call = {"id": cid or new_id("call"), "name": name or "", "arguments": ""}
                item = call_item(new_id("fc"), call, "in_progress")
                self.output.append(item)
                self._open = at
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

    def _open_message(self) -> list[dict]:
        """The events that open the message item (its text follows as deltas)."""
        self._text_at = self._open = len(self.output)
        self._item_text[self._text_at] = []
        item = _message_item(new_id("msg"), "", "in_progress")
        self.output.append(item)
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [
            self._event("response.output_item.added", output_index=self._text_at, item=item),
            self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=self._text_at,
                content_index=0,
                part=part,
            ),
        ]

    def _close_open(self) -> list[dict]:
        """The events that close the item open now (none when none is)."""
        at, self._open = self._open, None
        if at is None:
            return []
        item = self.output[at]
        if item["type"] == "message":
            self._text_at = None
            text = "".join(self._item_text[at])
            done = _message_item(item["id"], text)
            common = {"item_id": item["id"], "output_index": at, "content_index": 0}
            events = [
                self._event("response.output_text.done", **common, text=text, logprobs=[]),
                self._event("response.content_part.done", **common, part=done["content"][0]),
            ]
        else:
            index = next(i for i, o in self._calls.items() if o == at)
            args = "".join(self._args[index])
            call = {"id": item["call_id"], "name": item["name"], "arguments": args}
            done = call_item(item["id"], call)
            events = [
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=at,
                    name=item["name"],
                    arguments=args,
                )
            ]
        self._done[at] = done
        events.append(self._event("response.output_item.done", output_index=at, item=done))
        return events

    def finish_events(self) -> list[dict]:
        """The closing events: the open item done, then the final response. An answer with
        neither text nor calls is one empty message, as a whole answer would be."""
        events: list[dict] = [] if self.output else self._open_message()
        events += self._close_open()
        for index, at in self._calls.items():  # pieces for a call closed early still count
            self._done[at]["arguments"] = "".join(self._args[index])
        final = [self._done[at] for at in range(len(self.output))]
        incomplete = _incomplete_reason(self.finish)
        status = "incomplete" if incomplete else "completed"
        response = self._response(status, output=final, usage=self.usage, incomplete=incomplete)
        self.final = response
        kind = "response.incomplete" if incomplete else "response.completed"
        events.append(self._event(kind, response=response))
        return events

    def fail_events(self, message: str, status: int = 502) -> list[dict]:
        """The events that end a stream cut by an upstream failure. The Responses API has one
        error code for any failure on the server's side, whatever its HTTP `status`."""
        code = "server_error"
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
