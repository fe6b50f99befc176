"""A chat request → the text the router embeds and the facts its hard rules need.

Routing text, in this order, bounded by `RoutingTextSpec`:

1. the last user turn (its text parts, joined) — the request being answered;
2. earlier user and assistant turns, most recent first, up to `context_chars`;
3. the system prompt, up to `system_chars` (it often names the task: "You are a SQL expert").

Tool results (`role: tool` / `function`) are data the model reads, not the question, so they are
left out; tool calls in assistant turns are left out too. In content-part arrays only `text`
parts are read; `image_url` parts set `has_image`, `input_audio` parts set `has_audio`.
A request with no text at all is routed on hard rules and the policy's default.

The shape checks of what the hard rules read (`tools`, `tool_choice`, `response_format`) live
here too, so the SDK and the proxy refuse the same requests in the same words; so do the names
that litellm would take as a setting of the call itself (`base_url`, `api_key` ...), which only
the catalogue sets (`call_settings`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# Roles whose message is nothing without content (OpenAI refuses them): an assistant turn may
# carry tool calls instead.
CONTENT_REQUIRED = ("system", "developer", "user", "tool")
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOOL_CHOICES = ("none", "auto", "required")
FORMATS = ("text", "json_object", "json_schema")
# OpenAI's chat and legacy completion body fields. The proxy passes them on unjudged; a name
# close to one of them but not it is, in the SDK, a typo (`temprature`), not a provider's own.
OPENAI_FIELDS = frozenset(
    {
        "model", "messages", "prompt", "suffix", "echo", "best_of", "audio", "frequency_penalty",
        "function_call", "functions", "logit_bias", "logprobs", "max_completion_tokens",
        "max_tokens", "metadata", "modalities", "n", "parallel_tool_calls", "prediction",
        "presence_penalty", "prompt_cache_key", "prompt_cache_retention", "reasoning_effort",
        "response_format", "safety_identifier", "seed", "service_tier", "stop", "store",
        "stream", "stream_options", "temperature", "tool_choice", "tools", "top_logprobs",
        "top_p", "user", "verbosity", "web_search_options",
    }
)  # fmt: skip


# OpenAI's error code for a prompt too long for the model: clients (agent frameworks) shorten
# the conversation and ask again when they see it.
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"


def context_overflow(limit: int, tokens: int) -> str:
    """The opening of the router's own context-overflow messages, in OpenAI's words: clients
    that know an overflow by its message rather than its code (litellm's
    ContextWindowExceededError, on which its users trim and fall back) look for them. An
    upstream's own overflow is passed on in its words, which litellm recognised to call it one."""
    return (
        f"This model's maximum context length is {limit} tokens. However, your messages "
        f"resulted in {tokens} tokens. Please reduce the length of the messages."
    )


# OpenAI's error code for a model (here: a policy, which the body's `model` names) that does
# not exist.
MODEL_NOT_FOUND = "model_not_found"
# The HTTP status of a request error, by its code: naming what does not exist is a 404; any
# other bad request a 400.
STATUS_OF_CODE = {MODEL_NOT_FOUND: 404}


