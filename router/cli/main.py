"""The `router` command's app, consoles and the helpers every command shares."""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from router.core.config import ConfigError
from router.core.data import DataError
from router.core.outputs import check_output_dir
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
)


def friendly(fn):
    """Turn the library's user-facing errors into one red line and exit code 2; so too a file
    the system would not open (an OSError naming it: no such file, permission denied, a
    directory). Ctrl-C ends as "stopped" with 130, as an interrupted command does, not with
    the traceback of wherever it landed."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            fail(str(e))
        except OSError as e:
            if e.filename is not None:
                fail(f"{e.filename}: {e.strerror or e}")
            if not isinstance(e, FileNotFoundError):  # a socket's, say: not the user's input
                raise
            fail(str(e))  # raised with our own words ("no decision log at ...")
        except KeyboardInterrupt:
            err.print("stopped (Ctrl-C)", highlight=False)
            raise typer.Exit(130) from None

    return wrapper


def fail(message: str) -> NoReturn:
    """One red line on stderr and exit code 2 (a usage or input error)."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, markup=True)
    raise typer.Exit(2) from None


def artifact_out(out: Path, kind: str) -> Path:
    """Check `--out` before any work: an artifact (`kind` "scorer" or "verifier", each a
    directory of `<kind>.json` and `weights.npz`) must not clobber another artifact's
    `weights.npz`, and its directory must be one that can be written."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: a file; a {kind} is written as a directory")
    if (out / "weights.npz").exists() and not (out / f"{kind}.json").exists():
        raise DataError(f"--out {out}: holds another artifact's weights.npz, not a {kind}'s")
    return check_output_dir(out, "--out")


def scorer_dir(given: Path | None, scorer: str, config: Path) -> Path:
    """`--scorer` read as the config's `scorer:` is: "default" is the shipped scorer (unless a
    folder of that name is here); none given, the config's own (`scorer`)."""
    from router.core.scorer import configured_scorer_path, default_scorer_path

    if given is None:
        return configured_scorer_path(scorer, config.resolve().parent)
    if str(given) == "default" and not given.exists():
        return default_scorer_path()
    return given


def positive(value: float, option: str) -> float:
    """A strength such as `--C`: a finite number above 0 (sklearn's own error for 0, a
    negative or NaN comes as a traceback, after the embedding)."""
    if not 0 < value < math.inf:
        raise DataError(f"{option} {value:g}: a positive number")
    return value


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
