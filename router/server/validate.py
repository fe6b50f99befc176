"""Strict checks of a chat body beyond its field types, so bad input is a 400 naming the field.

What the SDK accepts is checked in `router.core.request` (`normalise_messages`, the content
each message's role needs, and the shape of `tools`, `tool_choice` and `response_format`, which
the proxy calls from `schema.py` too); this adds what only a public HTTP face needs: every
string must be valid Unicode without NUL (SQLite, logs and upstreams choke on them), nesting is
bounded (a deep body costs recursion), user turns are not blank, content parts have their
OpenAI shape, a body names no setting of the call (`base_url`). Each check
raises `RequestError(message, param)`; the message starts with the field it names.
"""

from __future__ import annotations

from typing import Any

from router.core.request import (
    RequestError,
    call_settings,
    check_message_content,
    normalise_messages,
)
from router.serving.providers import litellm_own_params

MAX_DEPTH = 64  # a tool's JSON schema nests a few levels; nothing honest needs 64
PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal")
# Blank content is refused for these; a blank tool result is still a result (a command that
# printed nothing), which every face sends on as EMPTY_TOOL_RESULT: chat upstreams refuse
# empty tool content.
BLANK_REFUSED = ("system", "developer", "user")
EMPTY_TOOL_RESULT = "(empty)"
# `Router.achat`'s own keyword arguments, which the chat endpoint passes next to the body's
# fields (router/server/chat.py, `call_router`): a body field by one of these names would clash
# with them (a TypeError, a 500). Each says where a client sets what it names.
ROUTER_ARGUMENTS = {
    "policy": 'a policy is chosen by the model field, "router/<policy>"',
    "session": "a session is named by the x-session-id header or metadata.session_id",
    "session_scope": "sessions are kept apart by API key, by the router",
    "routed": "a name the router keeps for its own use",
    "body_checked": "a name the router keeps for its own use",
}


def check_router_arguments(data: dict[str, Any]) -> None:
    """A chat body field must not take the name of one of the router's own arguments."""
    clashing = sorted(data.keys() & ROUTER_ARGUMENTS.keys())
    if clashing:
        name = clashing[0]
        raise RequestError(f"{name}: not a request parameter; {ROUTER_ARGUMENTS[name]}", name)


def _path(parts: list[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def check_values(data: Any) -> None:
    """Every string (keys too) is valid Unicode without NUL; nesting is at most MAX_DEPTH.

    Iterative, so a hostile body cannot exhaust the stack here.
    """
    stack: list[tuple[Any, list[str | int]]] = [(data, [])]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise RequestError(
                f"{_path(path[:MAX_DEPTH])}: nested deeper than {MAX_DEPTH} levels",
                _path(path[:MAX_DEPTH]),
            )
        if isinstance(value, str):
            _check_string(value, path)
        elif isinstance(value, dict):
            for k, v in value.items():
                _check_string(k, path, "a key ")
                stack.append((v, [*path, k]))
        elif isinstance(value, list):
            stack.extend((v, [*path, i]) for i, v in enumerate(value))


def _check_string(s: str, path: list[str | int], what: str = "") -> None:
    if "\x00" in s:
        raise RequestError(f"{_path(path)}: {what}contains a NUL character", _path(path))
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        # json.loads lets "\ud800" through; it cannot be encoded for the upstream or the log.
        raise RequestError(
            f"{_path(path)}: {what}contains an unpaired surrogate (invalid Unicode)", _path(path)
        ) from None


def check_passed_fields(data: dict[str, Any]) -> None:
    """A field the proxy does not know is passed on to the provider, unless litellm would take
    it as a setting of the call: then a client could send the provider's key elsewhere
    (`base_url`, `aws_bedrock_runtime_endpoint`), fake an answer (`mock_response`) or trip
    circuit breakers (`timeout`)."""
    refused = call_settings(data.keys(), litellm_own_params())
    if refused:
        raise RequestError(
            f"{refused[0]}: not a request parameter; how each model is called is set by the "
            "router's catalogue",
            refused[0],
        )


def check_messages(messages: list[Any], audio_ok: bool = False) -> None:
    """The SDK's checks (shape, the content each role needs), then what an HTTP body adds."""
    check_message_content(normalise_messages(messages))
    for i, m in enumerate(messages):
        at = f"messages[{i}]"
        role, content = m["role"], m.get("content")
        if "name" in m and not isinstance(m["name"], str):
            raise RequestError(f"{at}.name: must be a string", f"{at}.name")
        if isinstance(content, str) and role in BLANK_REFUSED and not content.strip():
            raise RequestError(f"{at}.content: must not be empty", f"{at}.content")
        if isinstance(content, list):
            if not content:
                raise RequestError(f"{at}.content: must not be an empty list", f"{at}.content")
            for j, part in enumerate(content):
                _check_part(part, f"{at}.content[{j}]", audio_ok)
        if role == "tool" and not isinstance(m.get("tool_call_id"), str):
            raise RequestError(
                f"{at}.tool_call_id: a tool message needs the id of the call it answers",
                f"{at}.tool_call_id",
            )
        if "tool_calls" in m:
            _check_tool_calls(m["tool_calls"], f"{at}.tool_calls")


def _check_part(part: dict, at: str, audio_ok: bool) -> None:
    kind = part["type"]
    if kind not in PART_TYPES:
        raise RequestError(
            f"{at}.type: unsupported content part {kind!r}; expected one of {list(PART_TYPES)}",
            f"{at}.type",
        )
    if kind == "image_url":
        img = part.get("image_url")
        if not isinstance(img, dict) or not isinstance(img.get("url"), str) or not img["url"]:
            raise RequestError(
                f"{at}.image_url: must be an object with a non-empty 'url'", f"{at}.image_url"
            )
    elif kind == "input_audio":
        audio = part.get("input_audio")
        if not isinstance(audio, dict) or not all(
            isinstance(audio.get(k), str) and audio[k] for k in ("data", "format")
        ):
            raise RequestError(
                f"{at}.input_audio: must be an object with 'data' and 'format' strings",
                f"{at}.input_audio",
            )
        if not audio_ok:
            # No catalogue model declares "audio": no upstream here could take it.
            raise RequestError(
                f"{at}: audio input is not supported by any configured model", f"{at}"
            )


def _check_tool_calls(calls: Any, at: str) -> None:
    if not isinstance(calls, list):
        raise RequestError(f"{at}: must be a list", at)
    for k, c in enumerate(calls):
        here = f"{at}[{k}]"
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not isinstance(fn, dict):
            raise RequestError(f"{here}: must be an object with 'id' and 'function'", here)
        if not isinstance(fn.get("name"), str) or not isinstance(fn.get("arguments"), str):
            raise RequestError(
                f"{here}.function: needs 'name' and 'arguments' strings", f"{here}.function"
            )