class RequestError(ValueError):
    """The request cannot be routed; `param` names the offending field, as OpenAI errors do;
    `code` is the error code an HTTP answer carries (default: invalid_request), and
    `status_code` its HTTP status, which follows from the code (`STATUS_OF_CODE`): 404 for an
    unknown policy, else 400. The proxy answers with that status, so an error re-made with the
    same code (named in another field) keeps it."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        self.param = param
        self.code = code
        super().__init__(message)

    @property
    def status_code(self) -> int:
        return STATUS_OF_CODE.get(self.code, 400)


@dataclass(frozen=True)
class RequestFacts:
    """What hard rules look at; computed from the request, never from scores."""

    prompt_tokens: int = 0
    output_tokens: int = 0
    needs_tools: bool = False
    needs_json: bool = False
    has_image: bool = False
    has_audio: bool = False
    stream: bool = False
    pinned_model: str | None = None
    # Kinds of private value the conversation carries (router/core/privacy.py), sorted.
    private: tuple[str, ...] = ()


def normalise_messages(messages: str | list[Message]) -> list[Message]:
    """Accept a plain string or OpenAI chat messages; check their shape."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if not isinstance(messages, list):
        raise RequestError("messages must be a string or a list of chat messages", "messages")
    if not messages:
        raise RequestError("messages must not be empty", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise RequestError(f"messages[{i}] must be an object", f"messages[{i}]")
        role = m.get("role")
        if role not in ROLES:
            raise RequestError(
                f"messages[{i}].role must be one of {list(ROLES)}, got {role!r}",
                f"messages[{i}].role",
            )
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise RequestError(
                f"messages[{i}].content must be a string or a list of content parts",
                f"messages[{i}].content",
            )
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise RequestError(
                        f"messages[{i}].content[{j}] must be an object with a 'type'",
                        f"messages[{i}].content[{j}]",
                    )
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise RequestError(
                        f"messages[{i}].content[{j}].text must be a string",
                        f"messages[{i}].content[{j}].text",
                    )
    return messages


def check_message_content(messages: list[Message]) -> None:
    """Each message of checked shape (`normalise_messages`) carries what its role needs: content
    for a system, developer, user or tool message, content or tool calls for an assistant's.
    A request without them is refused here rather than by the provider, after routing."""
    for i, m in enumerate(messages):
        at = f"messages[{i}]"
        role, content = m["role"], m.get("content")
        if role in CONTENT_REQUIRED and content is None:
            raise RequestError(f"{at}.content: required for role {role!r}", f"{at}.content")
        if (
            role == "assistant"
            and content is None
            and not (m.get("tool_calls") or m.get("function_call"))
        ):
            raise RequestError(
                f"{at}.content: an assistant message needs content or tool_calls", f"{at}.content"
            )


def message_text(message: Message) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if p.get("type") == "text" and p.get("text"))
    return ""


def _parts_of_type(messages: list[Message], kinds: tuple[str, ...]) -> bool:
    for m in messages:
        content = m.get("content")
        if isinstance(content, list) and any(p.get("type") in kinds for p in content):
            return True
    return False


def routing_text(
    messages: str | list[Message],
    max_chars: int = 2000,
    context_chars: int = 500,
    system_chars: int = 200,
) -> str:
    """The text the encoder sees for a conversation (see the module docstring)."""
    msgs = normalise_messages(messages)
    last_user = next((i for i in range(len(msgs) - 1, -1, -1) if msgs[i]["role"] == "user"), None)
    pieces: list[str] = []
    if last_user is not None:
        pieces.append(message_text(msgs[last_user])[:max_chars])
    budget = context_chars
    earlier = msgs[:last_user] if last_user is not None else msgs
    for m in reversed(earlier):
        if budget <= 0:
            break
        if m["role"] in ("user", "assistant"):
            t = message_text(m).strip()
            if t:
                pieces.append(t[:budget])
                budget -= len(t)
    system = " ".join(message_text(m) for m in msgs if m["role"] in ("system", "developer"))
    if system.strip() and system_chars:
        pieces.append(system.strip()[:system_chars])
    return "\n\n".join(p for p in pieces if p.strip())[: max_chars + context_chars + system_chars]


def estimate_tokens(messages: list[Message]) -> int:
    """A cheap estimate of prompt tokens: 4 characters a token, plus a few per message."""
    chars = sum(len(message_text(m)) for m in messages)
    return chars // 4 + 4 * len(messages)


def request_facts(
    messages: str | list[Message],
    params: dict[str, Any] | None = None,
    default_output_tokens: int = 300,
    pinned_model: str | None = None,
    private: tuple[str, ...] = (),
) -> RequestFacts:
    """The facts hard rules need, from messages and the OpenAI request parameters."""
    msgs = normalise_messages(messages)
    params = params or {}
    rf = params.get("response_format")
    needs_json = isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema")
    out = params.get("max_completion_tokens") or params.get("max_tokens") or default_output_tokens
    n = params.get("n") or 1
    return RequestFacts(
        prompt_tokens=estimate_tokens(msgs),
        output_tokens=int(out) * int(n),
        needs_tools=bool(params.get("tools") or params.get("functions")),
        needs_json=needs_json,
        has_image=_parts_of_type(msgs, ("image_url", "image")),
        has_audio=_parts_of_type(msgs, ("input_audio", "audio")),
        stream=bool(params.get("stream")),
        pinned_model=pinned_model,
        private=tuple(private),
    )


