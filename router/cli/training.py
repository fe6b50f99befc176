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
    scorer_dir,
)
from router.core.config import did_you_mean, load_config
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
        Path | None,
        typer.Option(help="scorer to extend (default: the config's; `default`: the shipped one)"),
    ] = None,
    config: ConfigOpt = Path("config.yaml"),
) -> None:
    """A new model joins the scorer from its profiled rows alone (`router profile`): its
    ability is fitted on the shared difficulty, the prompt side frozen, and its rows correct
    that as far as they show they can be trusted; nothing else retrains."""
    from router.core.encoder import load_encoder
    from router.core.scorer import Scorer

    artifact_out(out, "scorer")
    cfg = load_config(config)
    base = scorer_dir(scorer, cfg.scorer, config)
    enc = load_encoder(
        cfg.encoder.name, cfg.encoder.max_tokens, cache_size=0, threads=BATCH_THREADS
    )
    sc = Scorer.load(base, encoder_identity=enc.identity)
    sc.check_can_join(model, where=str(base))  # before minutes of embedding
    examples = _profiled_rows(data)
    rows = [ex for ex in examples if model in ex.scores]
    if not rows:
        scored = sorted({m for ex in examples for m in ex.scores})
        raise DataError(
            f"no row of {[str(d) for d in data]} has a score for {model!r}"
            f"{did_you_mean(model, scored)}; the data scores {', '.join(scored[:20])}"
            + (" ..." if len(scored) > 20 else "")
        )
    if failed := _failed_in_journals(data, model):
        # Not in the profile: a failure that goes with the prompt (a time-out on long ones)
        # would leave the estimate to the rows that did not fail.
        err.print(
            f"note: {failed} of {model}'s calls failed in router profile and are not in its "
            "rows (the same router profile command retries them)",
            highlight=False,
            markup=False,
        )
    _join(sc, model, rows, enc, out, cfg, config)


def _failed_in_journals(data: list[Path], model: str | None = None) -> int:
    """How many results (of `model`, or of any) the `router profile` journals beside `data`
    hold as failures still (a later success replaces one)."""
    journals = {j for d in data if (j := d.with_name(d.name + ".journal")).is_file()}
    if not journals:
        return 0
    from router.evaluation.profile import Journal

    results = [r for j in journals for r in Journal(j).read().values()]
    return sum(r.error is not None and model in (None, r.model) for r in results)


def _profiled_rows(data: list[Path]):
    """The rows of `router profile` outputs; an output without rows yet (every call failed)
    says so, with its journal's failures, rather than only that it has no rows."""
    try:
        return read_many(data)
    except DataError as e:
        for d in data:
            journal = d.with_name(d.name + ".journal")
            if d.is_file() and d.stat().st_size == 0 and journal.is_file():
                failed = _failed_in_journals([d])
                raise DataError(
                    f"{d}: no rows: router profile has no result in it yet ({journal} holds "
                    f"{failed} failures); run the same router profile command again to "
                    "retry them"
                ) from None
        raise e from None


def _join(sc, model: str, rows, enc, out: Path, cfg, config: Path) -> None:
    """Embed the rows, join the model, write the scorer and say what it means for routing."""
    from router.evaluation.train import embed_examples

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
    for note in routing_notes(cfg, config, model, sc.models_, out):
        err.print(f"note: {note}", highlight=False, markup=False)


def routing_notes(cfg, config: Path, model: str, scorer_models, out: Path):
    """What stands between the joined model and routing with it: the config's scorer is still
    another one, no catalogue model is it, or a catalogue entry's `profile:` names another
    model's estimate."""
    from router.core.scorer import configured_scorer_path

    if configured_scorer_path(cfg.scorer, config.resolve().parent).resolve() != out.resolve():
        yield (
            f"{config} still routes with `scorer: {cfg.scorer}`, not this one: set "
            f"`scorer: {out.resolve()}` to route with {model}'s estimate"
        )
    spec = next((m for m in cfg.models if m.name == model), None)
    if spec is None and not any(m.profile == model for m in cfg.models):
        yield (
            f"no model of {config}'s catalogue is {model!r} (by name or `profile:`): add it "
            "(models:) and name it in a policy to route to it"
        )
    elif spec is not None and spec.profile not in (None, model) and spec.profile in scorer_models:
        yield (
            f"models[{model}].profile: {spec.profile!r} routes it on that model's estimate, not "
            "its own: remove `profile:`"
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
        Path | None,
        typer.Option(help="scorer directory (default: the config's; `default`: the shipped one)"),
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
        measured_rows,
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
        router = with_scorer(router, scorer_dir(scorer, router.config.scorer, config))
    names = router.policy(policy).names
    if unprofiled := {m: s for m, s in router.unprofiled.items() if m in names}:
        said = [f"{m} by {s}" if s != "none" else f"{m}: none" for m, s in unprofiled.items()]
        err.print(
            f"note: {policy}'s unprofiled models are estimated by a stand-in ({', '.join(said)})"
            ": the threshold is set on those estimates (router profile, then router add-model, "
            "gives each its own)",
            highlight=False,
            markup=False,
        )
    rows = read_many(data)
    total, dropped = len(rows), 0
    if not cascade:
        # Only the rows that measure the policy are warned about and embedded: a profile of a
        # new model beside the data it was profiled on leaves most of that data out.
        try:
            rows, _, dropped, _ = measured_rows(router, policy, rows)
        except CalibrationError as e:
            raise DataError(str(e)) from None
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
    dropped += cal.dropped
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
    if dropped:
        err.print(
            f"note: {dropped} of {total} rows left out: each lacks the score of a cheap "
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
