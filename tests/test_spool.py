"""The write-ahead spool (router/serving/decision_log/spool.py) and the decision log on it:
items come back in order and go once written; a live spool is never taken for a dead one; a
process killed with SIGKILL while its database is down loses no row, on SQLite and PostgreSQL,
and a replay (even twice) neither duplicates nor undoes anything."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from router.serving.decision_log import DecisionLog, Spool, database_url, decisions, outcomes
from router.serving.decision_log.spool import claim_orphans

ROOT = Path(__file__).resolve().parent.parent
BOUND_S = 120


def _row(i: int, **kw) -> dict:
    return {"request_id": f"r{i}", "ts": 1000.0 + i, "model": "small", "kind": "chat", **kw}


# ---- the spool alone ----------------------------------------------------------------------


def test_items_come_back_in_order_and_finished_segments_go(tmp_path):
    spool = Spool(tmp_path / "s", segment_bytes=600, fsync="off")
    spool.append("start", _row(0, routing_text="long stream"))  # open until its end comes
    seqs = [spool.append("row", _row(i, status=200)) for i in range(1, 30)]
    assert seqs == list(range(2, 31)) and spool.last == 30
    got = []
    while batch := spool.read(7):
        got += batch
        spool.done(batch[-1].seq)
        spool.rotate()
        spool.remove_finished()
    assert [e.seq for e in got] == list(range(1, 31))
    assert got[0].kind == "start" and got[0].data["routing_text"] == "long stream"
    assert got[5].data == {**_row(5, status=200)}
    files = sorted(p.name for p in (tmp_path / "s").glob("*.jsonl"))
    # The first segment holds a request that has not ended: kept (a replay must see it);
    # finished ones went; the current one stays.
    assert len(files) == 2 and files[0].endswith(".000001.jsonl")
    spool.append("row", _row(0, status=200))  # the stream ended
    spool.done(spool.read(10)[-1].seq)
    spool.rotate()
    spool.remove_finished()
    assert len(list((tmp_path / "s").glob("*.jsonl"))) == 1
    assert spool.close() == 0
    assert list((tmp_path / "s").iterdir()) == []  # all written: nothing left behind


def test_every_item_is_read_once_in_order_whatever_the_interleaving(tmp_path):
    """Appends, reads, rotations and removals in a seeded random order, with tiny segments
    and streams that stay open for a while: each item comes back once, in order."""
    import random

    rnd = random.Random(7)
    spool = Spool(tmp_path / "s", segment_bytes=300, fsync="off")
    got: list[int] = []
    open_ids: list[str] = []
    for step in range(3000):
        action = rnd.random()
        if action < 0.45:
            if open_ids and rnd.random() < 0.3:
                spool.append("row", {"request_id": open_ids.pop(rnd.randrange(len(open_ids)))})
            else:
                kind = "start" if rnd.random() < 0.3 else "row"
                spool.append(kind, {"request_id": f"r{step}"})
                if kind == "start":
                    open_ids.append(f"r{step}")
        elif action < 0.8:
            batch = spool.read(rnd.randint(1, 9))
            got += [e.seq for e in batch]
            if batch:
                spool.done(batch[-1].seq)
        else:
            spool.rotate()
            spool.remove_finished()
    while batch := spool.read(50):
        got += [e.seq for e in batch]
        spool.done(batch[-1].seq)
    assert got == list(range(1, spool.last + 1))
    for rid in open_ids:
        spool.append("row", {"request_id": rid})
    spool.done(spool.read(10_000)[-1].seq)
    assert spool.close() == 0 and list((tmp_path / "s").iterdir()) == []


def test_a_full_disk_leaves_no_half_line_behind(tmp_path):
    """A write refused half-way (here: past RLIMIT_FSIZE, as a full disk) raises and leaves
    the segment as it was, so the items after it are read back whole."""
    code = textwrap.dedent(
        f"""
        import resource, signal
        from router.serving.decision_log import Spool
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        s = Spool({str(tmp_path / "s")!r}, fsync="off")
        s.append("row", {{"request_id": "before", "pad": "x" * 100}})
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300, hard))
        try:
            s.append("row", {{"request_id": "too big", "pad": "x" * 1000}})
            raise SystemExit("the write was not refused")
        except OSError:
            pass
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        s.append("row", {{"request_id": "after"}})
        print([e.data["request_id"] for e in s.read(10)])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=BOUND_S
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "['before', 'after']"


