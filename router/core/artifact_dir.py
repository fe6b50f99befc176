"""An artifact saved as a directory: its metadata in one JSON file beside `weights.npz`, plain
arrays read with `allow_pickle=False`, so nothing in it runs on load. The scorer
(`scorer_format`) and the answer verifier are both saved so; each checks its own format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS = "weights.npz"


def write(path: str | Path, meta_name: str, meta: dict[str, Any], arrays: dict[str, Any]) -> Path:
    """Write `meta` to `path/meta_name` and `arrays` to `path/weights.npz`; returns `path`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path / WEIGHTS, **arrays)
    (path / meta_name).write_text(json.dumps(meta) + "\n", encoding="utf-8")
    return path


def read(
    path: str | Path, meta_name: str, kind: str, error: type[Exception]
) -> tuple[Any, dict[str, np.ndarray]]:
    """The parsed `path/meta_name` and the arrays of `path/weights.npz`. A missing file or an
    unreadable one raises `error`, naming the directory and the `kind` of artifact."""
    path = Path(path)
    meta_file, weights_file = path / meta_name, path / WEIGHTS
    if not meta_file.is_file() or not weights_file.is_file():
        raise error(f"{path}: not a {kind} directory (needs {meta_name} and {WEIGHTS})")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        with np.load(weights_file, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise error(f"{path}: unreadable {kind} files: {e}") from None
    return meta, arrays
