"""The SDK's checks of a call's own arguments, before anything is routed or called: each bad
one is a `RequestError` naming the parameter the caller passed, in the words the proxy uses.

The request's shape (messages, tools, tool_choice) is checked by `router.core.request`, the
same rules the proxy applies; this adds what only the Python face takes: `policy=`, `session=`
and `session_scope=`, counts given as Python values, values a JSON body cannot hold (a set, an
object; a pydantic model, as an earlier answer's message is, is taken as its dict), the
`metadata` litellm reads, and keyword arguments whose name is a typo of an OpenAI parameter's.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from router.core.config import did_you_mean
from router.core.request import (
    OPENAI_FIELDS,
    Message,
    RequestError,
    check_message_content,
    check_response_format,
    check_tools,
    normalise_messages,
)

# The SDK's own keyword arguments, beside OpenAI's: a near miss of one is a typo too.
SDK_ARGUMENTS = frozenset({"session", "session_scope"})
# How alike (difflib's ratio) an unknown name must be to a known one to be taken for a typo of
# it: `temprature` (0.95), `max_token` (0.95) and `tool_choise` (0.91) are; a provider's own
# `top_k` (0.8 from `top_p`), `max_new_tokens` (0.83) and `reasoning_format` (0.88 from
# `reasoning_effort`) are not.
TYPO_RATIO = 0.9


def check_params(params: dict[str, Any]) -> None:
    """The request parameters the hard rules read: the counts must be positive integers, as the
    proxy's schema has them (not a ValueError from int()), and `tools` / `tool_choice` have
    their OpenAI shape (a string is not a list of tools: it would count as needing tools)."""
    for name in ("max_tokens", "max_completion_tokens", "n"):
        v = params.get(name)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise RequestError(f"{name} must be a positive integer, got {v!r}", name)
    check_tools(params.get("tools"), params.get("tool_choice"))


def check_session(session: Any, scope: Any) -> None:
    """`session=` and `session_scope=` are strings (else a TypeError deep in hashing)."""
    for name, v in (("session", session), ("session_scope", scope)):
        if v is not None and not isinstance(v, str):
            raise RequestError(f"{name} must be a string, got {type(v).__name__}", name)


def unknown_policy(name: str, known: Iterable[str]) -> RequestError:
    """The error for a `policy=` no policy file defines: the configured ones, and the nearest
    name when there is one. Its message starts "unknown policy" (the proxy answers it 404)."""
    known = sorted(known)
    hint = did_you_mean(str(name), known)
    return RequestError(f"unknown policy {name!r}{hint}; configured: {known}", "policy")


def checked_messages(messages: Any) -> list[Message]:
    """A call's messages, checked and in the plain JSON they are sent as: a message (or a tool
    call in one) taken from an earlier answer, a pydantic model, becomes its dict, as the openai
    client takes it (`messages.append(resp.choices[0].message)`); a tuple is a list. Their shape
    and the content each role needs are checked (`router.core.request`)."""
    if isinstance(messages, tuple):
        messages = list(messages)
    if isinstance(messages, list):
        messages = plain_json(messages, "messages")
    msgs = normalise_messages(messages)
    check_message_content(msgs)
    return msgs


def checked_conversation(i: int, conversation: Any) -> list[Message]:
    """`checked_messages` of `route_many`'s conversation `i`; its errors say which one it is."""
    try:
        return checked_messages(conversation)
    except RequestError as e:
        at = f"conversations[{i}]"
        param = at + (e.param or "messages").removeprefix("messages")
        raise RequestError(f"{at}: {e}", param, e.code) from None


def check_call_params(params: dict[str, Any]) -> None:
    """A call's keyword arguments, in place: each a JSON value (`plain_json`), none a near miss
    of an OpenAI parameter's name; `metadata` an object of string keys, copied (litellm writes
    its own entries into the `metadata` it is handed: the caller's dict is left alone);
    `response_format` and `stream_options` objects of their OpenAI shape, as the proxy's schema
    has them.

    Else a value JSON cannot carry (a set, an object), like a `metadata` or `response_format`
    litellm cannot read, failed every model of the chain as its "error" and opened their
    circuit breakers: the caller's mistake became an outage."""
    for name in params:
        check_param_name(name)
    for name, value in params.items():
        params[name] = plain_json(value, name)
    meta = params.get("metadata")
    if meta is not None:
        if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
            raise RequestError("metadata: must be an object with string keys", "metadata")
        params["metadata"] = dict(meta)
    for name in ("response_format", "stream_options"):
        value = params.get(name)
        if value is not None and not isinstance(value, dict):
            example = (
                "{'type': 'json_object'}"
                if name == "response_format"
                else "{'include_usage': True}"
            )
            raise RequestError(
                f"{name}: must be an object such as {example}, got {type(value).__name__}", name
            )
    check_response_format(params.get("response_format"))


def check_param_name(name: str) -> None:
    """A name that is not an OpenAI parameter but nearly is one (`temprature`) is a typo: else it
    went to the provider, which refuses it (OpenAI) or ignores it (a local server), and the
    answer came at the default temperature. A provider's own parameter of such a name still
    goes through `extra_body`."""
    if name in OPENAI_FIELDS or name in SDK_ARGUMENTS:
        return
    near = difflib.get_close_matches(name, sorted(OPENAI_FIELDS | SDK_ARGUMENTS), 1, TYPO_RATIO)
    if near:
        raise RequestError(
            f"{name}: not a chat parameter (did you mean {near[0]!r}?); a provider's own "
            f"parameter of this name goes in extra_body={{{name!r}: ...}}",
            name,
        )


JSON_SCALARS = (str, int, float, bool, type(None))


def plain_json(value: Any, at: str) -> Any:
    """`value` as the JSON a request is sent as, `value` itself when it is JSON already: a
    pydantic model becomes its dict (without its None fields and litellm's own
    `provider_specific_fields`, which litellm leaves out of a request too); anything else JSON
    cannot carry (a set, an object, a class, a key that is neither a string nor an integer) is
    a `RequestError` naming where it is (`tools[0].function.parameters`)."""
    if isinstance(value, JSON_SCALARS):
        return value
    if isinstance(value, dict):
        out: dict | None = None
        for k, v in value.items():
            if not isinstance(k, str | int) or isinstance(k, bool):
                raise RequestError(
                    f"{at}: the key {k!r} is a {type(k).__name__}; JSON keys are strings", at
                )
            p = plain_json(v, f"{at}.{k}")
            if p is not v:
                out = dict(value) if out is None else out
                out[k] = p
        return value if out is None else out
    if isinstance(value, list | tuple):
        items = [plain_json(v, f"{at}[{i}]") for i, v in enumerate(value)]
        same = all(p is v for p, v in zip(items, value, strict=True))
        return value if same else items
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        fields = dump(exclude_none=True)
        fields.pop("provider_specific_fields", None)
        return plain_json(fields, at)
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        # openai's create() refuses a pydantic class as response_format too (parse() takes it).
        raise RequestError(
            f"{at}: the pydantic model {value.__name__} is a class, not JSON; pass its schema: "
            f"{{'type': 'json_schema', 'json_schema': {{'name': {value.__name__!r}, "
            f"'schema': {value.__name__}.model_json_schema()}}}}",
            at,
        )
    raise RequestError(
        f"{at}: a value of type {type(value).__name__!r} is not JSON (a request is sent as "
        "JSON: objects, lists, strings, numbers, booleans and None)",
        at,
    )
