"""The write-ahead spool: each process's decision-log items on local disk before the database.

`Spool` is an append-only journal of JSON lines owned by one process. `append()` writes an item
with one `write(2)` before it returns, so once the caller goes on (and the answer's first byte
leaves) the item is in the kernel: a SIGKILL of the process cannot lose it. When it is on the
disk itself depends on the fsync policy:

- `always`: `sync()` (the proxy awaits it before the answer starts) fsyncs; concurrent callers
  share one fsync (group commit). A power loss loses nothing that was answered (a stream's
  outcome, which nobody waits for, reaches the disk with the next fsync, at the latest after
  `fsync_interval_s`).
- `interval` (default): a thread fsyncs every `fsync_interval_s`; a power loss can lose the
  items of that last interval.
- `off`: the kernel writes back when it likes (about 30 s on Linux).

The log's writer thread reads the items back in order (`read()`), writes them to the database
and reports how far it got (`done()`); a segment file whose items are all in the database is
deleted. Segments rotate at `segment_bytes`, so the spool stays small while the database
keeps up, and grows on disk (not in memory) while it is down.

Ownership: a process holds an exclusive `flock` on `<owner>.lock` for its spool's lifetime.
The kernel releases it when the process dies, however it dies, so a spool whose lock can be
taken belongs to a dead process (`claim_orphans`): whoever takes the lock replays it. The
directory must be on a local file system (flock over NFS is not reliable).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("router.serving.decision_log")

FSYNC_POLICIES = ("always", "interval", "off")
SEGMENT_BYTES = 4 << 20  # a segment is closed and a new one begun past this size
READ_BYTES = 1 << 20  # at most this much is read back at once

LOCK = ".lock"
SEGMENT = ".jsonl"
START = "start"  # the kind of a write-ahead row: its request is open until one of ENDS
ENDS = ("row", "interrupted")


@dataclass(frozen=True)
class Entry:
    """One spooled item: its sequence number, its kind ("start", "row", "outcome",
    "interrupted") and its payload (a row or an outcome as the log's writer takes it)."""

    seq: int
    kind: str
    data: dict[str, Any]


def encode(seq: int, kind: str, data: dict[str, Any]) -> bytes:
    """One journal line."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_plain)
    return f'{{"seq":{seq},"kind":"{kind}","data":{body}}}\n'.encode()


def decode(line: bytes) -> Entry:
    """A journal line back (ValueError when it is not one: a write cut by a crash)."""
    obj = json.loads(line, object_hook=_unplain)
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), dict):
        raise ValueError("not a spool entry")
    return Entry(int(obj["seq"]), str(obj["kind"]), obj["data"])


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(v)).decode()}
    raise TypeError(f"cannot spool a {type(v).__name__}")


def _unplain(obj: dict) -> Any:
    if len(obj) == 1 and "$bytes" in obj:
        return base64.b64decode(obj["$bytes"])
    return obj


class _Segment:
    """One file of the journal: `<owner>.<n>.jsonl`, n counting from 1."""

    __slots__ = ("first", "last", "open", "path", "size")

    def __init__(self, path: Path, first: int) -> None:
        self.path, self.first = path, first
        self.last = first - 1  # the last seq written into it
        self.size = 0  # bytes of whole lines in it
        self.open = 0  # requests started in it whose end is not spooled yet

    def finished(self, done: int) -> bool:
        """Every item in the database, and every request begun here ended: a replay of this
        segment would tell nothing new (not even which requests a crash interrupted)."""
        return self.last <= done and self.open == 0


class Spool:
    """This process's journal in `directory` (created, mode 0700)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        fsync: str = "interval",
        fsync_interval_s: float = 1.0,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}, got {fsync!r}")
        self.dir = Path(directory)
        self.fsync, self.fsync_interval_s = fsync, fsync_interval_s
        self.segment_bytes = segment_bytes
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self._lock_fd = _new_lock(self.dir / (self.owner + LOCK))
        self._mutex = threading.Lock()  # appends, rotation, the segment list
        self._sync_mutex = threading.Lock()  # one fsync at a time (group commit)
        self._seq = 0  # the last seq appended
        self._synced = 0  # every seq up to this one is on disk
        self._done = 0  # every seq up to this one is in the database
        self._open: dict[str, _Segment] = {}  # request id → the segment its start is in
        self._files = 0  # segment files made so far (they are numbered)
        path, self._fd = self._new_file()
        self._segments: list[_Segment] = [_Segment(path, 1)]
        # The reader (the writer thread): the segment and byte offset it has read up to.
        self._read_seg = 0
        self._read_off = 0
        self._read_fd: int | None = None
        self._read_path: Path | None = None
        self.closed = False
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        if fsync != "off":  # with `always` too: the outcomes nobody waits for get there
            self._syncer = threading.Thread(target=self._sync_loop, name="decision-spool-sync")
            self._syncer.daemon = True
            self._syncer.start()

    def __repr__(self) -> str:
        return f"Spool({str(self.dir)!r}, owner={self.owner!r}, fsync={self.fsync!r})"

    # ---- writing ----------------------------------------------------------------------------

    def append(self, kind: str, data: dict[str, Any]) -> int:
        """Write one item (one `write(2)`); returns its sequence number."""
        with self._mutex:
            if self.closed:
                raise RuntimeError("the spool is closed")
            seq = self._seq + 1
            line = encode(seq, kind, data)
            seg = self._segments[-1]
            view = memoryview(line)
            try:
                while view:  # a regular file takes it whole, short of a full disk
                    view = view[os.write(self._fd, view) :]
            except OSError:
                # No half line may stay: the next item would be read from the wrong place.
                os.ftruncate(self._fd, seg.size)
                raise
            seg.last, seg.size = seq, seg.size + len(line)
            self._seq = seq
            if kind in ENDS:  # the request begun in some segment has ended
                begun = self._open.pop(data.get("request_id"), None)
                if begun is not None:
                    begun.open -= 1
            elif kind == START and data.get("request_id") is not None:
                seg.open += 1
                self._open[data["request_id"]] = seg
            return seq

    @property
    def last(self) -> int:
        """The sequence number of the last item appended."""
        return self._seq

    def sync(self, seq: int | None = None) -> None:
        """Block until every item up to `seq` (default: all) is on disk. Concurrent callers
        share one fsync: whoever gets the fsync lock covers everything appended so far."""
        seq = self._seq if seq is None else seq
        if self._synced >= seq:
            return
        with self._sync_mutex:
            if self._synced >= seq:
                return  # another caller's fsync covered it
            with self._mutex:
                target, fd = self._seq, self._fd
            if fd >= 0:
                os.fdatasync(fd)
            self._synced = max(self._synced, target)

    def must_sync(self) -> bool:
        """Whether an answer waits for `sync()` (policy `always`)."""
        return self.fsync == "always"

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.fsync_interval_s):
            try:
                self.sync()
            except OSError as e:  # a full or failing disk: said, and tried again
                log.error("decision spool: fsync failed: %s", e)

    def _new_file(self) -> tuple[Path, int]:
        """A new, empty segment file (its name durable unless fsync is off)."""
        self._files += 1
        path = self.dir / f"{self.owner}.{self._files:06d}{SEGMENT}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        if self.fsync != "off":
            _sync_dir(self.dir)
        return path, fd

    def rotate(self) -> bool:
        """Begin a new segment if the current one is past `segment_bytes` (the writer thread
        calls this between batches: appends wait only for the swap, not for the fsyncs)."""
        if self._segments[-1].size < self.segment_bytes:
            return False
        with self._sync_mutex:
            if self.closed:
                return False
            path, fd = self._new_file()
            with self._mutex:
                old, synced_to = self._fd, self._seq
                self._segments.append(_Segment(path, self._seq + 1))
                self._fd = fd
            # Everything in the old segment reaches the disk before it is let go.
            if self.fsync != "off":
                os.fdatasync(old)
                self._synced = max(self._synced, synced_to)
            os.close(old)
            return True

    # ---- reading back (the writer thread) ---------------------------------------------------

    def read(self, limit: int) -> list[Entry]:
        """The next items after those already read, at most `limit`, in order."""
        out: list[Entry] = []
        while len(out) < limit:
            with self._mutex:
                if self._read_seg >= len(self._segments):
                    break
                seg = self._segments[self._read_seg]
                end, current = seg.size, self._read_seg == len(self._segments) - 1
            if self._read_off >= end:
                if current:
                    break
                self._read_seg, self._read_off = self._read_seg + 1, 0
                continue
            if self._read_path != seg.path:
                self._close_reader()
                self._read_fd, self._read_path = os.open(seg.path, os.O_RDONLY), seg.path
            chunk = os.pread(self._read_fd, min(end - self._read_off, READ_BYTES), self._read_off)
            if not chunk:  # shorter than written: someone truncated it; said, not looped on
                log.error("decision spool: %s is shorter than written", seg.path.name)
                self._read_off = end
                continue
            pos = 0
            while len(out) < limit:
                nl = chunk.find(b"\n", pos)
                if nl < 0:
                    break
                out += _decoded(chunk[pos : nl + 1], seg.path)
                pos = nl + 1
            if pos == 0 and chunk:  # one line longer than READ_BYTES: read it whole
                nl = -1
                while nl < 0:
                    more = os.pread(self._read_fd, READ_BYTES, self._read_off + len(chunk))
                    if not more:
                        break
                    nl = more.find(b"\n")
                    chunk += more if nl < 0 else more[: nl + 1]
                out += _decoded(chunk, seg.path)
                pos = len(chunk)
            self._read_off += pos
        return out

    def _close_reader(self) -> None:
        if self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd, self._read_path = None, None

    def done(self, seq: int) -> None:
        """Every item up to `seq` is in the database (or was refused by it for good)."""
        self._done = max(self._done, seq)

    @property
    def done_through(self) -> int:
        """Every item up to this sequence number is in the database."""
        return self._done

    @property
    def pending(self) -> int:
        """Items appended and not yet in the database."""
        return self._seq - self._done

    def finished_segments(self) -> list[Path]:
        """Segments, other than the current one, whose items are all in the database."""
        with self._mutex:
            return [s.path for s in self._segments[:-1] if s.finished(self._done)]

    def remove_finished(self) -> int:
        """Delete the finished segments (call once the database made their items durable)."""
        with self._mutex:
            gone = [s for s in self._segments[:-1] if s.finished(self._done)]
            if not gone:
                return 0
            keep = [s for s in self._segments if s not in gone]
            reading = self._segments[min(self._read_seg, len(self._segments) - 1)]
            if reading in gone:
                # Finished means read to its end: go on at the start of the next one kept.
                self._read_seg = next(i for i, s in enumerate(keep) if s.first > reading.first)
                self._read_off = 0
            else:
                self._read_seg = keep.index(reading)
            self._segments = keep
        for s in gone:
            if s.path == self._read_path:
                self._close_reader()
            s.path.unlink(missing_ok=True)
        return len(gone)

    # ---- closing ----------------------------------------------------------------------------

    @property
    def open_requests(self) -> int:
        """Requests whose write-ahead row was spooled and whose end was not (yet)."""
        return len(self._open)

    def close(self) -> int:
        """Stop. With every item in the database and every request ended, the files go;
        otherwise they stay, fsynced, for the next process to replay (and to mark the requests
        that never ended interrupted). Returns how many items and open requests stay behind."""
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join(5)
        with self._sync_mutex, self._mutex:
            if self.closed:
                return 0
            self.closed = True
            # Requests still open cannot be: the process ends. Their rows stay "started" in
            # the database unless the spool stays for a replay to mark them interrupted.
            left = (self._seq - self._done) + len(self._open)
            if left and self.fsync != "off":
                os.fdatasync(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._close_reader()
            if not left:
                for s in self._segments:
                    s.path.unlink(missing_ok=True)
                (self.dir / (self.owner + LOCK)).unlink(missing_ok=True)
            os.close(self._lock_fd)  # releases the flock: a left spool is now an orphan
        return left

    # ---- other processes' spools ------------------------------------------------------------

    def claim_orphans(self) -> Iterator[Orphan]:
        """The spools in this directory whose owners are dead, each locked for the caller."""
        yield from claim_orphans(self.dir, skip=self.owner)


class Orphan:
    """A dead process's spool, locked by the claimer until `release()` or `remove()`."""

    def __init__(self, directory: Path, owner: str, lock_fd: int) -> None:
        self.dir, self.owner, self._lock_fd = directory, owner, lock_fd

    @property
    def segments(self) -> list[Path]:
        return sorted(self.dir.glob(f"{self.owner}.*{SEGMENT}"))

    def entries(self) -> Iterator[Entry]:
        """Its items in order; a line cut by the crash (the last one) is skipped."""
        for path in self.segments:
            with path.open("rb") as fh:
                for n, line in enumerate(fh, 1):
                    if not line.endswith(b"\n"):
                        log.warning("decision spool: %s:%d: skipped a cut last line", path.name, n)
                        break
                    try:
                        yield decode(line)
                    except (ValueError, KeyError, TypeError):
                        log.warning("decision spool: %s:%d: skipped a malformed line", path, n)

    def remove(self) -> None:
        """Delete its files (once its items are safely elsewhere) and let the lock go."""
        for path in self.segments:
            path.unlink(missing_ok=True)
        (self.dir / (self.owner + LOCK)).unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def claim_orphans(directory: str | Path, skip: str | None = None) -> Iterator[Orphan]:
    """Lock and yield each spool in `directory` whose owner process is gone. The caller must
    `remove()` or `release()` each (a released one stays an orphan for someone else)."""
    directory = Path(directory)
    for lock in sorted(directory.glob(f"*{LOCK}")):
        owner = lock.name.removesuffix(LOCK)
        if owner == skip:
            continue
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            continue  # replayed by someone else meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # its owner is alive, or another process is replaying it
            continue
        if not lock.exists():  # replayed and removed between our open and our lock
            os.close(fd)
            continue
        yield Orphan(directory, owner, fd)
    # Lock files half made by a process that died while starting (no segment, no data).
    for tmp in directory.glob(f"*{LOCK}.tmp"):
        with contextlib.suppress(OSError):
            fd = os.open(tmp, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                tmp.unlink()
            except BlockingIOError:
                pass
            finally:
                os.close(fd)


def _decoded(line: bytes, path: Path) -> list[Entry]:
    try:
        return [decode(line)]
    except (ValueError, KeyError, TypeError) as e:
        log.error("decision spool: %s: skipped a malformed line (%s)", path.name, e)
        return []


def _new_lock(path: Path) -> int:
    """Create `path` already locked: made under a temporary name, locked, then renamed, so no
    other process ever sees it unlocked (and takes a live spool for an orphan)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(tmp, path)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return fd


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
