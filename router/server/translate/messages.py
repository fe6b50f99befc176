"""Anthropic's Messages API (`POST /v1/messages`) to and from chat completions.

`system`, multi-turn `messages` with text, image, document (text sources, sent as text),
`tool_use` and `tool_result` blocks, `tools`, `tool_choice`, `max_tokens`, `stop_sequences`.
The conversion of a checked body to chat messages is litellm's Anthropic adapter; field paths
look like Anthropic's: `messages.1.content.0.tool_use_id`. Nothing here does I/O or routing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from router.core.request import TOOL_NAME, Message, RequestError, check_json_schema
from router.server.translate.common import (
    ChatCall,
    Reply,
    StreamDelta,
    anthropic_path,
    field_error,
    json_object_text,
    new_id,
    text_of,
    validated,
)
from router.server.validate import EMPTY_TOOL_RESULT

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


BLOCKS_USER = ("text", "image", "tool_result", "document")
BLOCKS_ASSISTANT = ("text", "tool_use", "thinking", "redacted_thinking")
TOOL_CHOICES = ("auto", "any", "tool", "none")


def parse_messages(data: Any) -> MessagesBody:
    """An Anthropic Messages body, checked; RequestError naming the field otherwise."""
    body = validated(MessagesBody, data, anthropic_path)
    _check_system(body.system)
    tool_ids: set[str] = set()
    for i, m in enumerate(body.messages):
        at = f"messages.{i}"
        if not isinstance(m, dict):
            raise field_error("must be an object with 'role' and 'content'", at)
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise field_error("must be 'user' or 'assistant'", f"{at}.role")
        extra = set(m) - {"role", "content"}
        if extra:
            raise field_error("unknown field", f"{at}.{sorted(extra)[0]}")
        content = m.get("content")
        if isinstance(content, str):
            if not content.strip():
                raise field_error("must not be empty", f"{at}.content")
            continue
        if not isinstance(content, list) or not content:
            raise field_error(
                "required, a string or a non-empty list of content blocks", f"{at}.content"
            )
        allowed = BLOCKS_USER if role == "user" else BLOCKS_ASSISTANT
        for j, block in enumerate(content):
            _check_block(block, f"{at}.content.{j}", role, allowed, tool_ids)
    if body.messages[0].get("role") != "user":
        raise field_error("the first message must have role 'user'", "messages.0.role")
    if body.mcp_servers:
        raise field_error("MCP servers are not supported by this router", "mcp_servers")
    _check_output_config(body.output_config)
    _check_anthropic_tools(body.tools)
    _check_anthropic_tool_choice(body.tool_choice, body.tools)
    for k, s in enumerate(body.stop_sequences or []):
        if not s:
            raise field_error("must not be empty", f"stop_sequences.{k}")
    meta = body.metadata or {}
    if "user_id" in meta and not isinstance(meta["user_id"], str | None):
        raise field_error("must be a string", "metadata.user_id")
    return body


def _check_output_config(config: dict | None) -> None:
    fmt = (config or {}).get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise field_error("must be a json_schema format", "output_config.format")
    if not isinstance(fmt.get("schema"), dict):
        raise field_error("required, a JSON schema object", "output_config.format.schema")


def _check_system(system: Any) -> None:
    if isinstance(system, list):
        for j, block in enumerate(system):
            at = f"system.{j}"
            if not isinstance(block, dict) or block.get("type") != "text":
                raise field_error("must be a text block", at)
            text_of(block.get("text"), f"{at}.text", True)


def _check_block(block: Any, at: str, role: str, allowed: tuple, tool_ids: set[str]) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise field_error("must be an object with a 'type'", at)
    kind = block["type"]
    if kind not in allowed:
        raise field_error(f"unsupported block {kind[:64]!r} in a {role} message", f"{at}.type")
    if kind == "text":
        text_of(block.get("text"), f"{at}.text", True)
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
            raise field_error("a base64 (media_type, data) or url source", f"{at}.source")
    elif kind == "document":
        _document_text(block, at)
    elif kind == "tool_use":
        tool_ids.add(text_of(block.get("id"), f"{at}.id"))
        text_of(block.get("name"), f"{at}.name")
        if not isinstance(block.get("input"), dict):
            raise field_error("required, an object", f"{at}.input")
    elif kind == "tool_result":
        use_id = text_of(block.get("tool_use_id"), f"{at}.tool_use_id")
        if use_id not in tool_ids:
            raise field_error(
                f"no earlier tool_use block has id {use_id[:64]!r}", f"{at}.tool_use_id"
            )
        content = block.get("content")
        if content is not None and not isinstance(content, str):
            if not isinstance(content, list):
                raise field_error(
                    "must be a string or a list of text and image blocks", f"{at}.content"
                )
            for k, part in enumerate(content):
                _check_block(part, f"{at}.content.{k}", "tool_result", ("text", "image"), tool_ids)
        if "is_error" in block and not isinstance(block["is_error"], bool):
            raise field_error("must be true or false", f"{at}.is_error")


def _document_text(block: dict, at: str) -> str:
    """A document block as the text a chat model reads: its title, context and text, tagged.
    A plain text source or a content source of text blocks; a PDF, URL or file source is
    refused, since a chat model is sent text and would be sent nothing of it."""
    src = block.get("source")
    kind = src.get("type") if isinstance(src, dict) else None
    if kind == "text":
        body = text_of(src.get("data"), f"{at}.source.data", True)
    elif kind == "content":
        content = src.get("content")
        if isinstance(content, str):
            body = content
        elif isinstance(content, list) and content:
            texts = []
            for k, part in enumerate(content):
                where = f"{at}.source.content.{k}"
                if not isinstance(part, dict) or part.get("type") != "text":
                    raise field_error("must be a text block", where)
                texts.append(text_of(part.get("text"), f"{where}.text", True))
            body = "\n\n".join(texts)
        else:
            raise field_error("required, a string or a list of text blocks", f"{at}.source.content")
    else:
        raise field_error(
            "a text or content source: documents reach the models as text "
            f"(a {str(kind)[:32]!r} source is not supported)",
            f"{at}.source",
        )
    # Anthropic's own layout for documents in a prompt: each part tagged, so that documents,
    # their titles and the question stay apart once the blocks are joined into one text.
    parts = ["<document>"]
    for key, tag in (("title", "source"), ("context", "context")):
        value = block.get(key)
        if value is not None and not isinstance(value, str):
            raise field_error("must be a string", f"{at}.{key}")
        if value:
            parts.append(f"<{tag}>{value}</{tag}>")
    parts += [f"<document_content>\n{body}\n</document_content>", "</document>"]
    return "\n".join(parts)


def _documents_as_text(messages: list[Any]) -> list[Any]:
    """`messages` with every (checked) document block of a user message as a text block."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list) and any(b.get("type") == "document" for b in content):
            blocks = [
                {"type": "text", "text": _document_text(b, "")} if b["type"] == "document" else b
                for b in content
            ]
            m = {**m, "content": blocks}
        out.append(m)
    return out


