"""The `router` command's app, consoles and the helpers every command shares."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from router.core.config import ConfigError
from router.core.data import DataError
from router.core.request import RequestError
from router.core.scorer import ScorerError
from router.core.verifier import VerifierError

app = typer.Typer(
    help="A small-model-first LLM router.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
data_app = typer.Typer(help="Routing datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="ROUTER_CONFIG", help="config.yaml to use"),
]
BATCH_THREADS = os.cpu_count() or 1  # training and evaluation embed in big batches
USER_ERRORS = (
    ConfigError,
    DataError,
    RequestError,
    ScorerError,
    VerifierError,
    FileNotFoundError,
)


def friendly(fn):
    """Turn the library's user-facing errors into one red line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, markup=True)
            raise typer.Exit(2) from None

    return wrapper


def scorer_out(out: Path) -> Path:
    """Check `--out` before any work: a scorer is a directory, and writing it must not clobber
    another artifact's `weights.npz` (an answer verifier's, say)."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: a file; a scorer is written as a directory")
    if (out / "weights.npz").exists() and not (out / "scorer.json").exists():
        raise DataError(f"--out {out}: holds another artifact's weights.npz, not a scorer's")
    return out


def progress_bar(description: str, total: int):
    """A rich progress bar; returns (context manager, advance callback)."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    task = bar.add_task(description, total=total)
    return bar, lambda n: bar.advance(task, n)


def load_router(config: Path):
    from router.sdk.router import Router

    with err.status("loading router (encoder + scorer)…"):
        return Router.from_config(config)
