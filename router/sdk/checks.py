"""The SDK's checks of a call's own arguments, before anything is routed or called: each bad
one is a `RequestError` naming the parameter the caller passed, in the words the proxy uses.

The request's shape (messages, tools, tool_choice) is checked by `router.core.request`, the
same rules the proxy applies; this adds what only the Python face takes: `policy=`, `session=`
and `session_scope=`, counts given as Python values, values a JSON body cannot hold (a set, an
object; a pydantic model, as an earlier answer's message is, is taken as its dict), the
`metadata` litellm reads, keyword arguments whose name is a typo of an OpenAI parameter's, and
settings of the call itself (`base_url`, `api_key`, `timeout` ...), which only the catalogue sets.
`Router(...)`'s own arguments are checked here too (`check_parts`).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from router.core.config import RouterConfig, did_you_mean
from router.core.request import (
    CALL_SETTINGS,
    MODEL_NOT_FOUND,
    OPENAI_FIELDS,
    SETTING_NAMES,
    Message,
    RequestError,
    call_settings,
    check_message_content,
    check_response_format,
    check_tools,
    normalise_messages,
)
from router.serving import upstream
from router.serving.providers import litellm_own_params

# The SDK's own keyword arguments, beside OpenAI's: a near miss of one is a typo too.
SDK_ARGUMENTS = frozenset({"session", "session_scope"})
# How alike (difflib's ratio) an unknown name must be to a known one to be taken for a typo of
# it: `temprature` (0.95), `max_token` (0.95) and `tool_choise` (0.91) are; a provider's own
# `top_k` (0.8 from `top_p`), `max_new_tokens` (0.83) and `reasoning_format` (0.88 from
# `reasoning_effort`) are not.
TYPO_RATIO = 0.9
# Beside OpenAI's fields, the one `call_settings` name the SDK takes: the openai client's way to
# add fields to the JSON body, which go there as given (a provider's own parameter), never a
# setting of the call: where it goes and with which key stay the catalogue's.
BODY_EXTRAS = frozenset({"extra_body"})
# The field of a model's entry in the config that sets what a per-call setting would.
CATALOGUE_FIELD = {
    "api_base": "api_base", "base_url": "api_base", "api_key": "api_key_env",
    "timeout": "timeout", "request_timeout": "timeout", "max_retries": "retries",
    "num_retries": "retries", "drop_params": "drop_params",
}  # fmt: skip


def check_parts(config: Any, policies: Any, scorer: Any, encoder: Any) -> None:
    """`Router(config, policies, scorer, encoder)` takes the parts that `Router.from_config(path)`
    loads from a config file; else a TypeError that says so (`Router()`, `Router("config.yaml")`),
    not one about missing positional arguments or an AttributeError deep in the constructor."""
    load = "Router.from_config('config.yaml') loads them all from a config file"
    if isinstance(config, str | os.PathLike):
        raise TypeError(
            f"Router() takes a loaded config, not a path: Router.from_config({str(config)!r}) "
            "loads the config with its policies, scorer and encoder"
        )
    parts = {"config": config, "policies": policies, "scorer": scorer, "encoder": encoder}
    missing = [name for name, part in parts.items() if part is None]
    if missing:
        raise TypeError(
            "Router() takes a loaded config, its policies, a scorer and an encoder (missing: "
            f"{', '.join(missing)}); {load}"
        )
    wrong = {
        "config": ("a RouterConfig", isinstance(config, RouterConfig)),
        "policies": ("a dict of policies by name", isinstance(policies, Mapping)),
        "scorer": ("a Scorer", callable(getattr(scorer, "predict", None))),
        "encoder": (
            "an encoder",
            callable(getattr(encoder, "encode", None)) and not isinstance(encoder, str | bytes),
        ),
    }
    for name, (what, ok) in wrong.items():
        if not ok:
            got = type(parts[name]).__name__
            raise TypeError(f"Router(): {name} must be {what}, got {got}; {load}")


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
    name when there is one. Its code is `model_not_found`, so its `status_code` is 404, as the
    proxy answers it."""
    known = sorted(known)
    hint = did_you_mean(str(name), known)
    return RequestError(
        f"unknown policy {name!r}{hint}; configured: {known}", "policy", MODEL_NOT_FOUND
    )


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
    circuit breakers: the caller's mistake became an outage. A setting of the call itself is
    refused too (`check_call_settings`), after the typos: `max_token` is one, though its name
    has the shape of a provider's setting (`*_token`)."""
    for name in params:
        if name not in CALL_SETTINGS | SETTING_NAMES:  # OpenRouter's `models` is no typo
            check_param_name(name)
    check_call_settings(params)
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


def check_call_settings(params: dict[str, Any], litellm_own: Iterable[str] = ()) -> None:
    """No keyword argument sets up the call itself (`call_settings`, the rule the proxy applies
    to a body's fields): where a model is called and with which key is the catalogue's to say.
    A per-call `base_url` sent the call elsewhere, with the catalogue's key for the model (which
    overrode a per-call `api_key`): the provider's key went to another host. `extra_body` (the
    openai client's extra body fields) is sent as given."""
    refused = [n for n in call_settings(params, frozenset(litellm_own)) if n not in BODY_EXTRAS]
    if refused:
        name = refused[0]
        field = CATALOGUE_FIELD.get(name)
        why = "where each model is called, with which key and how"
        fix = (
            f"set {field} on the model in the config instead: the config's catalogue alone "
            f"says {why}"
            if field
            else f"{why} is set on the model in the config, never per call"
        )
        raise RequestError(f"{name}: not a per-call parameter; {fix}", name)


async def check_litellm_settings(params: dict[str, Any]) -> None:
    """`check_call_settings` with litellm's own keyword arguments too (`fallbacks`,
    `num_retries`, `ssl_verify` ...), read from the litellm in use: for a call whose arguments go
    to litellm (`achat`) and name one that is neither OpenAI's nor the SDK's. Such a call imports
    litellm anyway; here that import runs in a worker thread, never on the caller's loop."""
    if params.keys() - OPENAI_FIELDS - SDK_ARGUMENTS - BODY_EXTRAS:
        await upstream.litellm_ready()
        check_call_settings(params, litellm_own_params())


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
