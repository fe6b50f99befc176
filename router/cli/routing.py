"""Commands that route and serve: route, policies, models, serve, stats."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from router.cli.main import (
    ConfigOpt,
    app,
    console,
    fail,
    friendly,
    load_router,
)
from router.core.config import check_default_policy, load_config, load_policies
from router.core.data import DataError, domain_names
from router.core.outputs import check_output_file


@app.command()
@friendly
def route(
    text: Annotated[str, typer.Argument(help="the prompt to route")],
    policy: Annotated[str | None, typer.Option(help="policy name")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the Decision as JSON")] = False,
    config: ConfigOpt = Path("config.yaml"),
) -> None:
    """Print the routing Decision for TEXT (no model is called)."""
    router = load_router(config)
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
        t.add_row(f"p(success) {m}", f"{p:.3f}{_evidence_said(d, m)}")
    for m in d.unprofiled:
        if m not in d.success:  # no stand-in either: the policy had nothing to compare
            t.add_row(f"p(success) {m}", "none: unprofiled, and no stand-in")
    t.add_row("reason", d.reason)
    t.add_row("fallbacks", " → ".join(d.fallbacks) or "-")
    t.add_row(
        "cost estimate", f"${d.cost_estimate:.6f} (large model: ${d.large_cost_estimate:.6f})"
    )
    t.add_row("routing time", f"{d.routing_ms:.1f} ms")
    console.print(t)


def _evidence_said(d, model: str) -> str:
    """What a success estimate in the readable receipt rests on: a stand-in's (the model has
    no rows of its own: `unprofiled`, as the JSON says), or its own rows, its similar labelled
    prompts and the pessimistic bound the policy compared."""
    if model in d.unprofiled:
        return f"  stand-in {d.unprofiled[model]}'s estimate (unprofiled: no rows of its own)"
    ev = d.evidence.get(model)
    if not ev:
        return ""
    lower = f", lower {ev['lower']:.3f}" if "lower" in ev else ""
    return f"  ({ev['rows']} rows, {ev['neighbours']:g} similar{lower})"


@app.command()
@friendly
def policies(config: ConfigOpt = Path("config.yaml")) -> None:
    """List the configured policies."""
    cfg = load_config(config)
    pols = load_policies(config.resolve().parent / cfg.policies_dir, cfg, domain_names())
    check_default_policy(config, cfg, pols)
    t = Table("policy", "cheap default", "specialists", "large", "escalation", "description")
    for name, p in pols.items():
        esc = p.escalation
        rule = f"conf<{esc.min_domain_confidence} or diff>{esc.max_difficulty}"
        if esc.max_gain is not None:
            rule += f" or gain>{esc.max_gain}"
        if esc.min_success is not None:
            rule += f" or p(success)<{esc.min_success}"
        if esc.cost_weight is not None:
            rule = f"best p(success) − {esc.cost_weight} × relative cost"
            if esc.tie_se > 0:
                rule += f"; a cheaper model only > {esc.tie_se:g} s.e. ahead"
        specs = ", ".join(f"{d}: {'/'.join(ms)}" for d, ms in p.domains.items())
        mark = " (default)" if name == cfg.default_policy else ""
        t.add_row(name + mark, ", ".join(p.default), specs, ", ".join(p.large), rule, p.description)
    console.print(t)


@app.command()
@friendly
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


@app.command()
@friendly
def serve(
    config: ConfigOpt = Path("config.yaml"),
    host: Annotated[str | None, typer.Option(help="default: server.host, 127.0.0.1")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="default: server.port, 8000")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="worker processes on the one port (default: one per core); /metrics sums them",
        ),
    ] = None,
) -> None:
    """Run the OpenAI-compatible proxy (POST /v1/chat/completions with model "router")."""
    from router.server.run import CannotListen, WorkerStartError
    from router.server.run import serve as run_server

    try:
        run_server(config, host, port, workers)
    except (CannotListen, WorkerStartError) as e:
        fail(str(e))


@app.command()
@friendly
def stats(
    db: Annotated[
        str | None,
        typer.Option(help="decision log: SQLite file or postgresql:// URL [default: the config's]"),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="only the last 15m, 1h, 24h, 7d ... [default: all of it]")
    ] = None,
    html: Annotated[
        Path | None, typer.Option(help="write the figures and charts as one HTML file")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print every figure as JSON")] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", envvar="ROUTER_CONFIG", help="config.yaml: its decision log and drift"
        ),
    ] = None,
) -> None:
    """Summarise the decision log: share per model, escalations, savings, latency; with
    --html, the dashboard's figures and charts as a report."""
    from router.serving.decision_log import LogReader, Stats, parse_since
    from router.serving.decision_log.stats import SUMMARY_SAMPLE

    if html is not None and as_json:
        raise DataError("use either --html or --json, not both")
    if html is not None:
        check_output_file(html, "--html")
    seconds = None
    if since is not None:
        try:
            seconds = parse_since(since)
        except ValueError as e:
            fail(f"--{e}")
    cfg_path = config if config is not None else Path("config.yaml")
    cfg = load_config(cfg_path) if config is not None or cfg_path.is_file() else None
    if db is None:
        db = "decisions.db"
        if cfg is not None and cfg.decision_log is not None:
            db = cfg.decision_log.url
            if "://" not in db:
                db = str((cfg_path.resolve().parent / db).resolve())
    kw = {}
    if cfg is not None:
        kw = dict(
            drift_reference=_training_distributions(cfg, cfg_path),
            drift_window=cfg.drift.window,
            drift_threshold=cfg.drift.threshold,
            drift_min_samples=cfg.drift.min_samples,
        )
    reader = LogReader(db, sample=SUMMARY_SAMPLE, **kw)
    try:
        figures = reader.figures(seconds)
    finally:
        reader.close()
    if html is not None:
        from router.server.panel import report
        from router.serving.decision_log import safe_url
        from router.serving.decision_log.schema import database_url

        html.write_text(report(figures, safe_url(database_url(db))), encoding="utf-8")
        console.print(f"wrote {html} ({figures['requests']} requests)", highlight=False)
        return
    if as_json:
        import json

        print(json.dumps({**Stats.of(figures).to_dict(), "figures": figures}, indent=2))
        return
    t = Table(show_header=False, box=None)
    for label, value in Stats.of(figures).rows():
        t.add_row(label, value)
    console.print(t)


def _training_distributions(cfg, cfg_path: Path) -> dict | None:
    """The scorer's training distributions (for drift), read from its scorer.json alone."""
    import json

    from router.core.scorer import configured_scorer_path

    where = configured_scorer_path(cfg.scorer, cfg_path.parent)
    try:
        meta = json.loads((Path(where) / "scorer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta.get("training_distributions") if isinstance(meta, dict) else None
