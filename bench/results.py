"""One place where every bench script records what it measured, as JSON beside it.

    from results import record
    record("proxy", title="Proxy overhead", command="make bench-proxy",
           figures={"routed_rps": 151.2, ...},
           tables=[{"title": "...", "columns": [...], "rows": [[...], ...]}])

writes `bench/results/proxy.json` with the figures, the command, the commit, the date, the
machine's load average before and after the run, and its CPU count. `make benchmarks`
(scripts/render_benchmarks.py) renders BENCHMARKS.md from these files alone, so no figure in it
is typed by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
_LOAD_AT_IMPORT = os.getloadavg()  # the load when the bench started


def commit() -> str:
    """The short commit, with `-dirty` when the tree has uncommitted changes to tracked files."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def record(
    name: str,
    *,
    title: str,
    command: str,
    figures: dict[str, Any],
    tables: list[dict[str, Any]] | None = None,
    notes: str = "",
) -> Path:
    """Write `bench/results/<name>.json`; returns its path. Figures are plain JSON values."""
    for t in tables or []:
        missing = {"title", "columns", "rows"} - set(t)
        if missing:
            raise ValueError(f"table {t.get('title')!r} lacks {sorted(missing)}")
        for row in t["rows"]:
            if len(row) != len(t["columns"]):
                raise ValueError(
                    f"table {t['title']!r}: a row has {len(row)} cells, not {len(t['columns'])}"
                )
    out = {
        "name": name,
        "title": title,
        "command": command,
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu_count": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in _LOAD_AT_IMPORT],
        "load_average_end": load_average(),
        "figures": figures,
        "tables": tables or [],
        "notes": notes,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False, sort_keys=False) + "\n")
    print(f"recorded {path.relative_to(ROOT)} (load {out['load_average_end']})")
    return path
