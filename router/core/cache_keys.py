"""What a cached answer is filed under, and which requests the cache must not answer. Pure.

- The **exact key** hashes the normalised conversation (roles, texts, content parts, tool
  calls), the model that would answer (`model_identity`: its catalogue name and what it
  calls, so a catalogue entry pointed at another model after a reload or a restart never
  serves the old model's answers), the parameters that change an answer, and the scope (the
  API key's name, unless the cache is shared across keys).
- The **context key** hashes the same without the last user turn: a semantic hit needs the
  same model, parameters, system prompt and earlier turns; only the last user turn may differ.
- **Bypass**: a sampled answer (temperature > 0), tool definitions, n > 1 (unless the policy
  allows them), and a prompt carrying private data are never served from, nor put in, the cache.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from router.core.request import Message, message_text

# Parameters that do not change what the model answers: left out of the key.
NOT_IN_KEY = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "timeout",
        "extra_headers",
        "store",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
        "session",
        "session_scope",
    }
)


@dataclass(frozen=True)
class CacheKey:
    """Where an answer is filed: `exact` always; `context` and `question` when the last
    message is a user turn with text (a semantic lookup is possible)."""

    exact: str
    context: str | None
    question: str | None


def model_identity(spec: Any) -> str:
    """What a catalogue model answers with: its name, and the model and endpoint it calls (a
    `ModelSpec`). Prices, time-outs and retries change no answer and are left out."""
    fields = ("name", "litellm_model", "api_base", "gguf", "gguf_package")
    return json.dumps([getattr(spec, f, None) for f in fields], separators=(",", ":"))


def _text(content: Any) -> str:
    """A content's text, NFC-normalised, line ends unified, outer whitespace dropped (inner
    whitespace is kept: it matters in code)."""
    text = unicodedata.normalize("NFC", content).replace("\r\n", "\n")
    return "\n".join(line.rstrip() for line in text.strip().split("\n"))


def _canonical(m: Message) -> list:
    content = m.get("content")
    if isinstance(content, str):
        body: Any = _text(content)
    elif isinstance(content, list):
        body = [
            _text(p.get("text", "")) if p.get("type") == "text" else json.dumps(p, sort_keys=True)
            for p in content
            if isinstance(p, Mapping)
        ]
    else:
        body = None
    extra = {k: m[k] for k in ("name", "tool_calls", "function_call", "tool_call_id") if m.get(k)}
    return [m.get("role"), body, json.dumps(extra, sort_keys=True, default=str) if extra else ""]


def _digest(*parts: Any) -> str:
    raw = json.dumps(parts, ensure_ascii=False, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def answer_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The request parameters that change an answer (everything but `NOT_IN_KEY`)."""
    return {k: v for k, v in params.items() if k not in NOT_IN_KEY and v is not None}


def cache_key(
    messages: list[Message], model: str, params: Mapping[str, Any], scope: str | None
) -> CacheKey:
    """The keys of a request answered by `model` (see the module docstring)."""
    conv = [_canonical(m) for m in messages]
    kept = answer_params(params)
    exact = _digest("exact", scope, model, kept, conv)
    last = messages[-1] if messages else None
    if last is None or last.get("role") != "user" or not message_text(last).strip():
        return CacheKey(exact, None, None)
    if isinstance(last.get("content"), list) and any(
        isinstance(p, Mapping) and p.get("type") != "text" for p in last["content"]
    ):
        return CacheKey(exact, None, None)  # an image or audio part: exact hits only
    context = _digest("context", scope, model, kept, conv[:-1])
    return CacheKey(exact, context, message_text(last))


def bypass_reason(
    params: Mapping[str, Any], allow: Iterable[str] = (), private: Iterable[str] = ()
) -> str | None:
    """Why this request must not be served from (or stored in) the cache; None: it may be.

    `allow` are what a policy lets the cache keep anyway ("temperature", "tools", "n").
    A request that leaves temperature unset asked for no variety and is cached."""
    allow = set(allow)
    private = tuple(private)
    if private:
        return f"private data ({', '.join(private)})"
    temperature = params.get("temperature")
    if "temperature" not in allow and isinstance(temperature, int | float) and temperature > 0:
        return f"temperature {temperature:g} > 0"
    if "tools" not in allow and (params.get("tools") or params.get("functions")):
        return "tools"
    n = params.get("n")
    if "n" not in allow and isinstance(n, int) and n > 1:
        return f"n {n} > 1"
    return None
