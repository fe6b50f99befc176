"""Commands that fit artifacts: train, train-verifier, calibrate, retrain."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from router.cli.main import (
    BATCH_THREADS,
    ConfigOpt,
    app,
    artifact_out,
    console,
    err,
    friendly,
    load_router,
    positive,
    progress_bar,
)
from router.core.config import load_config
from router.core.data import DataError, read_many
from router.core.outputs import check_output_file


@app.command()
@friendly
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
    positive(c, "--C")
    artifact_out(out, "scorer")
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
    domains = f"{len(scorer.domains_)} domains"
    if scorer.domain_head_from_:
        domains += f" (no row has a domain label: the {scorer.domain_head_from_}'s head)"
    elif msg := partial_domains(examples, scorer.domains_):
        domains = msg
    console.print(
        f"wrote {out}: {domains}, success heads for {len(scorer.models_)} models, cheap tier "
        f"{', '.join(scorer.cheap_models_)}, encoder {scorer.encoder_identity_}"
    )


def partial_domains(examples, domains: list[str]) -> str | None:
    """What a domain head learned from labels on only some rows, covering only some domains:
    it puts every prompt, the unlabelled rows' too, in one of those (None when not so)."""
    from router.core.data import domain_of

    labels = [domain_of(ex) for ex in examples]
    learned = sorted({d for d in labels if d is not None})
    labelled = sum(d is not None for d in labels)
    if labelled == len(labels) or len(learned) >= len(domains):
        return None
    err.print(
        f"[yellow]warning:[/yellow] only {labelled} of {len(labels)} rows have a domain (their "
        f"'domain', or a 'source' that domains.yaml maps), all in {', '.join(learned)}: the "
        "domain head puts every prompt in one of these. Label every row's domain, or none "
        "(then the shipped scorer's head is used)",
        highlight=False,
    )
    return f"{len(learned)} of {len(domains)} domains learned ({', '.join(learned)})"


@app.command("add-model")
@friendly
def add_model(
    data: Annotated[list[Path], typer.Argument(help="the new model's profiled rows, JSONL")],
    model: Annotated[str, typer.Option(help="the model's name in the data (`scores`)")],
    out: Annotated[Path, typer.Option(help="directory to write the scorer to")],
    scorer: Annotated[
        Path | None, typer.Option(help="scorer to extend (default: the config's)")
    ] = None,
    config: ConfigOpt = Path("config.yaml"),
) -> None:
    """A new model joins the scorer from its profiled rows alone (`router profile`): its
    ability is fitted on the shared difficulty, the prompt side frozen, and its rows correct
    that as far as they show they can be trusted; nothing else retrains."""
    from router.core.encoder import load_encoder
    from router.core.scorer import Scorer, configured_scorer_path
    from router.evaluation.train import embed_examples

    artifact_out(out, "scorer")
    cfg = load_config(config)
    base = scorer or configured_scorer_path(cfg.scorer, config.resolve().parent)
    enc = load_encoder(
        cfg.encoder.name, cfg.encoder.max_tokens, cache_size=0, threads=BATCH_THREADS
    )
    sc = Scorer.load(base, encoder_identity=enc.identity)
    sc.check_can_join(model)  # before minutes of embedding
    rows = [ex for ex in read_many(data) if model in ex.scores]
    if not rows:
        raise DataError(f"no row of {[str(d) for d in data]} has a score for {model!r}")
    bar, advance = progress_bar(f"embedding ({enc.identity})", len(rows))
    with bar:
        X = embed_examples(enc, rows, advance)
    overlap = learned_prompts(sc, rows)  # before the join adds its prompts to the learned ones
    sc.add_model(model, X, rows)
    sc.save(out, extra={k: v for k, v in sc.meta_.items() if k in ("trained_on", "evaluation")})
    C = sc.join_C_[model]
    how = f"its own correction, C {C:g}" if C else "no correction: its rows agree with it"
    console.print(
        f"wrote {out}: {model} joined from {len(rows)} profiled rows "
        f"(ability on the shared difficulty; {how})",
        highlight=False,
    )
    j = sc.models_.index(model)
    peers = [m for m, ok in zip(sc.models_[:j], sc.success_comparable_[j, :j], strict=True) if ok]
    if peers:
        console.print(
            f"{overlap}: its success estimates compare with those of {len(peers)} of "
            f"{j} models, learned on the same prompts ({', '.join(peers)})",
            highlight=False,
        )
    else:
        # Every policy then leaves its estimates out of the escalation gain, and a cost_weight
        # policy warns at load (docs/policies.md): say it now, with the overlap.
        err.print(
            f"[yellow]warning:[/yellow] {model} learned on different prompts from every model "
            f"of the scorer ({overlap}; two models' estimates compare when at least half of the "
            "smaller one's prompts are shared): the escalation gain leaves its success estimate "
            "out, and a cost_weight policy with it warns. Profile it on the prompts the scorer "
            "learned (router profile on its training data, e.g. data/routing/dcrouter.jsonl)",
            highlight=False,
        )