# ---- tools and response formats: one set of rules for the SDK and the proxy ------------------


def check_tools(tools: Any, tool_choice: Any) -> None:
    """`tools` is a list of tool objects; function tools have a valid name and an object schema;
    `tool_choice` is one of TOOL_CHOICES or an object naming one of the tools."""
    if tools is not None and not isinstance(tools, list | tuple):
        raise RequestError(
            f"tools: must be a list of tool objects, got {type(tools).__name__}", "tools"
        )
    names = []
    for i, t in enumerate(tools or []):
        at = f"tools[{i}]"
        if not isinstance(t, dict):
            raise RequestError(f"{at}: must be an object, got {type(t).__name__}", at)
        kind = t.get("type")
        if not isinstance(kind, str):
            raise RequestError(f"{at}.type: required, a string such as 'function'", f"{at}.type")
        if kind != "function":
            continue  # provider-specific tool types pass through
        fn = t.get("function")
        if not isinstance(fn, dict):
            raise RequestError(f"{at}.function: required, an object", f"{at}.function")
        name = fn.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise RequestError(
                f"{at}.function.name: required, 1-64 of a-z, A-Z, 0-9, _ and -",
                f"{at}.function.name",
            )
        names.append(name)
        if "description" in fn and not isinstance(fn["description"], str):
            raise RequestError(
                f"{at}.function.description: must be a string", f"{at}.function.description"
            )
        if "parameters" in fn:
            check_json_schema(fn["parameters"], f"{at}.function.parameters")
    if tool_choice is None:
        return
    if isinstance(tool_choice, str):
        if tool_choice not in TOOL_CHOICES:
            raise RequestError(
                f"tool_choice: must be one of {list(TOOL_CHOICES)} or an object", "tool_choice"
            )
        if tool_choice == "required" and not tools:
            raise RequestError("tool_choice: 'required' needs tools", "tool_choice")
        return
    if not isinstance(tool_choice, dict):
        raise RequestError(
            f"tool_choice: must be one of {list(TOOL_CHOICES)} or an object, "
            f"got {type(tool_choice).__name__}",
            "tool_choice",
        )
    fn = tool_choice.get("function")
    if isinstance(fn, dict) and fn.get("name") not in names:
        raise RequestError(
            f"tool_choice.function.name: {fn.get('name')!r} is not one of the tools",
            "tool_choice.function.name",
        )


def check_json_schema(schema: Any, at: str) -> None:
    """The structural minimum of a JSON schema for tool parameters (no full meta-validation)."""
    if not isinstance(schema, dict):
        raise RequestError(f"{at}: must be a JSON schema object", at)
    kind = schema.get("type")
    if kind is not None and not (
        isinstance(kind, str) or (isinstance(kind, list) and all(isinstance(k, str) for k in kind))
    ):
        raise RequestError(f"{at}.type: must be a string or a list of strings", f"{at}.type")
    props = schema.get("properties")
    if props is not None:
        if not isinstance(props, dict):
            raise RequestError(f"{at}.properties: must be an object", f"{at}.properties")
        for k, v in props.items():
            check_json_schema(v, f"{at}.properties.{k}")
    req = schema.get("required")
    if req is not None and not (isinstance(req, list) and all(isinstance(r, str) for r in req)):
        raise RequestError(f"{at}.required: must be a list of strings", f"{at}.required")


