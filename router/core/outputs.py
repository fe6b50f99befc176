"""Where a command will write, checked before the work that fills it.

A command that embeds, trains or calls models for minutes and only then finds that its
`--out` names a directory, a folder that does not exist or one it may not write to has lost
that work (and, with `router profile`, paid for it). These checks run first and say which
option and path are wrong, in one line, instead of a traceback at the end.
"""

from __future__ import annotations

import os
from pathlib import Path

from router.core.data import DataError


def check_output_file(
    path: str | Path,
    option: str,
    error: type[DataError] = DataError,
    renamed: bool = False,
    give: str = "the file to write",
) -> Path:
    """A file can be written at `path` (given by `option`, e.g. "--out"): it is not a
    directory (the error says to `give` one instead), its folder exists and may be written.
    `renamed`: the file is written beside itself and renamed over (an atomic rewrite), so its
    folder must be writable even when the file already is."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{option} {path}: a directory; give {give}")
    folder = path.parent
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise error(f"{option} {path}: the directory {folder} {what}")
    writable_folder = os.access(folder, os.W_OK | os.X_OK)
    if path.exists() and not renamed:
        ok = os.access(path, os.W_OK)
    else:
        ok = writable_folder
    if not ok:
        where = path if path.exists() and not renamed else folder
        raise error(f"{option} {path}: {where} is not writable (permission denied)")
    return path


def check_output_dir(path: str | Path, option: str, error: type[DataError] = DataError) -> Path:
    """A directory can be written at `path` (made with its parents if need be): `path` is not
    a file, and the nearest folder of it that exists is a directory that may be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise error(f"{option} {path}: a file; give the directory to write")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise error(f"{option} {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise error(f"{option} {path}: {existing} is not writable (permission denied)")
    return path
