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

from router.core.config import ConfigError, load_config, load_policies
from router.core.data import DataError, domain_names, read_many, write_jsonl
from router.core.request import RequestError
from router.core.scorer import ScorerError
from router.core.verifier import VerifierError
from router.evaluation.importers import IMPORTERS, import_dataset

app = typer.Typer(
    help="A small-model-first LLM router.", no_args_is_help=True, add_completion=False
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
    from router.sdk.router import Router

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
    t.add_row("escalation gain", f"{d.gain:.3f}" if d.gain is not None else "-")
    for m, p in d.success.items():
        t.add_row(f"p(success) {m}", f"{p:.3f}")
    t.add_row("reason", d.reason)
    t.add_row("fallbacks", " → ".join(d.fallbacks) or "-")
    t.add_row(
        "cost estimate", f"${d.cost_estimate:.6f} (large model: ${d.large_cost_estimate:.6f})"
    )
    t.add_row("routing time", f"{d.routing_ms:.1f} ms")
    console.print(t)


@app.command()
@_friendly
def train(
    data: Annotated[list[Path], typer.Argument(help="routing dataset(s), JSONL")],
    out: Annotated[Path, typer.Option(help="directory to write the scorer to")],
    config: ConfigOpt = Path("config.yaml"),
    c: Annotated[float, typer.Option("--C", help="inverse regularisation strength")] = 1.0,
    hold_out: Annotated[
        float,
        typer.Option(
            help="leave out this share of the prompts (data.held_out), to verify policies on"
        ),
    ] = 0.0,
) -> None:
    """Train a scorer (domain, difficulty and success heads) on routing data."""
    from router.core.data import held_out
    from router.core.encoder import load_encoder
    from router.core.scorer import Scorer
    from router.evaluation.train import embed_examples

    if not 0 <= hold_out < 1:
        raise DataError(f"--hold-out {hold_out}: a share in [0, 1)")
    cfg = load_config(config)
    examples = read_many(data)
    err.print(f"{len(examples)} examples from {len(data)} file(s)")
    if hold_out:
        examples = [ex for ex in examples if not held_out(ex, hold_out)]
        err.print(f"{len(examples)} left after holding out {hold_out:.0%} of the prompts")
    with err.status("loading encoder…"):
        enc = load_encoder(
            cfg.encoder.name, cfg.encoder.max_tokens, cache_size=0, threads=BATCH_THREADS
        )
    bar, advance = progress_bar(f"embedding ({enc.identity})", len(examples))
    with bar:
        X = embed_examples(enc, examples, advance)
    with err.status("fitting heads…") as status:
        scorer = Scorer(C=c).fit(
            X, examples, enc.identity, progress=lambda m: status.update(f"fitting {m}…")
        )
    scorer.save(out, extra={"trained_on": [p.name for p in data], "held_out_share": hold_out})
    console.print(
        f"wrote {out}: {len(scorer.domains_)} domains, success heads for {len(scorer.models_)} "
        f"models, encoder {scorer.encoder_identity_}"
    )


@app.command("train-verifier")
@_friendly
def train_verifier_(
    data: Annotated[list[Path], typer.Argument(help="routing dataset(s) with `answers`, JSONL")],
    out: Annotated[Path, typer.Option(help="directory to write the verifier to")],
    models: Annotated[
        str,
        typer.Option(
            help="whose answers to learn from: cheap (each row's cheap models), all, "
            "or comma-separated names"
        ),
    ] = "cheap",
    cv: Annotated[int, typer.Option(help="measure AUROC with K-fold CV first (0: skip)")] = 5,
    c: Annotated[float, typer.Option("--C", help="inverse regularisation strength")] = 0.5,
) -> None:
    """Train the cascade's answer verifier: P(answer right) from prompt + answer (docs/cascades.md)."""
    from router.core.verifier import train_verifier

    chosen = models if models in ("cheap", "all") else [m.strip() for m in models.split(",")]
    examples = read_many(data)
    with err.status("training the verifier…") as status:
        _, report = train_verifier(
            examples, out, chosen, cv=cv, C=c, log=lambda m: status.update(m)
        )
    auc = report.get("cv_auroc")
    console.print(
        f"wrote {out}: {report['answers']} answers, {report['with_logprobs']} with logprobs"
        + (f", {cv}-fold CV AUROC {auc:.3f}" if auc is not None else "")
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
        if esc.max_gain is not None:
            rule += f" or gain>{esc.max_gain}"
        if esc.min_success is not None:
            rule += f" or p(success)<{esc.min_success}"
        if esc.cost_weight is not None:
            rule = f"argmax p(success) − {esc.cost_weight} × relative cost"
        specs = ", ".join(f"{d}: {'/'.join(ms)}" for d, ms in p.domains.items())
        mark = " (default)" if name == cfg.default_policy else ""
        t.add_row(name + mark, ", ".join(p.default), specs, ", ".join(p.large), rule, p.description)
    console.print(t)


@app.command()
@_friendly
def models(config: ConfigOpt = Path("config.yaml")) -> None:
    """List the model catalogue."""
    cfg = load_config(config)
    t = Table(
        "name", "tier", "litellm model", "$/M in", "$/M out", "context", "capabilities", "key"
    )
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


def _parse_prices(price: list[str]) -> dict[str, float]:
    out = {}
    for item in price:
        name, sep, value = item.rpartition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise DataError(f"--price {item!r}: expected MODEL=USD_PER_CALL")
    return out


def _fmt(v, kind: str = "") -> str:
    if v is None:
        return "-"
    if kind == "pct":
        return f"{v:.1%}"
    return f"{v:.3f}"


@app.command("eval")
@_friendly
def eval_(
    data: Annotated[list[Path], typer.Argument(help="routing dataset(s), JSONL")],
    scorer: Annotated[Path | None, typer.Option(help="scorer directory (default: shipped)")] = None,
    policy: Annotated[
        str | None, typer.Option(help="policy whose escalation settings apply")
    ] = None,
    cv: Annotated[int | None, typer.Option(help="K-fold cross-validation by prompt text")] = None,
    group_by: Annotated[str | None, typer.Option(help="'source': leave one source out")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write every figure here")] = None,
    plot_out: Annotated[
        Path | None, typer.Option("--plot", help="write the curves to a PNG")
    ] = None,
    price: Annotated[
        list[str], typer.Option(help="MODEL=USD per call, for data without costs")
    ] = [],  # noqa: B006
    source: Annotated[
        list[str], typer.Option(help="only rows whose source starts with this (repeatable)")
    ] = [],  # noqa: B006
    held_out: Annotated[
        bool,
        typer.Option("--held-out", help="only rows the scorer was not trained on (needs no --cv)"),
    ] = False,
    cascade: Annotated[
        bool,
        typer.Option(
            "--cascade",
            help="also the cascade and the hybrid (docs/cascades.md): rows need answers",
        ),
    ] = False,
    band: Annotated[
        float | None,
        typer.Option(help="--cascade: the hybrid band (default: the policy's, else 0.2)"),
    ] = None,
    verifier: Annotated[
        Path | None,
        typer.Option(help="--cascade without --cv: verifier directory (default: shipped)"),
    ] = None,
    config: ConfigOpt = Path("config.yaml"),
) -> None:
    """Cost-quality curves and metrics of the router and baselines on routing data."""
    import json

    from router.core.encoder import load_encoder
    from router.core.scorer import Scorer
    from router.evaluation.evaluate import EvalData, evaluate, plot, training_overlap
    from router.evaluation.metrics import covers_all_shares
    from router.evaluation.train import embed_examples
    from router.sdk.router import default_scorer_path

    if cv is not None and group_by is not None:
        raise DataError("use either --cv or --group-by, not both")
    if group_by not in (None, "source"):
        raise DataError(f"--group-by {group_by!r}: only 'source' is supported")
    if cv is not None and cv < 2:
        raise DataError("--cv must be at least 2")
    if held_out and (cv is not None or group_by is not None):
        raise DataError("--held-out evaluates the given scorer as it is: not with --cv/--group-by")
    cfg = load_config(config)
    pol = None
    if policy is not None:
        pol = load_policies(config.resolve().parent / cfg.policies_dir, cfg, domain_names()).get(
            policy
        )
        if pol is None:
            raise ConfigError(config, "policy", f"unknown policy {policy!r}")
    rows = read_many(data)
    if source:
        rows = [r for r in rows if any(r.source.startswith(p) for p in source)]
        if not rows:
            raise DataError(f"no rows with a source starting with {source}")
    enc = load_encoder(
        cfg.encoder.name, cfg.encoder.max_tokens, cache_size=0, threads=BATCH_THREADS
    )
    sc = None
    if cv is None and group_by is None:
        base = config.resolve().parent
        path = scorer or (default_scorer_path() if cfg.scorer == "default" else base / cfg.scorer)
        sc = Scorer.load(path, encoder_identity=enc.identity)
        seen = sc.trained_on(rows)
        if held_out:
            if seen is None:
                raise DataError(f"--held-out: {path} recorded no training prompts; retrain it")
            rows = [r for r, s in zip(rows, seen, strict=True) if not s]
            if not rows:
                raise DataError("--held-out: the scorer was trained on every row")
            err.print(f"--held-out: {int(seen.sum())} rows the scorer saw left out")
        elif msg := training_overlap(sc, rows).warning():
            err.print(f"[yellow]warning:[/yellow] {msg}", highlight=False)
    ev = EvalData.from_examples(rows, _parse_prices(price))
    if ev.dropped:
        err.print(
            f"note: {ev.dropped} rows lack a score for some model and are left out", highlight=False
        )
    rows = ev.examples
    bar, advance = progress_bar(f"embedding ({enc.identity})", len(rows))
    with bar:
        X = embed_examples(enc, rows, advance)
    with err.status("evaluating…") as status:
        extra = None
        if cascade:
            from router.core.verifier import AnswerVerifier
            from router.evaluation.evaluate_cascade import DEFAULT_BAND, CascadeCurves

            if band is None:
                band = pol.cascade.band if pol is not None and pol.cascade else DEFAULT_BAND
            extra = CascadeCurves(
                band=band,
                verifier=AnswerVerifier.load(verifier) if verifier is not None else None,
                log=lambda m: status.update(f"training {m}…"),
            )
        report = evaluate(
            ev,
            X,
            scorer=sc,
            encoder_identity=enc.identity,
            policy=pol,
            cv=cv,
            group_by_source=group_by == "source",
            log=lambda m: status.update(f"training {m}…"),
            extra=extra,
        )
    out = report.to_json()
    # Piped output gets a wide table rather than columns squeezed to 80 characters.
    wide = console if console.is_terminal else Console(width=220)
    t = Table(title=f"{len(rows)} prompts, {out['mode']}; sweep of {out['sweep']}")
    cols = ["router / baseline", "$/1k (min-max)", "best quality"]
    cols += ["apgr", "cpt_50", "cpt_80", "cpt_95"] if ev.two_tier else []
    cols += [
        "aiq",
        "cost_reduction_at_95",
        "quality_at_best_single_cost",
        "cost_to_match_best_single",
        "oracle_gain_captured",
    ]
    for c in cols:
        t.add_column(c, justify="right" if c != cols[0] else "left")
    partial: list[str] = []
    for cv_ in report.curves:
        m = cv_.metrics
        cost = (
            f"{cv_.cost.min() * 1000:.4f}-{cv_.cost.max() * 1000:.4f}"
            if len(cv_.cost) > 1
            else f"{cv_.cost[0] * 1000:.4f}"
        )
        row = [cv_.name, cost, _fmt(float(cv_.quality.max()))]
        if ev.two_tier:
            # "*": computed on the large-call shares the curve covers (see the note below).
            lo, hi = m.get("large_share_from"), m.get("large_share_to")
            span = None if lo is None else (lo, hi)
            mark = "*" if span and not covers_all_shares(span) else ""
            if mark:
                partial.append(f"{cv_.name} {span[0]:.1%}-{span[1]:.1%}")
            row += [_fmt(m["apgr"]) + mark]
            row += [_fmt(m[f"cpt_{p}"], "pct") + mark for p in (50, 80, 95)]
        row += [
            _fmt(m["aiq"]),
            _fmt(m["cost_reduction_at_95"], "pct"),
            _fmt(m["quality_at_best_single_cost"]),
            _fmt(m["cost_to_match_best_single"], "pct"),
            _fmt(m["oracle_gain_captured"], "pct"),
        ]
        t.add_row(*row)
    wide.print(t)
    if partial:
        wide.print(
            "* APGR and CPT on the large-call shares the curve covers, not extrapolated: "
            + "; ".join(partial)
        )
    if json_out:
        json_out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
        console.print(f"wrote {json_out}")
    if plot_out:
        plot(report, str(plot_out))
        console.print(f"wrote {plot_out}")


@app.command()
@_friendly
def calibrate(
    policy: Annotated[str, typer.Option(help="policy to tune")],
    data: Annotated[list[Path], typer.Option(help="routing dataset(s), JSONL")],
    target: Annotated[
        str, typer.Option(help="large-share=0.3 | quality=0.95 (of all-large) | cost-per-1k=USD")
    ],
    out: Annotated[
        Path | None, typer.Option(help="policy file to write (default: in place)")
    ] = None,
    scorer: Annotated[
        Path | None, typer.Option(help="scorer directory (default: the config's)")
    ] = None,
    cascade: Annotated[
        bool,
        typer.Option("--cascade", help="tune the policy's cascade threshold and hybrid band"),
    ] = False,
    config: ConfigOpt = Path("config.yaml"),
) -> None:
    """Find the escalation threshold that meets a target and write it into a policy file."""
    from router.evaluation.calibrate import CalibrationError, with_scorer, write_policy
    from router.evaluation.calibrate import calibrate as run_calibration
    from router.evaluation.evaluate import training_overlap
    from router.evaluation.train import embed_examples

    router = _load_router(config)
    if scorer is not None:
        router = with_scorer(router, scorer)
    rows = read_many(data)
    if msg := training_overlap(router.scorer, rows).warning("expected figures"):
        err.print(f"[yellow]warning:[/yellow] {msg}", highlight=False)
    bar, advance = progress_bar(f"embedding ({router.encoder.identity})", len(rows))
    with bar:
        X = embed_examples(router.encoder, rows, advance)
    if cascade:
        return _calibrate_cascade(router, policy, rows, X, target, out, config)
    try:
        cal = run_calibration(router, policy, rows, target, X=X)
    except CalibrationError as e:
        raise DataError(str(e)) from None
    cfg = router.config
    dest = out or (config.resolve().parent / cfg.policies_dir / f"{policy}.yaml")
    write_policy(cal, dest)
    # Prove the written file is valid and routes.
    from router.core.config import load_policy

    load_policy(dest, cfg, router.scorer.domains_)
    p = cal.point
    console.print(f"{cal.field} = {p.param:.4f}  (target {cal.target})")
    console.print(
        f"expected on {len(rows)} prompts: quality {p.quality:.4f} "
        f"({p.quality / cal.all_large_quality:.1%} of all-large {cal.all_large_quality:.4f}), "
        f"cost ${p.cost_per_1k:.4f} per 1k requests (all-large ${cal.all_large_cost_per_1k:.4f}), "
        f"large-model share {p.large_share:.1%}"
    )
    console.print(f"wrote {dest}")


def _calibrate_cascade(router, policy: str, rows, X, target: str, out, config: Path) -> None:
    """`router calibrate --cascade`: the cheapest cascade threshold and band meeting a target."""
    import shutil

    from router.core.config import load_policy
    from router.evaluation.calibrate import CalibrationError, parse_target
    from router.evaluation.evaluate_cascade import (
        calibrate_points,
        live_inputs,
        write_cascade_settings,
    )

    try:
        goal = parse_target(target)
    except CalibrationError as e:
        raise DataError(str(e)) from None
    x = live_inputs(router, policy, rows, X)
    point, tried = calibrate_points(x, goal)
    src = config.resolve().parent / router.config.policies_dir / f"{policy}.yaml"
    dest = out or src
    if dest != src:
        shutil.copyfile(src, dest)
    write_cascade_settings(dest, point.threshold, point.band)
    load_policy(dest, router.config, router.scorer.domains_)  # the written file is valid
    band = "none (every request cascaded)" if point.band is None else f"{point.band:g}"
    console.print(
        f"cascade.threshold = {point.threshold:.4f}, cascade.band = {band}  ({tried} tried)"
    )
    console.print(
        f"expected on {int(x.has_answer.sum())} answered of {len(x.cheap_score)} prompts: quality "
        f"{point.quality:.4f} (all-large {x.large_score.mean():.4f}), cost "
        f"${point.cost * 1000:.4f} per 1k requests (all-large ${x.large_cost.mean() * 1000:.4f}), "
        f"cost-equivalent large share {point.share:.1%}"
    )
    console.print(f"wrote {dest}")


@app.command("profile")
@_friendly
def profile_(
    data: Annotated[list[Path], typer.Argument(help="labelled routing data, JSONL")],
    model: Annotated[list[str], typer.Option(help="catalogue model to profile (repeatable)")],
    out: Annotated[Path, typer.Option(help="routing data to write (merged if it exists)")],
    limit: Annotated[int | None, typer.Option(help="at most this many rows")] = None,
    per_source: Annotated[int | None, typer.Option(help="at most this many rows a source")] = None,
    source: Annotated[
        list[str], typer.Option(help="only rows whose source starts with this (repeatable)")
    ] = [],  # noqa: B006
    concurrency: Annotated[int, typer.Option(help="calls in flight")] = 1,
    allow_code_exec: Annotated[
        bool, typer.Option(help="run generated code against the asserts (in the sandbox)")
    ] = False,
    judge: Annotated[
        str | None, typer.Option(help="catalogue model that grades rows without a metric")
    ] = None,
    judge_against: Annotated[
        str | None, typer.Option(help="pairwise judging against this model's stored answers")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="answer budget for every task (default: per task)")
    ] = None,
    retries: Annotated[int, typer.Option(help="retries of a failed call")] = 3,
    threads: Annotated[int, typer.Option(help="threads of a local model's server")] = 1,
    config: ConfigOpt = Path("config.yaml"),
) -> None:
    """Run catalogue models over labelled prompts, grade them, merge the columns into OUT."""
    from router.evaluation.profile import profile as run_profile

    cfg = load_config(config)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
    )
    task = bar.add_task("profiling", total=None)
    # Piped to a log (a background run), the bar does not redraw: print a line every 20 results.
    state = {"done": 0, "total": 0, "t0": 0.0}

    def on_total(n: int) -> None:
        import time

        state.update(total=n, t0=time.monotonic())
        bar.update(task, total=n)
        if not err.is_terminal:
            err.print(f"profiling: {n} calls to make", highlight=False)

    def advance(n: int) -> None:
        import time

        bar.advance(task, n)
        state["done"] += n
        if not err.is_terminal and (state["done"] % 20 == 0 or state["done"] == state["total"]):
            el = time.monotonic() - state["t0"]
            eta = el / state["done"] * (state["total"] - state["done"])
            err.print(
                f"profiling: {state['done']}/{state['total']} in {el / 60:.1f} min, "
                f"{60 * state['done'] / el:.1f}/min, ETA {eta / 60:.0f} min",
                highlight=False,
            )

    with bar:
        report = run_profile(
            data,
            model,
            out,
            cfg,
            config.resolve().parent,
            limit=limit,
            per_source=per_source,
            sources=source,
            concurrency=concurrency,
            allow_code_exec=allow_code_exec,
            judge=judge,
            judge_against=judge_against,
            max_tokens=max_tokens,
            retries=retries,
            threads=threads,
            on_total=on_total,
            progress=advance,
            log=lambda m: err.print(m, highlight=False, markup=False),
        )
    wide = console if console.is_terminal else Console(width=160)
    t = Table(title=f"profile: {out}")
    for c in ("model", "source", "n", "accuracy", "tokens/s", "prompts/min", "cost $", "failed"):
        t.add_column(c, justify="left" if c in ("model", "source") else "right")
    for r in report.summary():
        t.add_row(
            r["model"],
            r["source"],
            str(r["n"]),
            _fmt(r["accuracy"]),
            f"{r['tokens_per_s']:.1f}" if r["tokens_per_s"] else "-",
            f"{r['prompts_per_min']:.1f}" if r["prompts_per_min"] else "-",
            f"{r['cost']:.6f}",
            str(r["failed"]),
        )
    wide.print(t)
    console.print(
        f"{len(report.results) - report.already_done} results this run, "
        f"{report.already_done} already done, {report.failed} failed (a rerun retries them), "
        f"{report.skipped_no_reference} rows without a reference skipped; "
        f"judge cost ${report.judge_cost:.6f}; {report.wall_s:.0f} s"
    )


@app.command()
@_friendly
def serve(
    config: ConfigOpt = Path("config.yaml"),
    host: Annotated[str | None, typer.Option(help="default: server.host, 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default: server.port, 8000")] = None,
    workers: Annotated[
        int,
        typer.Option(min=1, help="worker processes on the one port; /metrics sums them"),
    ] = 1,
) -> None:
    """Run the OpenAI-compatible proxy (POST /v1/chat/completions with model "router")."""
    from router.server.run import serve as run_server

    run_server(config, host, port, workers)


@app.command()
@_friendly
def stats(
    db: Annotated[
        str, typer.Option(help="decision log: SQLite file or postgresql:// URL")
    ] = "decisions.db",
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """Summarise the decision log: share per model, escalations, savings, latency."""
    from router.serving.decision_log import summarise

    s = summarise(db)
    if as_json:
        import json

        print(json.dumps(s.to_dict(), indent=2))
        return
    t = Table(show_header=False, box=None)
    for label, value in s.rows():
        t.add_row(label, value)
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
    console.print(
        f"wrote {n} rows to {out} (sources: {', '.join(sources)}; models: {len(models_)})"
    )


@data_app.command("show")
@_friendly
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
@_friendly
def data_from_log(
    log: Annotated[str, typer.Argument(help="decision log: SQLite file or postgresql:// URL")],
    out: Annotated[Path, typer.Option(help="JSONL file to write")],
    config: ConfigOpt = Path("config.yaml"),
) -> None:
    """Export the requests that have outcomes (feedback, shadow) as routing data. Rows whose
    text was not stored carry their routing embedding and its encoder instead."""
    from router.learning.retrain import logged_examples

    rows = logged_examples(log, load_config(config))
    n = write_jsonl(rows, out)
    text = sum(ex.prompt is not None for ex in rows)
    console.print(f"wrote {n} rows to {out} ({text} with text, {n - text} embedding only)")


@app.command()
@_friendly
def retrain(
    config: ConfigOpt = Path("config.yaml"),
    data: Annotated[
        list[Path],
        typer.Option(help="the old training data (default: what the serving scorer names)"),
    ] = [],  # noqa: B006 - typer needs a literal default
    test_share: Annotated[float, typer.Option(help="newest share of outcomes held out")] = 0.3,
    tolerance: Annotated[float, typer.Option(help="how much worse still passes the gate")] = 0.0,
    min_new: Annotated[int, typer.Option(help="outcomes needed before retraining")] = 20,
    new_weight: Annotated[int, typer.Option(help="how many old rows a new outcome counts as")] = 5,
    rollback: Annotated[bool, typer.Option(help="serve the previous version again")] = False,
    reload: Annotated[
        str | None, typer.Option(help="proxy base URL to POST /admin/reload after promoting")
    ] = None,
    admin_key_env: Annotated[str, typer.Option(help="env var with the admin key")] = (
        "ROUTER_ADMIN_KEY"
    ),
) -> None:
    """Retrain the scorer on the old data plus the decision log's outcomes; promote the
    candidate only if it is not worse on the newest held-out outcomes (docs/learning.md)."""
    from router.learning.retrain import reload_server
    from router.learning.retrain import retrain as run
    from router.learning.retrain import rollback as roll_back

    if rollback:
        version = roll_back(config)
        console.print(f"serving {version} again (scorers/current)")
        promoted = True
    else:
        with err.status("retraining…") as status:
            report = run(
                config,
                data,
                test_share=test_share,
                tolerance=tolerance,
                min_new=min_new,
                new_weight=new_weight,
                say=lambda m: status.update(m),
            )
        console.print(report.to_markdown())
        promoted = report.promoted
    if reload and promoted:
        console.print(reload_server(reload, os.environ.get(admin_key_env)))
    if not promoted:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
