"""Render BENCHMARKS.md from the bench scripts' results files alone.

    python scripts/render_benchmarks.py            (or: make benchmarks)
    python scripts/render_benchmarks.py --check    exit 1 when BENCHMARKS.md is not what the
                                                   results render to

Every `bench/results/<name>.json` (written by `bench/results.py` `record()`) is read, and
`bench/BENCHMARKS.md.j2` (Jinja2) is rendered with them. The template's prose holds no figure:
it names them (`r.figures.worst_settled_points`), and the filters here format them. A section
whose results file is missing renders as "not measured yet"; a figure or table that a present
file lacks stops the render with an error naming the file and the figure. The output depends on
the results files and the template only, so rendering twice gives the same file.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TEMPLATE = ROOT / "bench" / "BENCHMARKS.md.j2"
OUT = ROOT / "BENCHMARKS.md"
REQUIRED = ("name", "title", "command", "commit", "date", "figures", "tables")
# Routing-quality results (`make model`) in this order first, then any other routing_* by name.
ROUTING_ORDER = ("routing_routellm", "routing_dcrouter")


class BenchmarkError(Exception):
    """A results file or the template is wrong; the message says which and where."""


# Not a LookupError or AttributeError: Jinja would turn those into an undefined value.
class MissingFigure(BenchmarkError):
    pass


# ---- formatting ---------------------------------------------------------------------------


def num(value: Any, digits: int = 3) -> str:
    """A figure for a person: three significant digits, never in exponent notation, thousands
    separated (7,824); None (not measured) as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if value == 0:
            return "0"
        size = abs(value)
        if size >= 100:
            return f"{value:,.0f}"
        decimals = max(0, digits - 1 - math.floor(math.log10(size)))
        return f"{value:.{decimals}f}"
    if isinstance(value, list):
        return ", ".join(num(v, digits) for v in value)
    return str(value)


def pct(value: Any, decimals: int = 1) -> str:
    """A share (0.291) as a percentage (29.1%)."""
    if value is None:
        return "–"
    return f"{100 * float(value):.{decimals}f}%"


def fmt(value: Any, spec: str) -> str:
    """A figure in a given format: "pct", "int", "" (as `num`), or a Python format spec."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool) or isinstance(value, str) or not spec:
        return num(value)
    if spec == "pct":
        return pct(value)
    if spec == "int":
        return f"{round(value):,}"
    return format(value, spec)


def signed(value: Any, spec: str = ",.0f") -> str:
    """A difference with its sign: +273, −70."""
    if value is None:
        return "–"
    text = format(abs(value), spec)
    return ("+" if value >= 0 else "−") + text


def _cell(value: Any, spec: str) -> str:
    text = fmt(value, spec) if not isinstance(value, list) else num(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: dict[str, Any]) -> str:
    formats = table.get("formats") or [""] * len(table["columns"])
    lines = [
        "| " + " | ".join(_cell(c, "") for c in table["columns"]) + " |",
        "|" + "---|" * len(table["columns"]),
    ]
    for row in table["rows"]:
        lines.append(
            "| " + " | ".join(_cell(v, f) for v, f in zip(row, formats, strict=True)) + " |"
        )
    return "\n".join(lines)


# ---- the results files --------------------------------------------------------------------


class Figures:
    """A results file's figures, strict: naming one it lacks raises `MissingFigure` with the
    file and the figure's path. Nested dicts are Figures too."""

    def __init__(self, data: dict[str, Any], where: str, path: str = "") -> None:
        self._data = data
        self._where = where
        self._path = path

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, key: str | int) -> Any:
        key = str(key)
        path = f"{self._path}.{key}" if self._path else key
        if key not in self._data:
            raise MissingFigure(
                f"{self._where} has no figure {path!r} (it has: {', '.join(self._data) or 'none'})"
            )
        value = self._data[key]
        return Figures(value, self._where, path) if isinstance(value, dict) else value

    def __contains__(self, key: object) -> bool:
        return str(key) in self._data

    def _scalars(self) -> list[tuple[str, Any]]:
        """(dotted name, value) of every figure that is not a dict, depth first."""
        out: list[tuple[str, Any]] = []
        for key, value in self._data.items():
            path = f"{self._path}.{key}" if self._path else key
            if isinstance(value, dict):
                out += Figures(value, self._where, path)._scalars()
            else:
                out.append((path, value))
        return out


