"""litellm, loaded on first use, and what its errors mean for a fallback chain: which model
arguments to pass, which errors another model may cure, which count against a breaker."""

from __future__ import annotations

import functools
import os
from typing import Any

from router.core.config import ModelSpec
from router.core.decision import Decision
from router.core.request import OPENAI_FIELDS
from router.serving.local import LocalModels

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class UpstreamError(RuntimeError):
    """Every model in the fallback chain failed; `decision.attempts` says how."""

    def __init__(
        self,
        message: str,
        decision: Decision,
        status_code: int = 502,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        self.decision = decision
        self.status_code = status_code
        # OpenAI's error code and field, when they name the cause (context_length_exceeded)
        self.code, self.param = code, param
        # Seconds the last upstream asked to be left alone (its Retry-After), if it said.
        self.retry_after: float | None = None
        super().__init__(message)


def retry_after_of(e: BaseException | None) -> float | None:
    """The seconds an upstream's error asks to wait (its `Retry-After` in seconds; None when it
    sent none, or an HTTP date). litellm keeps the headers on `litellm_response_headers`; the
    direct httpx path on the response."""
    headers = getattr(e, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(e, "response", None), "headers", None) or {}
    after = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(after)) if after is not None else None
    except ValueError:
        return None


class ModelUnavailable(RuntimeError):
    """A model cannot be called at all (for example its API key is not set)."""


class UnsupportedParams(RuntimeError):
    """The request carries parameters its model does not take (litellm refused to send them):
    the caller's 400, named in the router's terms (`in_router_terms`)."""

    status_code = 400

    def __init__(self, message: str, names: list[str]) -> None:
        self.names = names
        super().__init__(message)


# How an attempt's error begins when its model could not be called (`Attempt.error`).
UNAVAILABLE = f"{ModelUnavailable.__name__}: "
# The error code of a request no model could be called for (a 503).
MODEL_UNAVAILABLE = "model_unavailable"


class EmptyStream(RuntimeError):
    """A stream ended without a single role, content or tool-call delta (not a real answer)."""

    status_code = 502


def is_timeout(exc: BaseException | None) -> bool:
    """A time-out, whichever client raised it (litellm's, httpx's, aiohttp's and asyncio's
    time-out exceptions all say so in their names)."""
    return exc is not None and "timeout" in type(exc).__name__.lower()


def failure_status(exc: BaseException | None) -> int:
    """The HTTP status that reports an upstream failure: 504 for a time-out, the caller's own
    400 or 429 as it came, else 502."""
    if is_timeout(exc):
        return 504
    status = getattr(exc, "status_code", None)
    return status if status in (400, 429) else 502


@functools.cache
def load_litellm():
    """litellm, imported on first use (it takes seconds) and made quiet: its logging and
    callback machinery cost about a quarter of each call's CPU (6.4 → 4.7 ms measured on a
    loopback upstream) and the router keeps its own receipts, costs and logs."""
    import litellm

    litellm.turn_off_message_logging = True  # prompts never reach litellm's loggers
    litellm.disable_streaming_logging = True
    litellm.suppress_debug_info = True
    litellm.telemetry = False
    litellm.callbacks = []
    litellm.success_callback = []
    litellm.failure_callback = []
    litellm._async_success_callback = []
    litellm._async_failure_callback = []
    return litellm


@functools.cache
def litellm_own_params() -> frozenset[str]:
    """litellm's own keyword arguments (mock answers, callbacks' endpoints and keys, prices,
    its own fallbacks and retries ...), read from the litellm in use so that new ones are known
    too; OpenAI's fields are not among them. What `router.core.request.call_settings` refuses
    beside its own lists."""
    load_litellm()
    from litellm.types.utils import all_litellm_params

    return frozenset(all_litellm_params) - OPENAI_FIELDS


# OpenAI's own error code for a parameter the model does not take.
UNSUPPORTED_PARAMETER = "unsupported_parameter"


@functools.cache
def _supported_params(litellm_model: str) -> frozenset[str] | None:
    """The OpenAI parameters litellm passes to this model's provider; None when litellm
    cannot tell the provider (then nothing is judged unsupported)."""
    litellm = load_litellm()
    try:
        model, provider, *_ = litellm.get_llm_provider(litellm_model)
        supported = litellm.get_supported_openai_params(model=model, custom_llm_provider=provider)
    except Exception:  # noqa: BLE001 - an unknown provider: let the call itself say
        return None
    return frozenset(supported or ())


