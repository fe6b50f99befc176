"""The `router` command: a thin face over the library."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .config import ConfigError, load_config, load_policies
from .data import DataError, IMPORTERS, domain_names, import_dataset, read_many, write_jsonl
from .request import RequestError
from .scorer import ScorerError

app = typer.Typer(help="A small-model-first LLM router.", no_args_is_help=True, add_completion=False)
data_app = typer.Typer(help="Routing datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="ROUTER_CONFIG", help="config.yaml to use"),
]
USER_ERRORS = (ConfigError, DataError, RequestError, ScorerError, FileNotFoundError)


def _friendly(fn):
    """Turn the library's user-facing errors into one red line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            err.print(f"[red]error:[/red] {e}", highlight=False, markup=True)
            raise typer.Exit(2) from None

    return wrapper


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


def _load_router(config: Path):
    from .router import Router

    with err.status("loading router (encoder + scorer)…"):
        return Router.from_config(config)


@app.command()
@_friendly
def route(
    text: Annotated[str, typer.Argument(help="the prompt to route")],
    policy: Annotated[str | None, typer.Option(help="policy name")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the Decision as JSON")] = False,
    config: ConfigOpt = Path("config.yaml"),
) -> None:
    """Print the routing Decision for TEXT (no model is called)."""
    router = _load_router(config)
    d = router.route(text, policy=policy)
    if as_json:
        print(d.to_json(indent=2, ensure_ascii=False))
        return
    t = Table(show_header=False, box=None)
    t.add_row("model", f"[bold]{d.model}[/bold] ({d.tier})")
    t.add_row("policy", d.policy)
    conf = f" ({d.domain_confidence:.2f})" if d.domain_confidence is not None else ""
    t.add_row("domain", f"{d.domain}{conf}")
    t.add_row("difficulty", f"{d.difficulty:.3f}" if d.difficulty is not None else "-")
    for m, p in d.success.items():
        t.add_row(f"p(success) {m}", f"{p:.3f}")
    t.add_row("reason", d.reason)
    t.add_row("fallbacks", " → ".join(d.fallbacks) or "-")
    t.add_row("cost estimate", f"${d.cost_estimate:.6f} (large model: ${d.large_cost_estimate:.6f})")
    t.add_row("routing time", f"{d.routing_ms:.1f} ms")
    console.print(t)


@app.command()
@_friendly
def train(
    data: Annotated[list[Path], typer.Argument(help="routing dataset(s), JSONL")],
    out: Annotated[Path, typer.Option(help="directory to write the scorer to")],
    config: ConfigOpt = Path("config.yaml"),
    c: Annotated[float, typer.Option("--C", help="inverse regularisation strength")] = 1.0,
) -> None:
    """Train a scorer (domain, difficulty and success heads) on routing data."""
    from .encoder import load_encoder
    from .scorer import Scorer
    from .train import embed_examples

    cfg = load_config(config)
    examples = read_many(data)
    err.print(f"{len(examples)} examples from {len(data)} file(s)")
    with err.status("loading encoder…"):
        enc = load_encoder(cfg.encoder.name, cfg.encoder.max_tokens, cache_size=0)
    bar, advance = progress_bar(f"embedding ({enc.identity})", len(examples))
    with bar:
        X = embed_examples(enc, examples, advance)
    with err.status("fitting heads…") as status:
        scorer = Scorer(C=c).fit(
            X, examples, enc.identity, progress=lambda m: status.update(f"fitting {m}…")
        )
    scorer.save(out, extra={"trained_on": [p.name for p in data]})
    console.print(
        f"wrote {out}: {len(scorer.domains_)} domains, success heads for {len(scorer.models_)} "
        f"models, encoder {scorer.encoder_identity_}"
    )


@app.command()
@_friendly
def policies(config: ConfigOpt = Path("config.yaml")) -> None:
    """List the configured policies."""
    cfg = load_config(config)
    pols = load_policies(config.resolve().parent / cfg.policies_dir, cfg, domain_names())
    t = Table("policy", "cheap default", "specialists", "large", "escalation", "description")
    for name, p in pols.items():
        esc = p.escalation
        rule = f"conf<{esc.min_domain_confidence} or diff>{esc.max_difficulty}"
        if esc.min_success is not None:
            rule += f" or p(success)<{esc.min_success}"
        specs = ", ".join(f"{d}: {'/'.join(ms)}" for d, ms in p.domains.items())
        mark = " (default)" if name == cfg.default_policy else ""
        t.add_row(name + mark, ", ".join(p.default), specs, ", ".join(p.large), rule, p.description)
    console.print(t)


@app.command()
@_friendly
def models(config: ConfigOpt = Path("config.yaml")) -> None:
    """List the model catalogue."""
    cfg = load_config(config)
    t = Table("name", "tier", "litellm model", "$/M in", "$/M out", "context", "capabilities", "key")
    for m in cfg.models:
        key = "-"
        if m.api_key_env:
            key = f"{m.api_key_env} ({'set' if os.environ.get(m.api_key_env) else 'missing'})"
        t.add_row(
            m.name,
            m.tier,
            m.litellm_model,
            f"{m.input_price:g}",
            f"{m.output_price:g}",
            str(m.context_window),
            ",".join(sorted(m.capabilities)),
            key,
        )
    console.print(t)


@data_app.command("import")
@_friendly
def data_import(
    fmt: Annotated[str, typer.Argument(help=f"one of: {', '.join(sorted(IMPORTERS))}")],
    path: Annotated[Path, typer.Argument(help="the source files (folder or file)")],
    out: Annotated[Path, typer.Option(help="JSONL file to write")],
) -> None:
    """Convert a public routing dataset into the router's JSONL format."""
    with err.status(f"importing {fmt} from {path}…"):
        rows = import_dataset(fmt, path)
    n = write_jsonl(rows, out)
    sources = sorted({r.source.split("/")[0] for r in rows})
    models_ = sorted({m for r in rows for m in r.scores})
    console.print(f"wrote {n} rows to {out} (sources: {', '.join(sources)}; models: {len(models_)})")


@data_app.command("show")
@_friendly
def data_show(data: Annotated[list[Path], typer.Argument(help="routing dataset(s), JSONL")]) -> None:
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


if __name__ == "__main__":
    app()
