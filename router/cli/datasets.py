"""`router data ...`: import, show and export routing datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from router.cli.main import (
    ConfigOpt,
    console,
    data_app,
    err,
    friendly,
)
from router.core.config import load_config
from router.core.data import read_many, write_jsonl
from router.core.outputs import check_output_file
from router.evaluation.importers import IMPORTERS, import_dataset


@data_app.command("import")
@friendly
def data_import(
    fmt: Annotated[str, typer.Argument(help=f"one of: {', '.join(sorted(IMPORTERS))}")],
    path: Annotated[Path, typer.Argument(help="the source files (folder or file)")],
    out: Annotated[Path, typer.Option(help="JSONL file to write")],
) -> None:
    """Convert a public routing dataset into the router's JSONL format."""
    check_output_file(out, "--out")
    with err.status(f"importing {fmt} from {path}…"):
        rows = import_dataset(fmt, path)
    n = write_jsonl(rows, out)
    sources = sorted({r.source.split("/")[0] for r in rows})
    models_ = sorted({m for r in rows for m in r.scores})
    console.print(
        f"wrote {n} rows to {out} (sources: {', '.join(sources)}; models: {len(models_)})"
    )


@data_app.command("show")
@friendly
def data_show(
    data: Annotated[list[Path], typer.Argument(help="routing dataset(s), JSONL")],
) -> None:
    """Summarise a routing dataset: rows, sources, each model's mean score."""
    rows = read_many(data)
    by_model: dict[str, list[float]] = {}
    for r in rows:
        for m, s in r.scores.items():
            by_model.setdefault(m, []).append(s)
    t = Table("model", "rows", "mean score")
    for m, s in sorted(by_model.items()):
        t.add_row(m, str(len(s)), f"{sum(s) / len(s):.3f}")
    console.print(f"{len(rows)} rows")
    console.print(t)


@data_app.command("from-log")
@friendly
def data_from_log(
    log: Annotated[str, typer.Argument(help="decision log: SQLite file or postgresql:// URL")],
    out: Annotated[Path, typer.Option(help="JSONL file to write")],
    config: ConfigOpt = Path("config.yaml"),
) -> None:
    """Export the requests that have outcomes (feedback, shadow) as routing data. Rows whose
    text was not stored carry their routing embedding and its encoder instead."""
    from router.learning.retrain import logged_examples

    check_output_file(out, "--out")
    rows = logged_examples(log, load_config(config))
    n = write_jsonl(rows, out)
    text = sum(ex.prompt is not None for ex in rows)
    console.print(f"wrote {n} rows to {out} ({text} with text, {n - text} embedding only)")
