"""`open_decision_log`: a DecisionLog as a config's `decision_log:` section describes it, with
its write-ahead spool where the section (or the default) puts it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from router.serving.decision_log.schema import DecisionLogError, database_url, safe_url
from router.serving.decision_log.spool import Spool
from router.serving.decision_log.writer import QUEUE_SIZE, DecisionLog


def spool_dir(location: str | Path, directory: str | None, base_dir: str | Path) -> Path:
    """Where the spool of a log at `location` lives: `directory` (relative to `base_dir`), or
    `<file>.spool` beside a SQLite file, or `decisions-<hash of the URL>.spool` in `base_dir`
    for a database URL (one spool per database: a replay goes to the database it was for)."""
    if directory:
        d = Path(directory).expanduser()
        return d if d.is_absolute() else Path(base_dir) / d
    url = database_url(location)
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///") + ".spool")
    # query=False: the name stays what earlier versions gave it (a spool is found again).
    digest = hashlib.sha256(safe_url(url, query=False).encode()).hexdigest()[:12]
    return Path(base_dir) / f"decisions-{digest}.spool"


def open_decision_log(
    location: str | Path,
    spec: Any = None,
    encoder: Any = None,
    base_dir: str | Path | None = None,
) -> DecisionLog:
    """A DecisionLog at `location` with a config `decision_log:` section's settings (None:
    defaults, the spool on), embedding routing texts with `encoder` (whose `identity` names
    them). A Router, or a function returning the encoder, may stand for it: it is then looked
    up at each use (the proxy wraps its encoder, and a hot reload may swap it). `base_dir`
    (default: the working directory) is where relative spool paths start: the config's folder.
    """
    from router.core.config import DecisionLogSpec

    spec = spec if spec is not None else DecisionLogSpec()

    def current():
        enc = encoder() if callable(encoder) and not hasattr(encoder, "encode") else encoder
        return getattr(enc, "encoder", enc)

    if encoder is None:
        embed = identity = None
    else:

        def embed(text: str) -> np.ndarray:
            return current().encode([text])[0]

        def identity() -> str | None:
            return getattr(current(), "identity", None)

    spool = None
    sp = getattr(spec, "spool", None)
    if sp is not None:
        where = spool_dir(location, sp.dir, base_dir or Path.cwd())
        try:
            spool = Spool(where, fsync=sp.fsync, fsync_interval_s=sp.fsync_interval_s)
        except OSError as e:
            raise DecisionLogError(
                f"decision_log.spool.dir: cannot keep the spool of {safe_url(database_url(location))}"
                f" in {where}: {e.strerror or e}"
            ) from None
    return DecisionLog(
        location,
        store_text=bool(getattr(spec, "store_text", False)),
        max_rows=getattr(spec, "max_rows", None),
        max_days=getattr(spec, "max_days", None),
        queue_size=getattr(spec, "queue_size", QUEUE_SIZE),
        embed=embed,
        encoder=identity,
        spool=spool,
    )
