"""`router demo`: everyday and hard prompts through each shipped config; no key, no model call."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from router.cli.main import app, console, err, friendly


@app.command()
@friendly
def demo(
    config: Annotated[
        list[Path] | None,
        typer.Option(
            "--config", "-c", help="config(s) to tour [default: config.yaml and configs/*.yaml]"
        ),
    ] = None,
    policy: Annotated[
        list[str] | None, typer.Option(help="only these policies [default: every one]")
    ] = None,
    reasons: Annotated[bool, typer.Option(help="print each decision's reason")] = True,
) -> None:
    """Route 20 everyday and hard prompts with each policy of each shipped config and show
    each decision, the share kept on small models and the cost against all-large. Calls no
    model and needs no key."""
    from router.sdk.demo import demo_prompts, load_routers, shipped_configs, tour

    paths = config or shipped_configs()
    if not paths:
        raise FileNotFoundError(
            "no config.yaml or configs/*.yaml here: run it in the repository, or pass --config"
        )
    t0 = time.perf_counter()
    with err.status("loading the encoder and scorer…"):
        routers = load_routers(paths)
    prompts = demo_prompts()
    console.print(
        f"[bold]router demo[/bold]: {len(prompts)} prompts ({sum(p.kind == 'hard' for p in prompts)}"
        " hard) routed by each policy; no model is called, no key is needed.\n",
        highlight=False,
    )
    summary = Table("config", "policy", "kept small", "est. cost", "all-large", "saved")
    for path, router in zip(paths, routers, strict=True):
        unknown = [p for p in policy or [] if p not in router.policies]
        if unknown:
            raise FileNotFoundError(
                f"{path}: no policy {unknown[0]!r}; it has {sorted(router.policies)}"
            )
        large = ", ".join(m.name for m in router.config.models if m.tier == "large")
        console.print(f"[bold]{path}[/bold]  (large: {large})", highlight=False)
        for t in tour(router, prompts, policy):
            console.print(f"[bold]policy {t.policy}[/bold]", highlight=False)
            width = max(len(p.text) for p in prompts)
            for i, (p, d) in enumerate(zip(prompts, t.decisions, strict=True), 1):
                colour = "green" if d.tier == "small" else "yellow"
                text = p.text if len(p.text) <= 46 else p.text[:45] + "…"
                console.print(
                    f"{i:>3} {escape(text):<{min(width, 46)}}  → [{colour}]{d.model}[/{colour}]",
                    highlight=False,
                )
                if reasons:
                    console.print(f"      [dim]{escape(d.reason)}[/dim]", highlight=False)
            n = len(t.decisions)
            saved = "–" if t.saved is None else f"{t.saved:.0%}"
            console.print(
                f"  kept on small models: {t.kept_small}/{n} ({t.kept_small / n:.0%}); estimated "
                f"${t.cost:.4f} against ${t.large_cost:.4f} all-large (saves {saved})\n",
                highlight=False,
            )
            summary.add_row(
                str(path),
                t.policy,
                f"{t.kept_small}/{n}",
                f"${t.cost:.4f}",
                f"${t.large_cost:.4f}",
                saved,
            )
    if summary.row_count > 1:
        console.print(summary)
    console.print(
        f"{time.perf_counter() - t0:.1f} s; costs are estimates from catalogue prices. "
        'One prompt: router route "..."',
        highlight=False,
    )