def check_response_format(rf: dict | None) -> None:
    """A JSON body's `response_format`: one of FORMATS, a json_schema with a name."""
    if rf is None:
        return
    if rf.get("type") not in FORMATS:
        raise RequestError(
            f"response_format.type: must be one of {list(FORMATS)}", "response_format.type"
        )
    if rf["type"] == "json_schema":
        js = rf.get("json_schema")
        if not isinstance(js, dict) or not isinstance(js.get("name"), str):
            raise RequestError(
                "response_format.json_schema: must be an object with a 'name'",
                "response_format.json_schema",
            )
        if "schema" in js:
            check_json_schema(js["schema"], "response_format.json_schema.schema")


# ---- settings of a call: the catalogue's, never a request's ------------------------------------

# litellm takes these as keyword arguments that set up the call itself (where it goes, with
# which key, how long it may take, a canned answer): the catalogue's business, not a caller's.
CALL_SETTINGS = frozenset(
    {
        "api_base", "api_key", "api_version", "base_url", "custom_llm_provider",
        "default_headers", "deployment_id", "extra_body", "extra_headers", "extra_query",
        "headers", "max_retries", "model_list", "organization", "request_timeout",
        "shared_session", "timeout", "drop_params", "additional_drop_params",
        "allowed_openai_params", "enable_json_schema_validation", "callbacks",
        "success_callback", "failure_callback", "azure_ad_token", "engine", "config",
        "mock_delay", "mock_tool_calls",
    }
)  # fmt: skip
# A provider's own settings of the call, which litellm reads from the same keyword arguments
# as a provider's own body fields (`top_k`): where the call goes and with which credentials
# (`aws_bedrock_runtime_endpoint` sends the signed AWS request, session token and all, to any
# host; `vertex_credentials`, `oci_key_file`, `sagemaker_base_url`, `model_id` ...), and which
# models answer (OpenRouter's `models`: any model it sells, whatever the key may use). Not
# listed in litellm's own parameters, so known by their names' shape.
PROVIDER_PREFIXES = (
    "aws_", "azure_", "bedrock_", "databricks_", "gcs_", "gemini_", "gigachat_", "litellm_",
    "oci_", "s3_", "sagemaker_", "vertex_", "watsonx_",
)  # fmt: skip
SETTING_SUFFIXES = (
    "_base", "_url", "_endpoint", "_key", "_key_file", "_token", "_secret", "_credentials",
    "_client", "_signer", "_region", "_region_name", "_location", "_project", "_project_id",
    "_connection_string", "_headers", "_params", "_tenant_id",
)  # fmt: skip
SETTING_NAMES = frozenset(
    {
        "account_id", "apikey", "client", "credentials", "deployment", "endpoint", "fake_stream",
        "host", "http_client", "is_vertex_request", "location", "model_id",
        "model_resource_id_mapping", "models", "nvcf_function_id", "passthrough", "project",
        "project_id", "region", "space_id", "tenant_id", "token", "url",
        "use_psc_endpoint_format", "use_server_proxy", "use_ssl", "user_agent", "workspace_id",
    }
)  # fmt: skip


def is_provider_setting(name: str) -> bool:
    """Whether a field names how or where a provider is called, or with what credentials."""
    key = name.lower()
    return (
        key in SETTING_NAMES or key.startswith(PROVIDER_PREFIXES) or key.endswith(SETTING_SUFFIXES)
    )


def call_settings(names: Iterable[str], litellm_own: Collection[str] = ()) -> list[str]:
    """The names among `names` that litellm would take as a setting of the call rather than
    send on, sorted: `CALL_SETTINGS`, a provider's own (`is_provider_setting`), litellm's
    internal flags (a leading underscore) and test doubles (`mock_`), and `litellm_own`, the
    keyword arguments of the litellm in use (`router.serving.providers.litellm_own_params`).
    OpenAI's fields never are. One rule for the proxy's body and the SDK's arguments: through
    either, a caller could send a provider's key elsewhere (`base_url`,
    `aws_bedrock_runtime_endpoint`), fake an answer (`mock_response`) or trip circuit breakers
    (`timeout`)."""
    unknown = set(names) - OPENAI_FIELDS
    private = {k for k in unknown if k.startswith(("_", "mock_")) or is_provider_setting(k)}
    return sorted(private | (unknown & (CALL_SETTINGS | frozenset(litellm_own))))