def learned_prompts(sc, rows) -> str:
    """How many of the rows' prompts (by `data.group_key`) the scorer learned, said."""
    import numpy as np

    from router.core.data import prompt_hashes

    prompts = np.unique(prompt_hashes(rows))
    learned = sc.trained_on(rows)
    if learned is None:  # an artifact that recorded no training prompts
        return f"{len(prompts)} prompts (the scorer recorded none of the prompts it learned)"
    known = np.unique(prompt_hashes([ex for ex, k in zip(rows, learned, strict=True) if k]))
    return f"{len(known)} of {len(prompts)} prompts are ones the scorer learned"


@app.command("train-verifier")
@friendly
def train_verifier_(
    data: Annotated[list[Path], typer.Argument(help="routing dataset(s) with `answers`, JSONL")],
    out: Annotated[Path, typer.Option(help="directory to write the verifier to")],
    models: Annotated[
        str,
        typer.Option(
            help="whose answers to learn from: cheap (each row's cheap models that answered), "
            "all (every model that answered), or comma-separated names"
        ),
    ] = "cheap",
    cv: Annotated[int, typer.Option(help="folds of the within-distribution measurement")] = 5,
    c: Annotated[float, typer.Option("--C", help="inverse regularisation strength")] = 0.5,
    force: Annotated[
        bool, typer.Option("--force", help="overwrite OUT even if its recorded figures are better")
    ] = False,
    tolerance: Annotated[
        float, typer.Option(help="how much lower a gated figure may be and still replace OUT")
    ] = 0.0,
    config: ConfigOpt = Path("config.yaml"),
) -> None:
    """Train the cascade's answer verifier (docs/cascades.md): measure it within its training
    distribution (--cv), leaving one task out and one answering model out, print the figures
    beside those OUT recorded, and refuse to replace a verifier that was better."""
    from router.core.encoder import load_encoder
    from router.evaluation.verifier_build import build

    if cv < 2:
        raise DataError("--cv must be at least 2: a verifier is measured before it is saved")
    positive(c, "--C")
    # Before minutes of measuring: a scorer's directory would lose its weights.npz to it.
    artifact_out(out, "verifier")
    chosen = models if models in ("cheap", "all") else [m.strip() for m in models.split(",")]
    cfg = load_config(config)
    examples = read_many(data)
    enc = load_encoder(
        cfg.encoder.name, cfg.encoder.max_tokens, cache_size=0, threads=BATCH_THREADS
    )
    with err.status("measuring the verifier…") as status:
        report = build(
            examples,
            out,
            enc,
            chosen,
            cv=cv,
            C=c,
            force=force,
            tolerance=tolerance,
            log=lambda m: status.update(m),
        )
    print_verifier_report(report)
    if not report.written:
        err.print(
            f"[red]error:[/red] not written over {out}, the new verifier is worse: "
            f"{', '.join(report.comparison.worse)}; --force to replace it anyway",
            highlight=False,
        )
        raise typer.Exit(1)