def _tool_errors_said(messages: list[Any]) -> list[Any]:
    """`messages` with a `tool_result` marked `is_error` saying so in its text: chat has no
    such flag (litellm's adapter drops it), and the model must know the tool failed."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list) and any(
            b.get("type") == "tool_result" and b.get("is_error") is True for b in content
        ):
            m = {**m, "content": [_said_error(b) for b in content]}
        out.append(m)
    return out


def _said_error(block: dict) -> dict:
    if block.get("type") != "tool_result" or block.get("is_error") is not True:
        return block
    said = {"type": "text", "text": "Error (the tool call failed):"}
    inner = block.get("content")
    if isinstance(inner, str) or inner is None:
        inner = [{"type": "text", "text": inner}] if inner else []
    return {**block, "content": [said, *inner]}


def _check_anthropic_tools(tools: list[Any] | None) -> None:
    for i, t in enumerate(tools or []):
        at = f"tools.{i}"
        if not isinstance(t, dict):
            raise field_error("must be an object", at)
        if t.get("type") not in (None, "custom"):
            raise field_error(
                "server tools are not supported by this router (custom tools only)", f"{at}.type"
            )
        name = t.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise field_error("required, 1-64 of a-z, A-Z, 0-9, _ and -", f"{at}.name")
        if "description" in t and not isinstance(t["description"], str):
            raise field_error("must be a string", f"{at}.description")
        schema = t.get("input_schema")
        if not isinstance(schema, dict):
            raise field_error("required, a JSON schema object", f"{at}.input_schema")
        try:
            check_json_schema(schema, f"{at}.input_schema")
        except RequestError as e:
            raise field_error(str(e).split(": ", 1)[-1], e.param or f"{at}.input_schema") from None


def _check_anthropic_tool_choice(choice: dict | None, tools: list[Any] | None) -> None:
    if choice is None:
        return
    kind = choice.get("type")
    if kind not in TOOL_CHOICES:
        raise field_error(f"must be one of {list(TOOL_CHOICES)}", "tool_choice.type")
    if kind in ("any", "tool") and not tools:
        raise field_error(f"{kind!r} needs tools", "tool_choice.type")
    if kind == "tool":
        names = {t.get("name") for t in tools or []}
        if choice.get("name") not in names:
            raise field_error(
                f"{str(choice.get('name'))[:64]!r} is not one of the tools", "tool_choice.name"
            )
    if "disable_parallel_tool_use" in choice and not isinstance(
        choice["disable_parallel_tool_use"], bool
    ):
        raise field_error("must be true or false", "tool_choice.disable_parallel_tool_use")


def messages_to_chat(body: MessagesBody, data: dict) -> ChatCall:
    """Chat messages and parameters for a checked Messages body (`data`: the raw JSON), through
    litellm's Anthropic adapter."""
    from litellm.llms.anthropic.messages.adapters.transformation import (
        LiteLLMAnthropicMessagesAdapter,
    )

    keep = ("model", "messages", "system", "max_tokens", "stop_sequences", "temperature", "top_p")
    keep += ("tools", "tool_choice", "metadata")
    request = {k: v for k, v in data.items() if k in keep}
    request["messages"] = _tool_errors_said(_documents_as_text(request["messages"]))
    chat, _ = LiteLLMAnthropicMessagesAdapter().translate_anthropic_to_openai(request)
    messages = _tool_images_after(_clean(m) for m in chat["messages"])
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
    # litellm's adapter drops it: at most one tool call, in chat's terms.
    if (body.tool_choice or {}).get("disable_parallel_tool_use") is True and params.get("tools"):
        params["parallel_tool_calls"] = False
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
    if out.get("role") == "tool" and _blank(out.get("content")):
        # A tool_result without content is still a result; chat refuses empty tool content.
        out["content"] = EMPTY_TOOL_RESULT
    return out


