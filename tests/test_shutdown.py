"""Graceful shutdown of `router serve`: SIGTERM lets in-flight requests, streams included,
finish within `server.shutdown_grace_s`; past it they are cut, and either way the decision log
keeps a row for every request.

The server is a real subprocess on a free loopback port. In-flight work is held open by the
test upstream's gated models (they wait until the test opens the gate), so nothing here
depends on how fast the machine is: only generous upper bounds catch a hang.
"""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import pytest
import yaml

from router.core.scorer import default_scorer_path
from tests.conftest import decision_rows
from tests.proxy import ServeProcess as Server
from tests.proxy import write_fault_config

BOUND_S = 60


@pytest.fixture
def serve(test_config, tmp_path, upstream):
    """Start a server for a grace period; the gate is closed until the test opens it."""
    servers: list[Server] = []

    def start(grace_s: float) -> Server:
        cfg = write_fault_config(test_config, tmp_path / "cfg", upstream.base_url)
        data = yaml.safe_load(cfg.read_text())
        # The scorer the test process uses (a path), so the subprocess loads the same one.
        data["scorer"] = str(default_scorer_path())
        data["server"] = {
            "decision_log": "decisions.db",
            "keys_env": None,
            "shutdown_grace_s": grace_s,
        }
        cfg.write_text(yaml.safe_dump(data))
        s = Server(cfg, tmp_path / "server.log")
        servers.append(s)
        s.db = cfg.parent / "decisions.db"
        s.wait_ready()
        return s

    upstream.gate.clear()
    yield start
    upstream.gate.set()  # release anything still waiting
    for s in servers:
        s.kill()


def _in_thread(fn) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        try:
            out["result"] = fn()
        except Exception as e:  # noqa: BLE001 - reported by the test
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def _stream(url: str, first_chunk: threading.Event) -> tuple[str, list[str]]:
    body = {"model": "router/only-gatedstream", "stream": True}
    body["messages"] = [{"role": "user", "content": "one two three four"}]
    lines = []
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=BOUND_S) as r:
        for line in r.iter_lines():
            if line:
                lines.append(line)
                first_chunk.set()
        return r.headers["x-request-id"], lines


def _plain(url: str) -> tuple[int, str, str]:
    body = {"model": "router/only-gated", "messages": [{"role": "user", "content": "wait for it"}]}
    r = httpx.post(url + "/v1/chat/completions", json=body, timeout=BOUND_S)
    return r.status_code, r.headers["x-request-id"], r.text


def _wait(cond, what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigterm_lets_in_flight_requests_and_streams_finish(serve, upstream):
    s = serve(grace_s=30)
    gated_before = upstream.calls["gated"]
    first = threading.Event()
    t1, streamed = _in_thread(lambda: _stream(s.url, first))
    t2, plain = _in_thread(lambda: _plain(s.url))
    _wait(first.is_set, "the first streamed chunk")
    _wait(lambda: upstream.calls["gated"] > gated_before, "the plain request upstream")
    s.proc.send_signal(signal.SIGTERM)
    # Shutdown has begun (no new connections) while both requests are still open.
    _wait(s.refuses_connections, "the listener to close")
    assert s.proc.poll() is None and t1.is_alive() and t2.is_alive()
    upstream.gate.set()
    t1.join(BOUND_S)
    t2.join(BOUND_S)
    assert "error" not in streamed and "error" not in plain, (streamed, plain)
    rid_stream, lines = streamed["result"]
    assert lines[-1] == "data: [DONE]"
    text = "".join(
        json.loads(ln.removeprefix("data: "))["choices"][0]["delta"].get("content") or ""
        for ln in lines[:-1]
        if json.loads(ln.removeprefix("data: "))["choices"]
    )
    assert text == "echo: one two three four"
    status, rid_plain, body = plain["result"]
    assert (
        status == 200
        and json.loads(body)["choices"][0]["message"]["content"] == "echo: wait for it"
    )
    assert s.proc.wait(BOUND_S) == 0  # a clean exit, after the graceful shutdown
    rows = decision_rows(s.db)  # written at shutdown: every row is there once the process is gone
    assert rows[rid_stream]["status"] == 200 and rows[rid_stream]["stream"] == 1
    assert rows[rid_plain]["status"] == 200


def test_past_the_grace_period_streams_are_cut_and_still_logged(serve, upstream):
    s = serve(grace_s=2)
    first = threading.Event()
    t1, streamed = _in_thread(lambda: _stream(s.url, first))
    _wait(first.is_set, "the first streamed chunk")
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)  # the gate stays closed: the stream cannot finish
    assert s.proc.wait(BOUND_S) == 0  # a clean exit, after the graceful shutdown
    assert time.monotonic() - t0 >= 1.5  # it did wait for the grace period
    t1.join(BOUND_S)
    assert not t1.is_alive()
    rows = decision_rows(s.db)
    assert len(rows) == 1
    (row,) = rows.values()
    assert row["status"] == 499 and row["stream"] == 1 and row["error"]
    if "result" in streamed:  # the client saw a cut stream, never a false [DONE]
        assert streamed["result"][1][-1] != "data: [DONE]"