def test_bytes_and_numpy_values_survive_the_journal(tmp_path):
    spool = Spool(tmp_path / "s", fsync="off")
    spool.append("row", {"request_id": "b", "embedding": b"\x00\x01\xff", "x": np.float32(0.5)})
    (e,) = spool.read(10)
    assert e.data == {"request_id": "b", "embedding": b"\x00\x01\xff", "x": 0.5}
    spool.done(e.seq)
    spool.close()


def test_fsync_policies(tmp_path):
    with pytest.raises(ValueError, match="fsync"):
        Spool(tmp_path / "bad", fsync="sometimes")
    always = Spool(tmp_path / "a", fsync="always")
    seq = always.append("row", _row(1))
    assert always.must_sync()
    always.sync(seq)  # returns once the item is on disk
    assert always._synced >= seq
    interval = Spool(tmp_path / "i", fsync="interval", fsync_interval_s=0.05)
    seq = interval.append("row", _row(1))
    assert not interval.must_sync()
    deadline = time.monotonic() + BOUND_S
    while interval._synced < seq:  # the syncer thread gets there by itself
        assert time.monotonic() < deadline, "the interval fsync never came"
        time.sleep(0.02)
    off = Spool(tmp_path / "o", fsync="off")
    assert off._syncer is None and not off.must_sync()
    for s in (always, interval, off):
        s.done(s.last)
        s.close()