@dataclass
class Result:
    """One results file."""

    path: Path
    name: str
    title: str
    command: str
    commit: str
    date: str
    cpu_count: int | None
    cpu: str | None  # model name and VNNI; None in results recorded before it was kept
    load_start: float | None
    load_end: float | None
    figures: Figures
    tables: list[dict[str, Any]]
    notes: str = ""
    plots: list[str] = field(default_factory=list)

    def table(self, title: str) -> dict[str, Any]:
        for t in self.tables:
            if t["title"] == title:
                return t
        have = "; ".join(repr(t["title"]) for t in self.tables) or "none"
        raise MissingFigure(f"{self.shown} has no table {title!r} (it has: {have})")

    @property
    def shown(self) -> str:
        return str(self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path)

    def figure_rows(self) -> list[tuple[str, Any]]:
        return self.figures._scalars()


def load_result(path: Path) -> Result:
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BenchmarkError(f"{shown}: not a results file ({e})") from None
    if not isinstance(data, dict):
        raise BenchmarkError(f"{shown}: not a results file (a JSON object is expected)")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise BenchmarkError(f"{shown}: lacks {', '.join(missing)} (write it with record())")
    if data["name"] != path.stem:
        raise BenchmarkError(f"{shown}: its name is {data['name']!r}, not {path.stem!r}")
    if not isinstance(data["figures"], dict):
        raise BenchmarkError(f"{shown}: figures must be an object")
    for t in data["tables"]:
        if not {"title", "columns", "rows"} <= set(t):
            raise BenchmarkError(f"{shown}: table {t.get('title')!r} lacks title, columns or rows")
        for row in t["rows"]:
            if len(row) != len(t["columns"]):
                raise BenchmarkError(
                    f"{shown}: table {t['title']!r} has a row of {len(row)} cells, "
                    f"not {len(t['columns'])}"
                )
    for plot in data.get("plots") or []:
        if Path(plot).is_absolute() or ".." in Path(plot).parts or not (ROOT / plot).is_file():
            raise BenchmarkError(f"{shown}: plot {plot!r} is not a file in the repository")

    def one_minute(key: str) -> float | None:
        values = data.get(key) or []
        return values[0] if values else None

    return Result(
        path=path,
        name=data["name"],
        title=data["title"],
        command=data["command"],
        commit=data["commit"],
        date=data["date"],
        cpu_count=data.get("cpu_count"),
        cpu=data.get("cpu"),
        load_start=one_minute("load_average_start"),
        load_end=one_minute("load_average_end"),
        figures=Figures(data["figures"], str(shown)),
        tables=data["tables"],
        notes=data.get("notes") or "",
        plots=list(data.get("plots") or []),
    )


def load_results(folder: Path) -> dict[str, Result]:
    return {p.stem: load_result(p) for p in sorted(folder.glob("*.json"))}


# ---- rendering ----------------------------------------------------------------------------


def render(results_dir: Path = RESULTS, template: Path = TEMPLATE) -> str:
    results = load_results(results_dir)
    claimed: set[str] = set()

    def claim(name: str) -> str:
        claimed.add(name)
        return ""

    def routing() -> list[Result]:
        names = [n for n in ROUTING_ORDER if n in results]
        names += sorted(n for n in results if n.startswith("routing_") and n not in names)
        return [results[n] for n in names]

    def unclaimed() -> list[Result]:
        """Results no section of the template rendered (new bench scripts): shown generically."""
        return [r for n, r in results.items() if n not in claimed and not n.startswith("routing_")]

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template.parent),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(num=num, pct=pct, fmt=fmt, signed=signed, table=markdown_table)
    env.globals.update(
        results=results, claim=claim, routing=routing, unclaimed=unclaimed, is_number=_is_number
    )
    try:
        text = env.get_template(template.name).render()
    except MissingFigure as e:
        raise BenchmarkError(
            f"{e}; {template.name} names it{_template_line(e, template)}"
        ) from None
    except jinja2.TemplateError as e:
        raise BenchmarkError(f"{template.name}: {e}{_template_line(e, template)}") from None
    # One blank line between blocks, whatever the template's whitespace.
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip() + "\n"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _template_line(error: Exception, template: Path) -> str:
    lineno = getattr(error, "lineno", None)
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename and Path(frame.filename).name == template.name:
            lineno = frame.lineno
    return f" at line {lineno}" if lineno else ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of results files")
    ap.add_argument("--template", type=Path, default=TEMPLATE)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="compare with --out, write nothing")
    args = ap.parse_args(argv)
    try:
        text = render(args.results, args.template)
    except BenchmarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(f"{args.out.name} is not what the results render to: run make benchmarks")
            return 1
        print(f"{args.out.name} is up to date")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} from {len(load_results(args.results))} results files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
