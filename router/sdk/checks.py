"""The SDK's checks of a call's own arguments, before anything is routed or called: each bad
one is a `RequestError` naming the parameter the caller passed, in the words the proxy uses.

The request's shape (messages, tools, tool_choice) is checked by `router.core.request`, the
same rules the proxy applies; this adds what only the Python face takes: `policy=`, `session=`
and `session_scope=`, and counts given as Python values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from router.core.config import did_you_mean
from router.core.request import RequestError, check_tools


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
