"""Commands that measure: eval and profile."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from router.cli.main import (
    BATCH_THREADS,
    ConfigOpt,
    app,
    console,
    err,
    friendly,
    progress_bar,
    scorer_dir,
)
from router.core.config import ConfigError, load_config, load_policies
from router.core.data import DataError, domain_names, read_many
from router.core.outputs import check_output_file


def _parse_prices(price: list[str]) -> dict[str, float]:
    out = {}
    for item in price:
        name, sep, value = item.rpartition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        # float() also reads "nan", "inf" and "-1", which would poison every figure.
        if not sep or not name or not 0 <= out.get(name, -1) < float("inf"):
            raise DataError(f"--price {item!r}: expected MODEL=USD_PER_CALL, a non-negative number")
    return out


def _fmt(v, kind: str = "") -> str:
    if v is None:
        return "-"
    if kind == "pct":
        return f"{v:.1%}"
    return f"{v:.3f}"


@app.command("eval")
@friendly
def eval_(
    data: Annotated[list[Path], typer.Argument(help="routing dataset(s), JSONL")],
    scorer: Annotated[
        Path | None,
        typer.Option(help="scorer directory (default: the config's; `default`: the shipped one)"),
    ] = None,
    policy: Annotated[
        str | None, typer.Option(help="policy whose escalation settings apply")
    ] = None,
    cv: Annotated[int | None, typer.Option(help="K-fold cross-validation by prompt text")] = None,
    group_by: Annotated[
        str | None,
        typer.Option(
            help="leave one out: 'source' (its first part), 'task' (dataset), or 'model' "
            "(the answering cheap model, rows pooled by scripts/two_tier_rows.py)"
        ),
    ] = None,
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
        typer.Option(
            min=0, max=1, help="--cascade: the hybrid band (default: the policy's, else 0.2)"
        ),
    ] = None,
    verifier: Annotated[
        Path | None,
        typer.Option(help="--cascade without --cv: verifier directory (default: shipped)"),
    ] = None,
    train_also: Annotated[
        list[Path],
        typer.Option(
            help="--cv/--group-by: more routing data that only trains (never its test "
            "prompts; leaving a source out, never its task)"
        ),
    ] = [],  # noqa: B006
    shared_dims: Annotated[
        int | None,
        typer.Option(
            help="--cv/--group-by: the trained scorer's shared-difficulty traits (0: off)"
        ),
    ] = None,
    config: ConfigOpt = Path("config.yaml"),
) -> None:
    """Cost-quality curves and metrics of the router and baselines on routing data."""
    import json

    from router.core.encoder import load_encoder
    from router.core.scorer import Scorer
    from router.evaluation.evaluate import (
        GROUPINGS,
        SOURCE_RATES,
        EvalData,
        TrainAlso,
        evaluate,
        group_labels,
        plot,
        training_overlap,
    )
    from router.evaluation.metrics import covers_all_shares
    from router.evaluation.train import embed_examples

    if cv is not None and group_by is not None:
        raise DataError("use either --cv or --group-by, not both")
    if group_by not in (None, *GROUPINGS):
        raise DataError(f"--group-by {group_by!r}: one of {', '.join(GROUPINGS)}")
    if cv is not None and cv < 2:
        raise DataError("--cv must be at least 2")
    if held_out and (cv is not None or group_by is not None):
        raise DataError("--held-out evaluates the given scorer as it is: not with --cv/--group-by")
    if (train_also or shared_dims is not None) and cv is None and group_by is None:
        raise DataError(
            "--train-also and --shared-dims train a scorer: use them with --cv or --group-by"
        )
    if shared_dims is not None and shared_dims < 0:
        raise DataError(f"--shared-dims {shared_dims}: 0 (off) or more")
    if not cascade and (band is not None or verifier is not None):
        raise DataError("--band and --verifier are the cascade's: use them with --cascade")
    if json_out is not None:
        check_output_file(json_out, "--json")
    if plot_out is not None:
        check_output_file(plot_out, "--plot")
    prices = _parse_prices(price)
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
    # Loaded before the embedding: a wrong --verifier is said before minutes of it.
    given = None
    if verifier is not None:
        from router.core.verifier import AnswerVerifier

        given = AnswerVerifier.load(verifier)
    enc = load_encoder(
        cfg.encoder.name, cfg.encoder.max_tokens, cache_size=0, threads=BATCH_THREADS
    )
    sc = None
    if cv is None and group_by is None:
        path = scorer_dir(scorer, cfg.scorer, config)
        sc = Scorer.load(path, encoder_identity=enc.identity)
        if held_out:
            seen = sc.trained_on(rows)
            if seen is None:
                raise DataError(f"--held-out: {path} recorded no training prompts; retrain it")
            rows = [r for r, s in zip(rows, seen, strict=True) if not s]
            if not rows:
                raise DataError("--held-out: the scorer was trained on every row")
            err.print(f"--held-out: {int(seen.sum())} rows the scorer saw left out")
    ev = EvalData.from_examples(rows, prices)
    if note := ev.dropped_note():
        err.print(f"note: {note}", highlight=False)
    rows = ev.examples
    # Of the rows evaluated, not of those read: a new model's profile beside the data it was
    # profiled on leaves most of that data out.
    if sc is not None and not held_out and (msg := training_overlap(sc, rows).warning()):
        err.print(f"[yellow]warning:[/yellow] {msg}", highlight=False)
    headless = [m for m in ev.models if sc is not None and m not in sc.models_]
    if headless and not ev.two_tier:  # N models: compared by their success estimates
        err.print(
            f"note: the scorer has no success estimate of {', '.join(headless)}, so the router "
            "never picks it (router add-model joins a profiled model; --scorer: the one it joined)",
            highlight=False,
            markup=False,
        )
    groups = None if group_by is None else (group_by, group_labels(ev, group_by))
    also = read_many(train_also) if train_also else []
    bar, advance = progress_bar(f"embedding ({enc.identity})", len(rows) + len(also))
    with bar:
        X = embed_examples(enc, rows, advance)
        also_X = embed_examples(enc, also, advance) if also else None
    with err.status("evaluating…") as status:
        extra = None
        if cascade:
            from router.core.verifier import load_verifier
            from router.evaluation.evaluate_cascade import (
                DEFAULT_BAND,
                CascadeCurves,
                verifier_overlap,
            )

            if band is None:
                band = pol.cascade.band if pol is not None and pol.cascade else DEFAULT_BAND
            if cv is None and group_by is None:
                as_is = given or load_verifier("default")
                if msg := verifier_overlap(as_is, rows):
                    err.print(f"[yellow]warning:[/yellow] {msg}", highlight=False)
            extra = CascadeCurves(
                band=band, verifier=given, log=lambda m: status.update(f"training {m}…")
            )
        report = evaluate(
            ev,
            X,
            scorer=sc,
            encoder_identity=enc.identity,
            policy=pol,
            cv=cv,
            groups=groups,
            log=lambda m: status.update(f"training {m}…"),
            extra=extra,
            train_also=TrainAlso(also, also_X) if also else None,
            scorer_params=None if shared_dims is None else {"shared_dims": shared_dims or None},
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
    if SOURCE_RATES in out["results"]:
        wide.print(
            f"{SOURCE_RATES}: each test prompt's source's mean outcomes in the training folds. "
            "It reads the source label, which live routing never has: what knowing the task, "
            "and nothing within it, gives (docs/evaluation.md)",
            highlight=False,
        )
    if json_out:
        json_out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
        console.print(f"wrote {json_out}")
    if plot_out:
        plot(report, str(plot_out))
        console.print(f"wrote {plot_out}")


@app.command("profile")
@friendly
def profile_(
    data: Annotated[list[Path], typer.Argument(help="labelled routing data, JSONL")],
    model: Annotated[list[str], typer.Option(help="catalogue model to profile (repeatable)")],
    out: Annotated[Path, typer.Option(help="routing data to write (merged if it exists)")],
    limit: Annotated[int | None, typer.Option(min=1, help="at most this many rows")] = None,
    per_source: Annotated[
        int | None, typer.Option(min=1, help="at most this many rows a source")
    ] = None,
    source: Annotated[
        list[str], typer.Option(help="only rows whose source starts with this (repeatable)")
    ] = [],  # noqa: B006
    concurrency: Annotated[int, typer.Option(min=1, help="calls in flight")] = 1,
    allow_code_exec: Annotated[
        bool, typer.Option(help="run generated code against the asserts (in the sandbox)")
    ] = False,
    allow_weak_sandbox: Annotated[
        bool,
        typer.Option(
            help="--allow-code-exec without namespaces: the in-process audit-hook guard only"
        ),
    ] = False,
    judge: Annotated[
        str | None, typer.Option(help="catalogue model that grades rows without a metric")
    ] = None,
    judge_against: Annotated[
        str | None, typer.Option(help="pairwise judging against this model's stored answers")
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(min=1, help="answer budget for every task (default: per task)"),
    ] = None,
    retries: Annotated[int, typer.Option(min=0, help="retries of a failed call")] = 3,
    threads: Annotated[int, typer.Option(min=1, help="threads of a local model's server")] = 1,
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

    with bar, _stopped_says(out):
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
            allow_weak_sandbox=allow_weak_sandbox,
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
    # Answers whose judging failed are kept: the rerun judges them, the model is not called.
    kept = ""
    if report.ungraded:
        what = "judging" if judge else "grading"
        kept = f"; {report.ungraded} answers await {what}, which it does without calling the model"
    console.print(
        f"{len(report.results) - report.already_done} results this run, "
        f"{report.already_done} already done, "
        f"{report.failed} failed (a rerun retries them{kept}), "
        f"{report.skipped_no_reference} rows without a reference skipped; "
        f"judge cost ${report.judge_cost:.6f}; {report.wall_s:.0f} s"
    )


@contextlib.contextmanager
def _stopped_says(out: Path):
    """Ctrl-C or SIGTERM: what was done is written (run_profile saw to it); say so, and how to
    go on, rather than end in silence (exit 130, as an interrupted command does)."""
    try:
        yield
    except KeyboardInterrupt:
        err.print(
            f"stopped: the results so far are in {out} (and its .journal); run the same "
            "command again to go on from there",
            highlight=False,
        )
        raise typer.Exit(130) from None


@app.command("regrade")
@friendly
def regrade_(
    data: Annotated[Path, typer.Argument(help="a profile file (router profile output), JSONL")],
    out: Annotated[
        Path | None, typer.Option(help="write here instead of rewriting DATA in place")
    ] = None,
    model: Annotated[list[str], typer.Option(help="only this model's answers (repeatable)")] = [],  # noqa: B006
    allow_code_exec: Annotated[
        bool, typer.Option(help="run code rows again in the sandbox (else they are kept)")
    ] = False,
    allow_weak_sandbox: Annotated[
        bool,
        typer.Option(
            help="--allow-code-exec without namespaces: the in-process audit-hook guard only"
        ),
    ] = False,
) -> None:
    """Grade the stored answers of a profile again with the current graders; no model calls."""
    from router.evaluation.regrade import regrade

    if data.is_dir():
        raise DataError(f"{data}: a directory; give the profile file (router profile --out)")
    if not data.is_file():
        raise DataError(f"{data}: no such file")
    # Rewritten by a rename beside it, in place unless --out: before any grading.
    check_output_file(out or data, "--out" if out is not None else "DATA", renamed=True)
    bar, advance = progress_bar("regrading", None)
    with bar:
        report = regrade(
            data,
            out,
            model,
            allow_code_exec=allow_code_exec,
            allow_weak_sandbox=allow_weak_sandbox,
            progress=advance,
            log=lambda m: err.print(m, highlight=False, markup=False),
        )
    wide = console if console.is_terminal else Console(width=160)
    t = Table(title=f"regraded: {out or data}")
    for c in ("model", "metric", "n", "changed", "accuracy before", "accuracy after"):
        t.add_column(c, justify="left" if c in ("model", "metric") else "right")
    for r in report.summary():
        t.add_row(
            r["model"], r["metric"], str(r["n"]), str(r["changed"]),
            _fmt(r["old_accuracy"]), _fmt(r["new_accuracy"]),
        )  # fmt: skip
    wide.print(t)
    console.print(
        f"{sum(r['changed'] for r in report.summary())} scores changed; "
        f"{report.kept_code_rows} code answers kept as they were"
        + ("" if allow_code_exec else " (--allow-code-exec runs them again)")
        + f"; {len(report.errors)} could not be graded"
    )
    for e in report.errors[:10]:
        err.print(f"  {e}", highlight=False, markup=False)