def _tool_images_after(messages: Iterable[Message]) -> list[Message]:
    """Images a tool returned (Claude Code's screenshots, a file read) moved from the tool
    messages, where chat takes text only (OpenAI refuses an image there), into one user message
    right after them. The turn stays the tool loop's: results then user text (sessions.py)."""
    out: list[Message] = []
    images: list[dict] = []
    for m in [*messages, None]:
        is_tool = m is not None and m.get("role") == "tool"
        if not is_tool and images:
            text = {"type": "text", "text": "The image(s) the tool call(s) above returned:"}
            out.append({"role": "user", "content": [text, *images]})
            images = []
        if m is None:
            break
        content = m.get("content")
        if is_tool and isinstance(content, list):
            pictures = [p for p in content if isinstance(p, dict) and p.get("type") == "image_url"]
            if pictures:
                texts = [p for p in content if p not in pictures]
                m = {**m, "content": texts if not _blank(texts) else "(an image, below)"}
                images += pictures
        out.append(m)
    return out


def _blank(content: Any) -> bool:
    """No content, or only empty text."""
    if isinstance(content, list):
        return all(
            isinstance(p, dict) and p.get("type") == "text" and _blank(p.get("text"))
            for p in content
        )
    return not isinstance(content, str) or not content.strip()


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
                "input": json_object_text(c["arguments"]),
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
        d = StreamDelta.of(chunk)
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
    def fail_events(message: str, status: int = 502) -> list[dict]:
        """The error event that ends a stream cut by an upstream failure (HTTP `status`)."""
        kind = "timeout_error" if status == 504 else "api_error"
        return [{"type": "error", "error": {"type": kind, "message": message}}]