def _spool_and_die(directory: Path, items: int, cut_last: bool = False) -> None:
    """A process that spools `items` rows and is killed with SIGKILL."""
    code = textwrap.dedent(
        f"""
        import os, signal
        from router.serving.decision_log import Spool
        s = Spool({str(directory)!r}, fsync="off")
        for i in range({items}):
            s.append("row", {{"request_id": f"r{{i}}", "ts": 1.0}})
        if {cut_last}:  # a write cut short by the crash
            os.write(s._fd, b'{{"seq":99,"kind":"row","data":{{"request_')
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=BOUND_S)
    assert proc.returncode == -signal.SIGKILL


def test_a_live_spool_is_never_claimed_a_dead_ones_is_once(tmp_path):
    live = Spool(tmp_path / "s", fsync="off")
    live.append("row", _row(1))
    assert list(claim_orphans(tmp_path / "s")) == []  # its owner (this process) holds the lock
    _spool_and_die(tmp_path / "s", 5, cut_last=True)
    (orphan,) = claim_orphans(tmp_path / "s")
    # Claimed: nobody else can take it meanwhile.
    assert list(claim_orphans(tmp_path / "s")) == []
    # The cut last line is skipped; the five whole ones come back.
    assert [e.data["request_id"] for e in orphan.entries()] == [f"r{i}" for i in range(5)]
    orphan.remove()
    assert list(claim_orphans(tmp_path / "s")) == []
    assert {p.name.split(".")[0] for p in (tmp_path / "s").iterdir()} == {live.owner}
    live.done(live.last)
    live.close()


# ---- the decision log on a spool: SIGKILL while the database is down ---------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """(url, take it away, bring it back) for each database."""
    if request.param == "sqlite":
        url = str(tmp_path / "d.db")
        lock: dict = {}

        def down() -> None:
            # Another writer holds the database: every write of the log times out (locked).
            con = sqlite3.connect(url, timeout=60, isolation_level=None)
            con.execute("BEGIN EXCLUSIVE")
            lock["con"] = con

        def up() -> None:
            lock.pop("con").close()

        return url, down, up
    server = request.getfixturevalue("postgres_server")
    url = request.getfixturevalue("postgres_url")

    def pg_down() -> None:
        # The fixture runs with synchronous_commit=off: the schema must survive the crash.
        server.query("CHECKPOINT", url.rsplit("/", 1)[1])
        server.kill()

    return url, pg_down, server.start


def _embed(text: str) -> np.ndarray:
    v = np.random.default_rng(sum(map(ord, text))).normal(size=8).astype(np.float32)
    return v / np.linalg.norm(v)


def _log(url: str, spool_dir: Path) -> DecisionLog:
    return DecisionLog(url, embed=_embed, encoder="t/1", spool=Spool(spool_dir, fsync="off"))


def _record_and_die(url: str, spool_dir: Path, down) -> None:
    """A process that opens the log, waits for `down()` to take the database away, records 40
    requests (every third one never ends: a stream cut by the kill) and feedback on two, and
    is killed with SIGKILL: nothing reached the database."""
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        import numpy as np
        from router.serving.decision_log import DecisionLog, Spool
        log = DecisionLog({url!r}, embed=lambda t: np.ones(8, dtype=np.float32), encoder="t/1",
                          spool=Spool({str(spool_dir)!r}, fsync="off"))
        print("open", flush=True)
        sys.stdin.readline()  # the database is down now
        for i in range(40):
            row = {{"request_id": f"r{{i}}", "ts": 1000.0 + i, "model": "small", "kind": "chat",
                   "key_name": "k", "routing_text": f"question {{i}}", "stream": True}}
            log.start(row)
            if i % 3:
                log.record({{**row, "routing_text": None, "status": 200, "latency_ms": 5.0}})
        log.record_outcome("r1", 1.0, "feedback")
        log.record_outcome("r2", 0.0, "feedback", key_name="k")
        assert log.written == 0, "the database was meant to be down"
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "open", proc.stderr.read()[-3000:]
        down()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.wait(BOUND_S) == -signal.SIGKILL, proc.stderr.read()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _rows(url: str) -> dict[str, dict]:
    engine = sa.create_engine(database_url(url))
    try:
        with engine.connect() as con:
            rows = {r["request_id"]: dict(r) for r in con.execute(sa.select(decisions)).mappings()}
            outs = [dict(r) for r in con.execute(sa.select(outcomes)).mappings()]
    finally:
        engine.dispose()
    return rows, outs


def test_a_killed_process_loses_no_row_and_a_replay_duplicates_nothing(database, tmp_path):
    url, down, up = database
    spool_dir = tmp_path / "spool"
    try:
        _record_and_die(url, spool_dir, down)
    finally:
        up()
    kept = tmp_path / "copy"
    shutil.copytree(spool_dir, kept)  # the dead spool, for a second replay below
    log = _log(url, spool_dir)  # a new process on the same spool: replays at start
    assert log.replayed == 68  # 40 starts, 26 ends, 2 outcomes
    assert log.flush(BOUND_S)
    rows, outs = _rows(url)
    assert set(rows) == {f"r{i}" for i in range(40)}
    for i in range(40):
        r = rows[f"r{i}"]
        assert r["embedding"] is not None and r["encoder"] == "t/1"  # from the start row
        if i % 3:
            assert r["phase"] == "ended" and r["status"] == 200 and r["latency_ms"] == 5.0
        else:  # its process died before its answer ended
            assert r["phase"] == "interrupted" and r["status"] is None and r["stream"] == 1
            assert "ended first" in r["error"]
    assert sorted((o["request_id"], o["score"], o["revision"]) for o in outs) == [
        ("r1", 1.0, 1),
        ("r2", 0.0, 1),
    ]
    # The same spool replayed once more (a replayer killed after copying, before deleting):
    # nothing is duplicated, no ended row goes back to "started", no outcome counts twice.
    for p in kept.iterdir():
        shutil.copy(p, spool_dir / p.name)
    log2 = _log(url, tmp_path / "spool")
    assert log2.replayed == 68 and log2.flush(BOUND_S)
    assert _rows(url) == (rows, outs)
    log.close()
    log2.close()
    assert list(spool_dir.iterdir()) == []  # all written: every spool file went


def test_a_close_while_the_database_is_down_leaves_the_spool_for_the_next_start(database, tmp_path):
    url, down, up = database
    spool_dir = tmp_path / "spool"
    log = _log(url, spool_dir)
    down()
    try:
        for i in range(5):
            log.record(_row(i, status=200, routing_text=f"q{i}"))
        log.close(timeout=1.0)
        assert log.dropped == 0  # not dropped: kept on disk
        assert len(list(spool_dir.glob("*.jsonl"))) == 1
    finally:
        up()
    again = _log(url, spool_dir)
    assert again.replayed == 5 and again.flush(BOUND_S)
    assert set(_rows(url)[0]) == {f"r{i}" for i in range(5)}
    again.close()
    assert list(spool_dir.iterdir()) == []


def test_a_live_process_takes_over_a_dead_ones_spool_without_a_restart(tmp_path, monkeypatch):
    import router.serving.decision_log.writer as writer

    monkeypatch.setattr(writer, "REPLAY_EVERY_S", 0.2)
    url, spool_dir = str(tmp_path / "d.db"), tmp_path / "spool"
    live = _log(url, spool_dir)
    lock: list = []

    def down() -> None:  # the dead one cannot write either
        lock.append(sqlite3.connect(url, timeout=60, isolation_level=None))
        lock[0].execute("BEGIN EXCLUSIVE")

    try:
        _record_and_die(url, spool_dir, down)
    finally:
        for con in lock:
            con.close()
    deadline = time.monotonic() + BOUND_S
    while live.replayed < 68:  # found by the live writer's periodic look
        assert time.monotonic() < deadline, "the dead process's spool was never replayed"
        time.sleep(0.05)
    assert live.flush(BOUND_S)
    assert len(_rows(url)[0]) == 40
    live.close()


def test_spool_directory_must_be_writable(tmp_path):
    from router.core.config import DecisionLogSpec, SpoolSpec
    from router.serving.decision_log import DecisionLogError, open_decision_log

    (tmp_path / "file").write_text("x")
    spec = DecisionLogSpec(spool=SpoolSpec(dir=str(tmp_path / "file" / "spool")))
    with pytest.raises(DecisionLogError, match=r"decision_log\.spool\.dir: .*file/spool"):
        open_decision_log(tmp_path / "d.db", spec, base_dir=tmp_path)


def test_default_spool_places(tmp_path):
    from router.serving.decision_log import spool_dir

    assert spool_dir(tmp_path / "d.db", None, "/cfg") == tmp_path / "d.db.spool"
    pg = spool_dir("postgresql://u:pw@h/db", None, "/cfg")
    assert pg.parent == Path("/cfg") and pg.name.startswith("decisions-")
    assert pg != spool_dir("postgresql://u:pw@h/other", None, "/cfg")  # one per database
    assert pg == spool_dir("postgresql://u:other-pw@h/db", None, "/cfg")
    assert spool_dir("x.db", "spools/here", "/cfg") == Path("/cfg/spools/here")
    assert spool_dir("x.db", "/abs", "/cfg") == Path("/abs")
    assert os.path.isabs(spool_dir("x.db", None, "/cfg"))


def test_ids_kept_in_memory_for_feedback_are_bounded_during_an_outage(tmp_path):
    url = str(tmp_path / "d.db")
    log = DecisionLog(url, spool=Spool(tmp_path / "spool", fsync="off"), queue_size=3)
    con = sqlite3.connect(url, timeout=60, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")  # nothing is written meanwhile
    try:
        for i in range(10):
            log.record(_row(i, status=200, key_name="k"))
        assert len(log._pending) == 3  # the rows wait on disk; only 3 ids in memory
        assert log.has_request("r0", "k") and not log.has_request("r0", "other")
        assert not log.has_request("r9")  # not found yet: its feedback is to come later
    finally:
        con.close()
    assert log.flush(BOUND_S)
    assert log.has_request("r9", "k") and log._pending == {}
    log.close()
