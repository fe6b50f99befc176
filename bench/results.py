"""One place where every bench script records what it measured, as JSON beside it.

    from results import command_line, record
    record("proxy_overhead", title="Proxy overhead", command=command_line(),
           figures={"routed_rps": 151.2, ...},
           tables=[{"title": "...", "columns": [...], "rows": [[...], ...]}])

writes `bench/results/proxy_overhead.json` with the figures, the command, the commit, the date,
the machine's load average before and after the run, and its CPU count. `make benchmarks`
(scripts/render_benchmarks.py) renders BENCHMARKS.md from these files alone, through
bench/BENCHMARKS.md.j2, so no figure in it is typed by hand.

Conventions the renderer relies on:
- `name` is the bench script's stem (`bench/load.py` records `load`); the routing-quality
  results of `make model` are named `routing_<data>` and rendered generically.
- Figures are plain JSON values (numbers, strings, booleans, lists, nested dicts); the template
  names them (`r.figures.worst_settled_points`), so renaming one is a template change too.
- A table may carry `formats`, one per column: "" (as is), "pct" (a share shown as a
  percentage), "int", or a Python format spec such as ".3f" or ",.0f".
- `plots` are repository-relative image paths the script wrote (shown under the section).

BENCH_RESULTS_DIR puts the files elsewhere (tests, and short check runs that must not replace
the recorded figures).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
_LOAD_AT_IMPORT = os.getloadavg()  # the load when the bench started


def results_dir() -> Path:
    return Path(os.environ.get("BENCH_RESULTS_DIR") or RESULTS)


# What the benches themselves write: a batch of benches on a clean tree must not call the second
# one's commit dirty because the first one recorded its figures.
BENCH_OUTPUTS = ("bench/results", "docs/budget_controller.png")


def commit() -> str:
    """The short commit, with `-dirty` when the tree has uncommitted changes to tracked files
    other than the benches' own outputs (`BENCH_OUTPUTS`)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    spec = [".", *(f":(exclude){p}" for p in BENCH_OUTPUTS)]
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", *spec)
    return sha + ("-dirty" if dirty else "")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name and whether it has int8 dot-product instructions (AVX-512 VNNI or
    AVX-VNNI): the encoder runs about three times faster with them (docs/performance.md), so
    figures from two machines compare only with this beside them."""
    try:
        lines = cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    field = {}
    for line in lines:
        key, _, value = line.partition(":")
        field.setdefault(key.strip(), value.strip())
    flags = set(field.get("flags", "").split())
    vnni = "with" if flags & {"avx512_vnni", "avx_vnni"} else "without"
    return f"{field.get('model name', 'unknown CPU')}, {vnni} VNNI"


def command_line() -> str:
    """How this script was run, repository-relative: `python bench/load.py --duration 60`."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else Path(script.name)
    return shlex.join(["python", str(shown), *sys.argv[1:]])


def _check_table(t: dict[str, Any]) -> None:
    missing = {"title", "columns", "rows"} - set(t)
    if missing:
        raise ValueError(f"table {t.get('title')!r} lacks {sorted(missing)}")
    for row in t["rows"]:
        if len(row) != len(t["columns"]):
            raise ValueError(
                f"table {t['title']!r}: a row has {len(row)} cells, not {len(t['columns'])}"
            )
    if "formats" in t and len(t["formats"]) != len(t["columns"]):
        raise ValueError(
            f"table {t['title']!r}: {len(t['formats'])} formats for {len(t['columns'])} columns"
        )


def _json_safe(value: Any) -> Any:
    """NaN and infinities (a figure that could not be measured) become None: they are not JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        return _json_safe(value.item())
    return value


# The tree as the run found it: a run that rebuilds a shipped artifact before it records its
# figures (make model, make verifier, make policies) measured the commit it started from.
_COMMIT_AT_IMPORT = commit()


def record(
    name: str,
    *,
    title: str,
    command: str,
    figures: dict[str, Any],
    tables: list[dict[str, Any]] | None = None,
    notes: str = "",
    plots: list[str] | None = None,
) -> Path:
    """Write `<results dir>/<name>.json`; returns its path. Figures are plain JSON values."""
    for t in tables or []:
        _check_table(t)
    for p in plots or []:
        if Path(p).is_absolute() or not (ROOT / p).is_file():
            raise ValueError(f"plot {p!r} is not a file inside the repository")
    out = {
        "name": name,
        "title": title,
        "command": command,
        "commit": _COMMIT_AT_IMPORT,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu_count": os.cpu_count(),
        "cpu": cpu(),
        "load_average_start": [round(x, 2) for x in _LOAD_AT_IMPORT],
        "load_average_end": load_average(),
        "figures": figures,
        "tables": tables or [],
        "notes": notes,
        "plots": list(plots or []),
    }
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    text = json.dumps(_json_safe(out), indent=2, ensure_ascii=False, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"recorded {shown} (load {out['load_average_end']})")
    return path


# ---- routing quality: the shape of `router eval --json` as a results table -------------------

# (metric in `router eval --json`, column heading, format); APGR and CPT only on two-tier data.
TWO_TIER_COLUMNS = [
    ("apgr", "APGR", ".3f"),
    ("cpt_50", "CPT(50%)", "pct"),
    ("cpt_80", "CPT(80%)", "pct"),
    ("cpt_95", "CPT(95%)", "pct"),
    ("aiq", "AIQ", ".3f"),
    ("cost_reduction_at_95", "cost cut at 95% of the large model's quality", "pct"),
]
N_MODEL_COLUMNS = [
    ("quality_at_best_single_cost", "quality at the best single model's cost", ".3f"),
    ("cost_to_match_best_single", "cost to match its quality (share of its cost)", "pct"),
    ("aiq", "AIQ", ".3f"),
    ("cost_reduction_at_95", "cost cut at 95% of its quality", "pct"),
    ("oracle_gain_captured", "share of the oracle's gain over it", "pct"),
]


def eval_table(report: dict[str, Any], title: str, curves: list[str] | None = None) -> dict:
    """One results table from a `router eval --json` report: a row per router or baseline
    (default: every curve but the single models), the columns of its kind of data."""
    results = report["results"]
    two_tier = any(m.get("apgr") is not None for m in results.values())
    spec = TWO_TIER_COLUMNS if two_tier else N_MODEL_COLUMNS
    names = curves or [n for n in results if not n.startswith("single:")]
    unknown = [n for n in names if n not in results]
    if unknown:
        raise ValueError(f"no curve {unknown} in the report (it has {sorted(results)})")
    rows = [[n, *(results[n].get(key) for key, _, _ in spec)] for n in names]
    return {
        "title": title,
        "columns": ["router / baseline", *(head for _, head, _ in spec)],
        "formats": ["", *(fmt for _, _, fmt in spec)],
        "rows": rows,
    }


def eval_figures(report: dict[str, Any]) -> dict[str, Any]:
    """The scalar figures of a `router eval --json` report, `<curve>_<metric>` (single models
    and curves left out), for the template's prose."""
    out: dict[str, Any] = {
        k: v for k, v in report.items() if isinstance(v, str | int | float | bool | None)
    }
    out["oracle_quality"], out["oracle_cost"] = (
        report["oracle"]["quality"],
        report["oracle"]["cost"],
    )
    for curve, metrics in report["results"].items():
        if curve.startswith("single:"):
            continue
        for key, value in metrics.items():
            if key != "curve":
                out[f"{curve}_{key}"] = value
    return out
