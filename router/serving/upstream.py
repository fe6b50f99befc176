"""Chat calls to models: a direct httpx path for OpenAI-compatible endpoints, litellm otherwise.

litellm's `completion` spends several milliseconds of CPU per call on work the router does not
need (parameter mapping for a hundred providers, logging objects, cost tracking). For the
calls that need none of it, a non-streamed chat completion to an OpenAI-compatible server
named by `api_base` with an `openai/` model and standard OpenAI parameters, this module posts
the request itself over one pooled httpx client per event loop, and hands the answer and any
error to litellm's own converters, so callers get the same `ModelResponse` and the same
exception classes, status codes, headers and messages (tests/test_upstream.py compares both
paths on every fault of the test upstream). Everything else (streams, other providers, odd
parameters) goes through litellm unchanged.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from typing import Any

import httpx

# OpenAI chat parameters that litellm passes through unchanged to an `openai/` model.
PASSED_THROUGH = frozenset(
    {
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "n",
        "parallel_tool_calls",
        "presence_penalty",
        "response_format",
        "seed",
        "stop",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
    }
)
# Keyword arguments that configure the call rather than go into the body.
CALL_SETTINGS = frozenset({"model", "timeout", "api_base", "api_key", "max_retries"})
LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64)


def direct(kwargs: dict[str, Any]) -> bool:
    """Does this call take the direct path (else litellm)?"""
    model = kwargs.get("model")
    return (
        isinstance(model, str)
        and model.startswith("openai/")
        and bool(kwargs.get("api_base"))
        and not kwargs.get("stream")
        and all(k in CALL_SETTINGS or k in PASSED_THROUGH for k in kwargs)
    )


def completion(messages: list, **kwargs: Any):
    """`litellm.completion`, direct for an OpenAI-compatible endpoint (see `direct`)."""
    if not direct(kwargs):
        from router.serving.providers import load_litellm

        return load_litellm().completion(messages=messages, **kwargs)
    url, headers, body, timeout = _request(messages, kwargs)
    t0 = time.time()
    try:
        r = _sync_client().post(url, headers=headers, content=body, timeout=timeout)
        return _answer(r, kwargs)
    except Exception as e:  # noqa: BLE001 - mapped as litellm maps it
        raise _mapped(e, messages, kwargs, t0) from None


async def acompletion(messages: list, **kwargs: Any):
    """`litellm.acompletion`, direct for an OpenAI-compatible endpoint (see `direct`)."""
    if not direct(kwargs):
        from router.serving.providers import load_litellm

        return await load_litellm().acompletion(messages=messages, **kwargs)
    url, headers, body, timeout = _request(messages, kwargs)
    t0 = time.time()
    try:
        r = await _async_client().post(url, headers=headers, content=body, timeout=timeout)
        return _answer(r, kwargs)
    except Exception as e:  # noqa: BLE001 - mapped as litellm maps it
        raise _mapped(e, messages, kwargs, t0) from None


# ---- the request and the answer -----------------------------------------------------------


def _request(messages: list, kw: dict[str, Any]):
    params = {k: v for k, v in kw.items() if k in PASSED_THROUGH and v is not None}
    body = {"model": kw["model"].removeprefix("openai/"), "messages": messages, **params}
    headers = {"content-type": "application/json", "accept": "application/json"}
    if kw.get("api_key"):
        headers["authorization"] = f"Bearer {kw['api_key']}"
    url = kw["api_base"].rstrip("/") + "/chat/completions"
    timeout = kw.get("timeout")
    return url, headers, json.dumps(body).encode(), float(timeout) if timeout else 600.0


def _answer(r: httpx.Response, kw: dict[str, Any]):
    if r.status_code >= 400:
        raise _status_error(r)
    from litellm import ModelResponse
    from litellm.litellm_core_utils.llm_response_utils.convert_dict_to_response import (
        convert_to_model_response_object,
    )

    data = r.json()  # a body that is not JSON: mapped like litellm's own failure to parse it
    headers = dict(r.headers)
    resp = convert_to_model_response_object(
        response_object=data,
        model_response_object=ModelResponse(),
        hidden_params={"headers": headers},
        _response_headers=headers,
    )
    resp._hidden_params.update(custom_llm_provider="openai", api_base=kw["api_base"])
    return resp


# ---- errors: the exceptions litellm would raise ---------------------------------------------


def _status_error(r: httpx.Response) -> Exception:
    """The openai SDK's exception for an error response (what litellm wraps)."""
    return _openai_client()._make_status_error_from_response(r)


def _mapped(e: Exception, messages: list, kw: dict[str, Any], t0: float) -> Exception:
    """litellm's exception for `e`, built by litellm's own mapping from the OpenAIError its
    OpenAI handler raises (openai SDK exceptions for transport failures)."""
    import openai
    from litellm.litellm_core_utils.exception_mapping_utils import exception_type
    from litellm.llms.openai.common_utils import OpenAIError, upstream_error_response

    if isinstance(e, httpx.TimeoutException):
        e = openai.APITimeoutError(request=e.request)
        # As litellm's OpenAI handler words it.
        e.message += (
            f" - timeout value={kw.get('timeout')}, time taken={round(time.time() - t0, 2)} seconds"
        )
    elif isinstance(e, httpx.HTTPError):
        request = getattr(e, "_request", None) or httpx.Request("POST", kw["api_base"])
        e = openai.APIConnectionError(request=request)
    response = getattr(e, "response", None)
    headers = getattr(e, "headers", None)
    if headers is None and response is not None:
        headers = getattr(response, "headers", None)
    err = OpenAIError(
        status_code=getattr(e, "status_code", 500),
        message=getattr(e, "message", str(e)),
        response=upstream_error_response(e),
        headers=headers,
        body=getattr(e, "body", None),
    )
    model = kw["model"].removeprefix("openai/")
    return exception_type(
        model=model,
        custom_llm_provider="openai",
        original_exception=err,
        completion_kwargs={"model": kw["model"], "messages": messages},
        extra_kwargs={},
    )


# ---- clients: pooled, one per event loop (an AsyncClient belongs to the loop it runs on) ----

_lock = threading.Lock()
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_sync: httpx.Client | None = None
_openai: Any = None


def _async_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = httpx.AsyncClient(limits=LIMITS)
        _async_clients[loop] = client
    return client


def _sync_client() -> httpx.Client:
    global _sync
    with _lock:
        if _sync is None:
            _sync = httpx.Client(limits=LIMITS)
        return _sync


def _openai_client():
    global _openai
    if _openai is None:
        import openai

        _openai = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1/", max_retries=0)
    return _openai
