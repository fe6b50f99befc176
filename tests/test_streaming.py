"""The streamed answer's end: a failure after the first chunk, for chat and the typed APIs, and
the error line an upstream failure shows (also the pass-through endpoints')."""

from __future__ import annotations

import asyncio
import json

import pytest

from router.server.errors import upstream_error_line
from router.server.streaming import sse, stream_failure, typed_sse
from router.server.translate.messages import MessagesStream

SECRET = "sk-live-0123456789abcdefghijklmnopqrstuvwxyz"


def redact(text: str) -> str:
    return text.replace(SECRET, "***")


def cut_at_300(secret: str = SECRET) -> ConnectionError:
    """An upstream error whose message has `secret` across character 300 of the line."""
    prefix = "ConnectionError: "
    return ConnectionError("x" * (290 - len(prefix)) + secret + " while reading the body")


def test_a_secret_across_the_cut_is_hidden_whole():
    status, error = stream_failure(cut_at_300(), redact)
    assert status == 502 and len(error) <= 300
    assert "***" in error and SECRET[:10] not in error


def test_an_error_line_is_its_type_and_first_line_or_its_type_alone():
    assert upstream_error_line(ValueError("bad\nmore"), redact) == "ValueError: bad"
    assert upstream_error_line(ValueError(), redact) == "ValueError"
    assert upstream_error_line(cut_at_300(), redact, limit=50) == "ConnectionError: " + "x" * 33


def test_a_timeout_is_504_and_only_the_first_line_is_kept():
    class ReadTimeout(Exception):
        pass

    status, error = stream_failure(ReadTimeout("took too long\nstack details"), redact)
    assert (status, error) == (504, "ReadTimeout: took too long")


async def _failing(error: Exception):
    yield {"unused": True}
    raise error


async def _collect(body) -> list[bytes]:
    return [frame async for frame in body]


class Chunk:
    """The one field of a chat chunk that `sse` reads before it fails."""

    model = ""

    def model_dump_json(self, exclude_none: bool = True) -> str:
        return "{}"


async def _chunk_then(error: Exception):
    yield Chunk()
    raise error


def test_chat_stream_cut_mid_way_hides_the_secret_and_records_once():
    ends = []
    frames = asyncio.run(
        _collect(sse(_chunk_then(cut_at_300()), "m", lambda *a: ends.append(a), redact))
    )
    last = json.loads(frames[-1].removeprefix(b"data: "))
    assert last["error"]["code"] == "stream_error"
    assert SECRET[:10] not in last["error"]["message"]
    assert len(ends) == 1 and ends[0][0] == 502  # recorded once, not again by the finally
    assert SECRET[:10] not in ends[0][2]


class FeedNothing(MessagesStream):
    def feed(self, chunk):
        return []


@pytest.mark.parametrize(
    ("error", "kind"), [(cut_at_300(), "api_error"), (TimeoutError("slow"), "timeout_error")]
)
def test_messages_stream_cut_mid_way_ends_with_an_error_event(error, kind):
    ends = []
    writer = FeedNothing("msg_1", "m")
    body = typed_sse(_failing(error), writer, lambda *a: ends.append(a), redact)
    frames = asyncio.run(_collect(body))
    assert frames[0].startswith(b"event: message_start")
    assert frames[-1].startswith(b"event: error")
    err = json.loads(frames[-1].split(b"data: ", 1)[1])["error"]
    assert err["type"] == kind and err["message"].startswith("upstream stream failed: ")
    assert SECRET[:10] not in err["message"]
    assert len(ends) == 1 and ends[0][0] == (504 if kind == "timeout_error" else 502)


def test_a_whole_typed_stream_runs_before_end_then_records_200():
    order = []

    async def chunks():
        return
        yield

    async def before_end():
        order.append("saved")

    writer = MessagesStream("msg_1", "m")
    body = typed_sse(chunks(), writer, lambda *a: order.append(a[0]), redact, before_end)
    frames = asyncio.run(_collect(body))
    assert frames[-1].startswith(b"event: message_stop")
    assert order == ["saved", 200]