def print_verifier_report(report) -> None:
    """The measured figures beside the replaced verifier's, as `make verifier` shows them."""
    from rich.console import Console
    from rich.table import Table

    f = report.figures
    wide = console if console.is_terminal else Console(width=200)
    t = Table(title=f"verifier: {report.answers} answers ({report.by_model})")
    cols = ("held out", "verdict AUROC", "within", "answer side", "prompt side", "answer weight")
    cols += ("out of distribution", "router APGR", "cascade APGR", "hybrid APGR")
    for col in cols:
        t.add_column(col, justify="left" if col == "held out" else "right")
    for name in ("cv", "task", "model"):
        g = f.get(name)
        if not g:
            continue

        def v(key, fmt="{:.3f}", g=g):
            return "-" if g.get(key) is None else fmt.format(g[key])

        t.add_row(
            g["mode"],
            v("verifier_auroc"),
            v("verifier_auroc_within"),
            v("answer_side_auroc"),
            v("prompt_auroc_on_answered_rows"),
            v("mean_answer_weight", "{:.2f}"),
            v("out_of_distribution_share", "{:.1%}"),
            v("router_apgr"),
            v("cascade_apgr"),
            v("hybrid_apgr"),
        )
    wide.print(t)
    wide.print(report.comparison.table(), highlight=False, markup=False)
    if report.written:
        console.print(f"wrote {report.out}")


@app.command()
@friendly
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
    from router.core.config import check_policy_file_name
    from router.evaluation.calibrate import (
        CalibrationError,
        parse_target,
        with_scorer,
        write_policy,
        write_threshold,
    )
    from router.evaluation.calibrate import calibrate as run_calibration
    from router.evaluation.evaluate import training_overlap
    from router.evaluation.train import embed_examples

    # What can be checked without the data is checked before it is embedded.
    try:
        parse_target(target)
    except CalibrationError as e:
        raise DataError(str(e)) from None
    if out is not None:
        check_output_file(out, "--out", give="the policy file to write")
        if out.suffix != ".yaml":
            # Written as asked, it would be a policy the router never reads (policies/*.yaml).
            raise DataError(f"--out {out}: a policy file's name ends in .yaml")
        check_policy_file_name(out)
    router = load_router(config)
    router.policy(policy)  # an unknown policy is named now, not after embedding
    if cascade:
        from router.evaluation.evaluate_cascade import cascade_to_calibrate

        cascade_to_calibrate(router, policy)  # a policy without one, too
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
    source = config.resolve().parent / cfg.policies_dir / f"{policy}.yaml"
    dest = out or source
    if dest.stem == policy and source.is_file():
        write_threshold(cal, source, dest)  # only the threshold changes: comments stay
    else:
        write_policy(cal, dest)  # renamed after its new file
    # Prove the written file is valid and routes.
    from router.core.config import load_policy

    load_policy(dest, cfg, router.scorer.domains_)
    if cal.dropped:
        err.print(
            f"note: {cal.dropped} of {len(rows)} rows left out: each lacks the score of a cheap "
            f"model of {policy} that the data scores elsewhere, or of every large model",
            highlight=False,
        )
    if cal.stood_in:
        err.print(
            f"note: the data never scores {', '.join(cal.stood_in)}: stood in for by the mean of "
            "each row's cheap models",
            highlight=False,
        )
    if cal.large_stood_in:
        err.print(
            f"note: the data never scores {', '.join(cal.large_stood_in)} (by name or "
            "`profile:`): stood in for by the data's best-scoring model outside the cheap ones",
            highlight=False,
        )
    p = cal.point
    console.print(f"{cal.field} = {p.param:.4f}  (target {cal.target})")
    console.print(
        f"expected on {cal.rows} prompts: quality {p.quality:.4f} "
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
        policy_verifier,
        verifier_overlap,
        write_cascade_settings,
    )

    try:
        goal = parse_target(target)
    except CalibrationError as e:
        raise DataError(str(e)) from None
    verifier = policy_verifier(router, policy)
    remedy = "Calibrate on data"  # calibrate has no --cv
    if verifier is not None and (msg := verifier_overlap(verifier, rows, remedy)):
        err.print(f"[yellow]warning:[/yellow] {msg}", highlight=False)
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


@app.command()
@friendly
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
        try:
            console.print(reload_server(reload, os.environ.get(admin_key_env)))
        except RuntimeError as e:
            # The new version is in place; only the proxy has not picked it up (exit 2, not 1:
            # a scheduled job must not read this as "the gate refused").
            err.print(
                f"[red]error:[/red] scorers/current was updated, but the reload failed: {e}; "
                "reload the proxy (POST /admin/reload or SIGHUP)",
                highlight=False,
            )
            raise typer.Exit(2) from None
    if not promoted:
        raise typer.Exit(1)
