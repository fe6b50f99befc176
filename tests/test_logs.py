"""The proxy's JSON log lines: one object a line, `extra` fields kept, no foreign bookkeeping."""

from __future__ import annotations

import json
import logging

from router.server.logs import JsonFormatter


def _line(**extra) -> dict:
    record = logging.LogRecord("router.server", logging.INFO, __file__, 1, "started", None, None)
    for k, v in extra.items():
        setattr(record, k, v)
    return json.loads(JsonFormatter().format(record))


def test_extra_fields_are_logged():
    line = _line(port=8000, policies=["balanced"])
    assert line["msg"] == "started" and line["port"] == 8000 and line["policies"] == ["balanced"]


def test_sentinel_stamps_of_other_libraries_are_left_out():
    # litellm's logging filter stamps records with `litellm_redacted = object()`.
    line = _line(litellm_redacted=object(), port=1)
    assert "litellm_redacted" not in line
    assert "object object at" not in json.dumps(line)


def test_a_real_litellm_stamped_record_is_clean():
    from router.serving.providers import load_litellm

    load_litellm()
    from litellm import _logging

    record = logging.LogRecord("router.server", logging.INFO, __file__, 1, "hello", None, None)
    setattr(record, _logging._REDACTED_RECORD_ATTR, _logging._REDACTED_STAMP)
    assert "object object at" not in JsonFormatter().format(record)
