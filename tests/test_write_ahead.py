"""Write-ahead decision rows through the real proxy: `router serve` killed with SIGKILL while
its database is down, one stream still half-way, loses no row of a request whose answer had
begun. The next start replays its spool: the answered requests' rows are whole, the cut
stream's is marked interrupted, and nothing is there twice. On SQLite and PostgreSQL.

The database is taken away first (an exclusive lock held on the SQLite file; PostgreSQL
stopped), so no row can reach it before the kill: only the spool can keep them.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time

import httpx
import pytest
import sqlalchemy as sa
import yaml

from router.core.scorer import default_scorer_path
from router.serving.decision_log import database_url, decisions
from tests.conftest import decision_rows
from tests.proxy import ServeProcess, write_fault_config

BOUND_S = 120


@pytest.fixture(params=["sqlite", "postgresql"])
def setup(request, test_config, tmp_path, upstream):
    """(config path, decision-log URL, take the database away, bring it back)."""
    cfg = write_fault_config(test_config, tmp_path / "cfg", upstream.base_url)
    data = yaml.safe_load(cfg.read_text())
    data["scorer"] = str(default_scorer_path())  # the one this process uses: same routes
    if request.param == "sqlite":
        url = str(cfg.parent / "decisions.db")
        lock: list = []

        def down() -> None:
            lock.append(sqlite3.connect(url, timeout=60, isolation_level=None))
            lock[-1].execute("BEGIN EXCLUSIVE")  # every write of the proxy's log waits

        def up() -> None:
            while lock:
                lock.pop().close()

    else:
        server = request.getfixturevalue("postgres_server")
        url = request.getfixturevalue("postgres_url")

        def down() -> None:
            server.query("CHECKPOINT", url.rsplit("/", 1)[1])  # the schema survives the crash
            server.kill()

        up = server.start
    data["decision_log"] = url
    data["server"] = {"keys_env": None, "shutdown_grace_s": 5}
    cfg.write_text(yaml.safe_dump(data))
    upstream.gate.clear()
    yield cfg, url, down, up
    upstream.gate.set()
    up()


def _rows(url: str) -> list[dict]:
    engine = sa.create_engine(database_url(url))
    try:
        with engine.connect() as con:
            return [dict(r) for r in con.execute(sa.select(decisions)).mappings()]
    finally:
        engine.dispose()


def _first_chunk_then_hold(url: str, got: dict, first: threading.Event) -> None:
    body = {"model": "router/only-gatedstream", "stream": True}
    body["messages"] = [{"role": "user", "content": "one two three four"}]
    try:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=BOUND_S) as r:
            got["id"] = r.headers["x-request-id"]
            for line in r.iter_lines():
                if line:
                    got.setdefault("lines", []).append(line)
                    first.set()
    except httpx.HTTPError as e:  # the server is killed under it
        got["cut"] = type(e).__name__
    first.set()


def test_kill_9_mid_stream_during_a_database_outage_loses_no_row(setup, tmp_path):
    cfg, url, down, up = setup
    log = tmp_path / "serve.log"
    first_server = ServeProcess(cfg, log)
    try:
        first_server.wait_ready()
        down()
        ask = {"model": "router", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}
        with httpx.Client(base_url=first_server.url, timeout=BOUND_S) as c:
            plain = c.post("/v1/chat/completions", json=ask)
            assert plain.status_code == 200, plain.text
            with c.stream("POST", "/v1/chat/completions", json={**ask, "stream": True}) as r:
                lines = [ln for ln in r.iter_lines() if ln]
                streamed_id = r.headers["x-request-id"]
            assert lines[-1] == "data: [DONE]"
            refused = c.post("/v1/chat/completions", json={**ask, "model": "router/only-f500"})
            assert refused.status_code == 502  # an error answer is an answer: it has a row too
        held: dict = {}
        first = threading.Event()
        t = threading.Thread(target=_first_chunk_then_hold, args=(first_server.url, held, first))
        t.start()
        assert first.wait(BOUND_S) and "lines" in held, held  # its answer has begun
        first_server.kill()  # SIGKILL: no shutdown, no flush
        t.join(BOUND_S)
        assert first_server.proc.returncode == -signal.SIGKILL
    finally:
        first_server.kill()
        up()
    assert _rows(url) == []  # nothing reached the database before the kill
    answered = {plain.headers["x-request-id"], streamed_id, refused.headers["x-request-id"]}

    second = ServeProcess(cfg, log)  # restarted on the same config: replays the spool
    try:
        second.wait_ready()
        deadline = time.monotonic() + BOUND_S
        while len(rows := {r["request_id"]: r for r in _rows(url)}) < 4:
            assert time.monotonic() < deadline, f"rows never came: {sorted(rows)}"
            time.sleep(0.2)
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(BOUND_S) == 0
    finally:
        second.kill()
    all_rows = _rows(url)
    assert len(all_rows) == 4  # one each, none twice
    rows = {r["request_id"]: r for r in all_rows}
    assert set(rows) == answered | {held["id"]}
    for rid in answered:
        r = rows[rid]
        assert r["phase"] == "ended" and r["status"] in (200, 502), r
        assert r["embedding"] is not None and r["model"]  # the decision and its embedding
    assert rows[streamed_id]["stream"] == 1 and rows[streamed_id]["status"] == 200
    cut = rows[held["id"]]
    assert cut["phase"] == "interrupted" and cut["status"] is None and cut["stream"] == 1
    assert cut["model"] == "gatedstream" and cut["decision"]
    # The second server drained and closed cleanly: no spool file is left behind.
    assert [p for p in cfg.parent.glob("*.spool/*")] == []
    assert "replayed" in log.read_text()


# ---- the SDK: the same log, the same write-ahead rows ----------------------------------------


def test_sdk_streams_have_a_write_ahead_row_completed_at_their_end(router, tmp_path):
    import asyncio
    import gc

    log = router.open_decision_log(tmp_path / "sdk.db")
    try:
        stream = router.chat("Tell me a story about a fox", stream=True)
        rid = stream.decision.request_id
        assert log.flush(BOUND_S)
        row = decision_rows(tmp_path / "sdk.db")[rid]  # before a chunk is read: begun, not ended
        assert row["phase"] == "started" and row["status"] is None and row["stream"] == 1
        assert row["embedding"] is not None and row["kind"] == "sdk.chat"
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text.startswith("echo: ")
        left = router.chat("hello there", stream=True)  # never read
        left_id = left.decision.request_id
        del left
        gc.collect()
        plain = asyncio.run(router.achat("What is 2 + 2?"))
        assert log.flush(BOUND_S)
        rows = decision_rows(tmp_path / "sdk.db")
        assert rows[rid]["phase"] == "ended" and rows[rid]["status"] == 200
        assert rows[rid]["embedding"] == row["embedding"]  # kept from the write-ahead row
        assert rows[left_id]["phase"] == "ended" and rows[left_id]["status"] == 499
        done = rows[plain.decision.request_id]
        assert done["phase"] == "ended" and done["status"] == 200 and not done["stream"]
    finally:
        log.close()
        router.decision_log = None
    assert list((tmp_path / "sdk.db.spool").iterdir()) == []
