"""Chat calls to models: a direct path for OpenAI-compatible endpoints, litellm otherwise.

litellm's `completion` spends several milliseconds of CPU per call on work the router does not
need (parameter mapping for a hundred providers, logging objects, cost tracking), and more per
chunk of a stream. For the calls that need none of it, a chat completion (streamed or not) to
an OpenAI-compatible server named by `api_base` with an `openai/` model and standard OpenAI
parameters, this module posts the request itself and hands the answer, each chunk and any
error to litellm's own converters and exception mapping, so callers get the same
`ModelResponse` / `ModelResponseStream` objects and the same exception classes, status codes,
headers and messages (tests/test_upstream.py compares both paths on every fault of the test
upstream). Everything else (other providers, odd parameters) goes through litellm unchanged.

Transport: one pooled aiohttp session per event loop (the synchronous SDK's calls run on its
background loop, router/serving/background.py). Not httpx's AsyncClient: its pool polls every idle connection on each
request, which cost 2.4 ms of CPU per request at 32 concurrent requests against 0.17 ms for
aiohttp (measured on a loopback upstream, uvloop or not): more than routing itself.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import httpx

from router.serving.sse import DONE, ChunkDecoder, StreamError

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
STREAM_ONLY = frozenset({"stream", "stream_options"})
# Keyword arguments that configure the call rather than go into the body.
CALL_SETTINGS = frozenset({"model", "timeout", "api_base", "api_key", "max_retries"})
MAX_CONNECTIONS = 256
KEEPALIVE = 64


def direct(kwargs: dict[str, Any]) -> bool:
    """Does this call take the direct path (else litellm)?"""
    model = kwargs.get("model")
    return (
        isinstance(model, str)
        and model.startswith("openai/")
        and bool(kwargs.get("api_base"))
        and all(k in CALL_SETTINGS or k in PASSED_THROUGH or k in STREAM_ONLY for k in kwargs)
        and (kwargs.get("stream") or kwargs.get("stream_options") is None)
    )


async def acompletion(messages: list, **kwargs: Any):
    """`litellm.acompletion`, direct for an OpenAI-compatible endpoint (see `direct`). With
    `stream=True`: an async iterator of chunks (errors before the first byte raised here)."""
    if not direct(kwargs):
        from router.serving.media_urls import at_the_call
        from router.serving.providers import load_litellm

        litellm = load_litellm()
        # Where litellm's fetch of a media URL is not its checked one, fetched through it here.
        messages = await at_the_call(litellm, messages, kwargs)
        return await litellm.acompletion(messages=messages, **kwargs)
    url, headers, body, timeout = _request(messages, kwargs)
    await litellm_ready()
    t0 = time.time()
    session = await _session()
    resp = None
    try:
        resp = await _post(session, url, headers, body, timeout)
        if kwargs.get("stream") and resp.status < 400:
            return AsyncChunks(resp, messages, kwargs)
        content = await resp.read()
        return _answer(resp.status, resp.headers, content, url, kwargs)
    except Exception as e:  # noqa: BLE001 - mapped as litellm maps it
        if resp is not None:
            resp.release()
        raise _mapped(e, messages, kwargs, t0, url) from None


# A pooled connection the server closed while it sat idle (its keep-alive timer ran out, most
# often 5 s) fails the next request sent on it before any answer. Nothing was answered (most
# often the server shut the connection as the request went out), so the request goes again,
# each time on another connection (the dead one is dropped).
STALE_RETRIES = 2


async def _post(session: Any, url: str, headers: dict, body: bytes, timeout: float):
    import aiohttp

    for retry in range(STALE_RETRIES + 1):
        try:
            return await session.post(
                url, headers=headers, data=body, timeout=_aio_timeout(timeout)
            )
        except aiohttp.ServerDisconnectedError:
            if retry == STALE_RETRIES:
                raise


_litellm_loaded = False


async def litellm_ready() -> None:
    """Import litellm (its converters and exception mapping turn every answer and error into
    litellm's objects) in a worker thread the first time: the import takes seconds, and on the
    event loop it would stall every other request, long enough for pooled connections to expire
    under it. The first upstream error is mapped there too (`_load`). On each event loop that
    calls, litellm's logging is also set to be done before the loop ends (`_logged_with_loop`)."""
    global _litellm_loaded
    if not _litellm_loaded:
        await asyncio.to_thread(_load)
        _litellm_loaded = True
    loop = asyncio.get_running_loop()
    if loop not in _loggers:
        drain = _logged_with_loop()
        await drain.__anext__()
        _loggers[loop] = drain


# Each loop's `_logged_with_loop` generator, kept until the loop goes.
_loggers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
LOG_DRAIN_S = 5.0  # the longest a loop's end waits for litellm's logging of its calls


async def _logged_with_loop():
    """litellm queues the logging of each call it makes (its success handler, a no-op here:
    the router keeps its own records) on one worker bound to one event loop. A loop that ends
    with some still queued (`asyncio.run(router.achat(...))`: the call returns, the loop ends)
    left them to the next loop, which said so each time ("LoggingWorker: event loop changed;
    carried 1 pending ..."). At this loop's end (asyncio.run and uvicorn close its async
    generators) the queue is run and the worker stopped, as litellm's own proxy flushes it at
    shutdown: the next loop finds nothing to carry over."""
    try:
        yield
    finally:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER as worker

        # Bound to another loop that is still running (the SDK's background loop): its own.
        if getattr(worker, "_bound_loop", None) is asyncio.get_running_loop():
            try:
                await asyncio.wait_for(worker.flush(), LOG_DRAIN_S)
            except TimeoutError:
                pass  # a handler that hangs is not waited for: the loop ends anyway
            await worker.stop()


def _load() -> None:
    """litellm, and what the first upstream error needs: the openai client that builds the
    error of an error status (it imports the openai SDK's transports), and whatever litellm's
    exception mapping imports on first use (its guardrail check imports fastapi): a third of a
    second that an upstream's first 500 spent on the event loop. A made-up 500 is mapped here,
    so the mapping's own lazy imports, whichever they are in the litellm in use, are done."""
    from router.serving.providers import load_litellm

    load_litellm()
    url = "http://127.0.0.1/v1/chat/completions"
    kw = {"model": "openai/warm-up", "api_base": "http://127.0.0.1/v1"}
    try:  # litellm's mapping raises the mapped error (returns it only in theory)
        _mapped(_status_error(500, {}, b"{}", url), [], kw, time.time(), url)
    except Exception:  # noqa: BLE001 - its imports were the point, not the error
        pass


async def aclose() -> None:
    """Close this event loop's pooled session (the proxy does at shutdown; a loop that ends
    without it closes it anyway, see `_session`)."""
    entry = _sessions.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        await entry[0].close()


# ---- the request and the answer -----------------------------------------------------------


def _request(messages: list, kw: dict[str, Any]):
    params = {k: v for k, v in kw.items() if k in PASSED_THROUGH and v is not None}
    body = {"model": kw["model"].removeprefix("openai/"), "messages": messages, **params}
    if kw.get("stream"):
        body["stream"] = True
        if kw.get("stream_options") is not None:
            body["stream_options"] = kw["stream_options"]
    headers = {"content-type": "application/json", "accept": "application/json"}
    if kw.get("api_key"):
        headers["authorization"] = f"Bearer {kw['api_key']}"
    url = kw["api_base"].rstrip("/") + "/chat/completions"
    timeout = kw.get("timeout")
    return url, headers, json.dumps(body).encode(), float(timeout) if timeout else 600.0


def _answer(status: int, headers: Any, content: bytes, url: str, kw: dict[str, Any]):
    if status >= 400:
        raise _status_error(status, headers, content, url)
    from litellm import ModelResponse
    from litellm.litellm_core_utils.llm_response_utils.convert_dict_to_response import (
        convert_to_model_response_object,
    )

    data = json.loads(content)  # a body that is not JSON: mapped like litellm's failure to parse
    hdrs = {k.lower(): v for k, v in headers.items()}
    resp = convert_to_model_response_object(
        response_object=data,
        model_response_object=ModelResponse(),
        hidden_params={"headers": hdrs},
        _response_headers=hdrs,
    )
    resp._hidden_params.update(custom_llm_provider="openai", api_base=kw["api_base"])
    return resp


# ---- streams --------------------------------------------------------------------------------


class AsyncChunks:
    """The chunks of a streamed answer read from an aiohttp response (an async iterator)."""

    def __init__(self, resp: Any, messages: list, kw: dict[str, Any]) -> None:
        self._resp, self._messages, self._kw = resp, messages, kw
        self._decoder = ChunkDecoder(kw["model"].removeprefix("openai/"))
        self._done = False
        self._t0 = time.time()

    def __aiter__(self) -> AsyncIterator:
        return self

    async def __anext__(self):
        if self._done:
            raise StopAsyncIteration
        try:
            while True:
                raw = await self._resp.content.readline()
                out = self._decoder.line(raw) if raw else self._decoder.end()
                if out is DONE or (not raw and out is None):
                    last = self._decoder.closing() if out is DONE else None
                    await self.aclose()
                    if last is None:
                        raise StopAsyncIteration
                    return last
                if not raw:  # the body ended: `out` is its last chunk
                    await self.aclose()
                    return out
                if out is not None:
                    return out
        except StopAsyncIteration:
            raise
        except Exception as e:  # noqa: BLE001 - mapped as litellm's stream wrapper maps it
            await self.aclose()
            raise _mid_stream(e, self._decoder, self._messages, self._kw, self._t0) from None
        except BaseException:  # cancelled (the client left): the upstream must see it go
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop reading: the connection goes back to the pool only when the body was read."""
        if not self._done:
            self._done = True
            self._resp.release() if self._resp.content.at_eof() else self._resp.close()


# ---- errors: the exceptions litellm would raise ---------------------------------------------


def _status_error(status: int, headers: Any, content: bytes, url: str) -> Exception:
    """The openai SDK's exception for an error response (what litellm wraps)."""
    response = httpx.Response(
        status,
        headers=list(headers.items()),
        content=content,
        request=httpx.Request("POST", url),
    )
    return _openai_client()._make_status_error_from_response(response)


def _transport_error(e: Exception, kw: dict[str, Any], t0: float, url: str) -> Exception:
    """A transport failure (aiohttp's) as the openai SDK raises it."""
    import openai

    if _is_timeout(e):
        request = getattr(e, "_request", None) or httpx.Request("POST", url)
        e = openai.APITimeoutError(request=request)
        # As litellm's OpenAI handler words it.
        e.message += (
            f" - timeout value={kw.get('timeout')}, time taken={round(time.time() - t0, 2)} seconds"
        )
    elif _is_aiohttp_error(e):
        request = getattr(e, "_request", None) or httpx.Request("POST", kw["api_base"])
        e = openai.APIConnectionError(request=request)
    return e


def _is_timeout(e: Exception) -> bool:
    return isinstance(e, asyncio.TimeoutError)


def _stream_timeout(kw: dict[str, Any]) -> Exception:
    """A stream's time-out, before or after its first chunk, worded as litellm words it."""
    from litellm.exceptions import Timeout

    return Timeout(
        message="APITimeoutError - Request timed out. Error_str: Request timed out.",
        model=kw["model"].removeprefix("openai/"),
        llm_provider="openai",
    )


def _is_aiohttp_error(e: Exception) -> bool:
    import aiohttp

    return isinstance(e, aiohttp.ClientError)


def _openai_error(e: Exception):
    from litellm.llms.openai.common_utils import OpenAIError, upstream_error_response

    response = getattr(e, "response", None)
    headers = getattr(e, "headers", None)
    if headers is None and response is not None:
        headers = getattr(response, "headers", None)
    return OpenAIError(
        status_code=getattr(e, "status_code", 500),
        message=getattr(e, "message", str(e)),
        response=upstream_error_response(e),
        headers=headers,
        body=getattr(e, "body", None),
    )


def _mapped(e: Exception, messages: list, kw: dict[str, Any], t0: float, url: str) -> Exception:
    """litellm's exception for `e`, built by litellm's own mapping from the OpenAIError its
    OpenAI handler raises (openai SDK exceptions for transport failures). litellm's mapping
    raises it: callers `raise _mapped(...)` either way."""
    from litellm.litellm_core_utils.exception_mapping_utils import exception_type

    if kw.get("stream") and _is_timeout(e):
        return _stream_timeout(kw)
    return exception_type(
        model=kw["model"].removeprefix("openai/"),
        custom_llm_provider="openai",
        original_exception=_openai_error(_transport_error(e, kw, t0, url)),
        completion_kwargs={"model": kw["model"], "messages": messages},
        extra_kwargs={},
    )


def _mid_stream(e: Exception, dec: ChunkDecoder, messages: list, kw: dict, t0: float):
    """A failure after the headers, as litellm's stream wrapper raises it: a read time-out as
    `Timeout`, anything else wrapped in `MidStreamFallbackError` (status 500)."""
    import openai
    from litellm.exceptions import MidStreamFallbackError

    url = kw["api_base"].rstrip("/") + "/chat/completions"
    if _is_timeout(e):
        return _stream_timeout(kw)
    from litellm.litellm_core_utils.exception_mapping_utils import exception_type

    if isinstance(e, StreamError):
        e = openai.APIError(
            e.body.get("message") or str(e), httpx.Request("POST", url), body=e.body
        )
    # The wrapper maps the raw failure (the openai SDK's, or the parser's), not an OpenAIError.
    try:
        mapped = exception_type(  # raises the mapped exception (returns it only in theory)
            model=kw["model"].removeprefix("openai/"),
            custom_llm_provider="openai",
            original_exception=_transport_error(e, kw, t0, url),
            extra_kwargs={},
        )
    except Exception as m:  # noqa: BLE001
        mapped = m
    return MidStreamFallbackError(
        message=str(mapped),
        model=kw["model"].removeprefix("openai/"),
        llm_provider="openai",
        original_exception=mapped,
        generated_content=dec.text,
        is_pre_first_chunk=dec.chunks == 0,
        emitted_disqualifying_content=dec.tool_calls,
    )


# ---- clients: pooled; an aiohttp session belongs to the event loop it was made on ----------

_sessions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_openai: Any = None


def _aio_timeout(seconds: float):
    import aiohttp

    # Per phase, like httpx's Timeout(seconds) that litellm and the openai SDK use: a stalled
    # body or stream fails `seconds` after its last byte, however long the whole answer takes.
    return aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)


async def _session():
    loop = asyncio.get_running_loop()
    entry = _sessions.get(loop)
    if entry is None or entry[0].closed:
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=0),
            skip_auto_headers=("User-Agent",),
            auto_decompress=True,
        )
        # Closed when the loop shuts down: asyncio.run (and uvicorn) close every open async
        # generator of the loop before closing it, so the session never outlives its loop.
        closer = _close_with_loop(session)
        await closer.__anext__()
        entry = (session, closer)
        _sessions[loop] = entry
    return entry[0]


async def _close_with_loop(session: Any):
    try:
        yield
    finally:
        if not session.closed:
            await session.close()


def _openai_client():
    global _openai
    if _openai is None:
        import openai

        _openai = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1/", max_retries=0)
    return _openai
