"""Structured JSON logs, one object a line; prompt text never goes here."""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import sys
import time

QUIET = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx", "httpcore")

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A LogRecord → one JSON object with its `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(
            {k: v for k, v in record.__dict__.items() if k not in _STANDARD and _is_field(v)}
        )
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def _is_field(value: object) -> bool:
    """Skip other libraries' bookkeeping on records: litellm's redaction filter stamps every
    record with a bare `object()` sentinel, which would print as "<object object at 0x...>"."""
    return type(value) is not object


def configure(level: int = logging.INFO) -> logging.handlers.QueueListener:
    """Send the router's logs to stderr as JSON lines (used by `router serve`).

    Records go through a queue to a listener thread, so a slow terminal or disk never stalls
    the event loop. Stop the returned listener on shutdown to flush.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    q: queue.SimpleQueue = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(q, handler)
    listener.start()
    for name in ("router", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [_FormattingQueueHandler(q)]
        lg.setLevel(level)
        lg.propagate = False
    # These log whole request bodies (prompts) at DEBUG; keep them quiet whatever root says.
    for name in QUIET:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    return listener


class _FormattingQueueHandler(logging.handlers.QueueHandler):
    """Keeps `extra` fields: the stock QueueHandler.prepare() would flatten the record."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def now_ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)