def unsupported_params(spec: ModelSpec, params: dict[str, Any]) -> list[str]:
    """The request parameters litellm refuses to send to `spec`'s model (the OpenAI ones it
    checks, and this model's provider does not take). Any other field a client sends (a
    provider's own, say) is passed on, not judged here."""
    if not params:
        return []
    supported = _supported_params(spec.litellm_model)
    if supported is None:
        return []
    checked = _checked_params()
    return sorted(k for k in params if k in checked and k not in supported)


@functools.cache
def _checked_params() -> frozenset[str]:
    """The OpenAI parameters litellm checks against a provider's list before a call."""
    load_litellm()
    from litellm.constants import (
        DEFAULT_CHAT_COMPLETION_PARAM_VALUES,
        OPENAI_CHAT_COMPLETION_PARAMS,
    )

    return frozenset(DEFAULT_CHAT_COMPLETION_PARAM_VALUES) & frozenset(
        OPENAI_CHAT_COMPLETION_PARAMS
    )


def in_router_terms(exc: Exception, spec: ModelSpec, params: dict[str, Any]) -> Exception:
    """litellm's refusal of parameters the model does not take (whose message tells the
    reader to set litellm's own switch) as an `UnsupportedParams` naming them and the
    config's switch; any other error as it is."""
    if not isinstance(exc, load_litellm().UnsupportedParamsError):
        return exc
    names = unsupported_params(spec, params)
    if not names:
        return exc
    them = "them" if len(names) > 1 else "it"
    return UnsupportedParams(
        f"{spec.name} does not take the parameter{'s' if len(names) > 1 else ''} "
        f"{', '.join(repr(n) for n in names)}; leave {them} out, or set drop_params: true on "
        f"{spec.name} in the config to have the router drop {them}",
        names,
    )


def api_key_of(spec: ModelSpec) -> str | None:
    """The model's API key from its `api_key_env` (None: it names none); ModelUnavailable when
    that variable is not set."""
    if not spec.api_key_env:
        return None
    key = os.environ.get(spec.api_key_env)
    if not key:
        raise ModelUnavailable(f"API key env {spec.api_key_env} is not set")
    return key


def call_kwargs(
    spec: ModelSpec, local: LocalModels | None, params: dict[str, Any]
) -> dict[str, Any]:
    """litellm keyword arguments for one model; raises ModelUnavailable without its key.
    With `drop_params`, the parameters it does not take are left out."""
    if spec.drop_params and (dropped := unsupported_params(spec, params)):
        params = {k: v for k, v in params.items() if k not in dropped}
    kwargs: dict[str, Any] = {"model": spec.litellm_model, "timeout": spec.timeout, **params}
    if spec.is_local:
        base = local.api_base(spec.name) if local is not None else None
        if base is None:
            state = local.state(spec.name) if local is not None else "not started"
            raise ModelUnavailable(f"local server {state}")
        kwargs.update(api_base=base, api_key="not-needed")
    elif spec.api_base:
        kwargs["api_base"] = spec.api_base
    if spec.api_key_env:
        kwargs["api_key"] = api_key_of(spec)
    elif spec.api_base:
        # OpenAI-compatible local servers still expect some key.
        kwargs["api_key"] = "not-needed"
    if "user" in kwargs and spec.litellm_model.startswith("openai/"):
        # litellm sends `user` only to the models of OpenAI's own list and drops it, unsaid, for
        # any other OpenAI-compatible endpoint; the caller asked for it to be sent, so it is,
        # as litellm lets it be (`drop_params: true` on a model whose endpoint refuses it).
        kwargs["allowed_openai_params"] = ["user"]
    return kwargs


def falls_back(exc: Exception) -> bool:
    """A client error (bad parameters) is not cured by another model; anything else may be."""
    litellm = load_litellm()

    if isinstance(exc, ModelUnavailable | litellm.ContextWindowExceededError):
        return True
    bad_request = litellm.BadRequestError | litellm.UnsupportedParamsError | UnsupportedParams
    return not isinstance(exc, bad_request)


def is_context_overflow(exc: BaseException | None) -> bool:
    """The prompt (with the answer's room) is too long for the model's context window."""
    return exc is not None and isinstance(exc, load_litellm().ContextWindowExceededError)


def is_fault(exc: Exception) -> bool:
    """Does `exc` say the model is unhealthy (counts for its breaker)? Bad requests, a prompt
    too long for it and a missing key say nothing about its health."""
    litellm = load_litellm()

    if isinstance(exc, ModelUnavailable | litellm.ContextWindowExceededError):
        return False
    return falls_back(exc)
