"""Build the shipped scorer, measured first and never silently worse (make model).

    python scripts/build_scorer.py                 (make model)
    python scripts/build_scorer.py --force         (ship even if a gated figure got worse)
    python scripts/build_scorer.py --measure-only  (figures only, the artifact untouched)
    python scripts/build_scorer.py --retrain-only  (same design, more data: keep its figures)
    python scripts/build_scorer.py --measure-only --encoder minilm-l3-q8   (another encoder)

1. Measures the design: 5-fold CV by prompt text and leave-one-source-out on RouteLLM and on
   dcrouter, each fold trained on the other datasets too (router/evaluation/gate.py).
2. Prints the figures beside those the shipped artifact recorded when it was built. Without
   recorded figures (an artifact from before the gate), the previous design stands in for
   them: the same fits, stacked without the shared-difficulty model. Figures recorded on
   another CPU (or on one the artifact does not name) are not the bar: the encoder's int8
   products, and so every embedding and figure, differ a little from one CPU to another. The
   shipped design is then measured here too (from this run when it is the design measured, on
   the same encoder).
3. Refuses, exit 1, when a gated figure (APGR on RouteLLM, quality at the best single model's
   cost on dcrouter; CV or leave-one-source-out) is worse, unless --force; and when SmolLM2,
   added to the dcrouter pool at $0, lowers the router's quality at any budget
   (router/evaluation/free_model.py, CV on its profiled dcrouter prompts), unless --force.
4. Trains on every dataset without the held-out 20% of prompts (`make policies` verifies on
   them), saves the artifact with the figures it measured, and records them in
   bench/results/routing_<data>.json for BENCHMARKS.md.

--retrain-only trains the design the shipped artifact measured (the same parameters) on the
data as it is now, keeping the figures it recorded: for new profile rows, which change what the
scorer knows of one model, not the design the figures describe. It refuses another design.

--encoder measures the design on another encoder than config.yaml's (`minilm-lK-q8`, once
`scripts/build_encoder_q8.py --layers K` has built it), beside the shipped scorer's figures;
with --measure-only only, since the configs that load the shipped scorer name its encoder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from results import cpu  # noqa: E402  (bench/results.py)

from router.core.config import load_config  # noqa: E402
from router.core.data import held_out, read_jsonl, read_many  # noqa: E402
from router.core.encoder import load_encoder  # noqa: E402
from router.core.scorer import Scorer  # noqa: E402
from router.evaluation import free_model, gate  # noqa: E402
from router.evaluation.evaluate import NO_SHARED, SOURCE_RATES  # noqa: E402
from router.evaluation.train import embed_examples  # noqa: E402

DATA = ROOT / "data" / "routing"
TRAIN_FILES = ("routellm.jsonl", "dcrouter.jsonl", "smollm2.jsonl")
EVAL_FILES = {"routellm": "routellm.jsonl", "dcrouter": "dcrouter.jsonl"}
OUT = ROOT / "router" / "artifacts" / "default"
# The free model of the check that a model at $0 never lowers quality: SmolLM2's profiled
# dcrouter prompts, where the dcrouter pool's nine models were scored too.
FREE_MODEL, FREE_DATA = "smollm2-135m", DATA / "smollm2.jsonl"
HOLD_OUT = 0.2


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def table(rows: list[list[str]]) -> str:
    head = ["data", "mode", "figure", "previous", "this build"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def check_free_model(embed, encoder_identity: str, params: dict, stacked: bool, cv: int):
    """The design with and without a free model in the dcrouter pool (free_model.py), on the
    curve of the design that ships; None when the profile is not there."""
    if not FREE_DATA.is_file():
        say(f"{FREE_DATA.name} is missing: the free-model check is skipped")
        return None
    rows = [
        r
        for r in read_jsonl(FREE_DATA)
        if r.source.startswith("dcrouter/") and FREE_MODEL in r.scores
    ]
    say(f"free-model check: {FREE_MODEL} at $0 in the dcrouter pool, {len(rows)} prompts, CV {cv}")
    check = free_model.compare(
        rows,
        FREE_MODEL,
        embed(rows),
        encoder_identity,
        cv=cv,
        scorer_params=params,
        curve="router" if stacked else NO_SHARED,
    )
    print(
        f"free-model check: with {FREE_MODEL} at $0 the router's quality is lower at "
        f"{len(check.worse)} of {len(check.grid)} budgets (worst drop {check.worst_drop:.4f})"
    )
    return check


# The parameters a design is told apart by, each with what an artifact saved before it existed
# used: the plain neighbour mean, no source prior, the stacked difficulty.
DESIGN_DEFAULTS = {
    "shared_dims": None,
    "knn_shrink": 0.0,
    "source_prior": False,
    "difficulty": "stack",
}


def recorded_design(meta: dict) -> dict:
    """The design an artifact was built with (`DESIGN_DEFAULTS` for what it did not record)."""
    recorded = meta.get("params", {})
    return {key: recorded.get(key, default) for key, default in DESIGN_DEFAULTS.items()}


def describe(design: dict) -> str:
    """A design for a reader: "shared_dims 8, knn_shrink 0.0, ..."."""
    return ", ".join(f"{key} {value}" for key, value in design.items())


def train_and_save(
    out: Path,
    embed,
    encoder_identity: str,
    params: dict,
    stacked: bool,
    figures: dict,
    free: dict | None = None,
    measured_on: str | None = None,
) -> int:
    """The shipped scorer: every dataset without the held-out prompts, its figures recorded.
    Not `stacked`: the design without the shared difficulty in the stack, the shared model
    kept (unstacked) for models that join later (`router add-model`)."""
    rows = [ex for ex in read_many([DATA / f for f in TRAIN_FILES]) if not held_out(ex, HOLD_OUT)]
    say(f"training on {len(rows)} rows ({HOLD_OUT:.0%} of the prompts held out)")
    scorer = Scorer(**params).fit(embed(rows), rows, encoder_identity, progress=say)
    if params.get("shared_dims") and not stacked:
        scorer = scorer.ablated(keep_shared=True)
    scorer.save(
        out,
        extra={
            "trained_on": list(TRAIN_FILES),
            "held_out_share": HOLD_OUT,
            "evaluation": figures,
            # The figures are this CPU's: its int8 products give slightly other embeddings.
            "measured_on": measured_on,
            "shared_stacked": stacked,
            **({"free_model_check": free} if free is not None else {}),
        },
    )
    print(f"\nwrote {out}")
    return 0


def previous_here(
    shipped: dict,
    params: dict,
    encoder_identity: str,
    measured: dict,
    remeasure: Callable[[dict, str], dict],
) -> tuple[dict | None, str]:
    """The shipped design's figures on this CPU, for an artifact that recorded its own on
    another (or did not say where): this run's, when it measured the same design on the same
    encoder, else `remeasure(design, the shipped encoder's identity)`'s. Returns them and where
    they came from."""
    curve = "router" if shipped.get("shared_stacked", True) else NO_SHARED
    design = recorded_design(shipped)
    encoder = shipped.get("encoder", encoder_identity)
    shipped_design = f"the shipped design ({describe(design)})"
    if design == params and encoder == encoder_identity:
        return gate.figures_of(measured, curve), f"{shipped_design}, this run"
    say(f"measuring {shipped_design} on {encoder} here too")
    figures = gate.figures_of(remeasure(design, encoder), curve)
    return figures, f"{shipped_design} on {encoder}, measured here"


def embedder(name: str, max_tokens: int):
    """(rows → their vectors, the encoder's identity) for an encoder by its config name."""
    enc = load_encoder(name, max_tokens, cache_size=0, threads=os.cpu_count() or 1)
    return (lambda rows: embed_examples(enc, rows)), enc.identity


def remeasure_on(eval_sets: dict, train_also: dict, cv: int):
    """`gate.measure` of a design on an encoder given by its identity ("name/max_tokens")."""

    def remeasure(design: dict, encoder_identity: str) -> dict:
        name, _, max_tokens = encoder_identity.partition("/")
        embed, identity = embedder(name, int(max_tokens or 128))
        return gate.measure(eval_sets, train_also, embed, identity, design, cv, say)

    return remeasure


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT, help="artifact directory (default: shipped)")
    ap.add_argument("--force", action="store_true", help="ship even if a gated figure is worse")
    ap.add_argument("--measure-only", action="store_true", help="print figures; write nothing")
    ap.add_argument("--cv", type=int, default=5)
    ap.add_argument("--shared-dims", type=int, default=8, help="0: no shared difficulty")
    ap.add_argument(
        "--knn-shrink",
        type=float,
        default=0.0,
        help="pseudo-rows at the training mean in the kNN component (0: the plain mean)",
    )
    ap.add_argument(
        "--source-prior",
        action="store_true",
        help="success heads also stack the source prior (docs/evaluation.md)",
    )
    ap.add_argument(
        "--difficulty",
        choices=("blend", "shared", "stack"),
        default="blend",
        help="the difficulty head: every component stacked, the shared model's prompt "
        "difficulty, or the two averaged in log-odds (the default; docs/evaluation.md)",
    )
    ap.add_argument("--tolerance", type=float, default=0.0, help="how much worse still passes")
    ap.add_argument("--no-record", action="store_true", help="leave bench/results alone")
    ap.add_argument(
        "--retrain-only", action="store_true", help="same design, data as it is now: no measuring"
    )
    ap.add_argument(
        "--encoder",
        help="measure on this encoder instead of config.yaml's (with --measure-only)",
    )
    ap.add_argument(
        "--reports",
        type=Path,
        help="JSON of the measured reports: written after measuring, read instead of measuring "
        "when it exists (a decision taken again, e.g. --force, without an hour of fits)",
    )
    args = ap.parse_args(argv)

    cfg = load_config(ROOT / "config.yaml")
    if args.encoder and args.encoder != cfg.encoder.name and not args.measure_only:
        print(
            f"--encoder {args.encoder}: only with --measure-only; config.yaml names "
            f"{cfg.encoder.name}, and a shipped scorer must be on the encoder its configs load"
        )
        return 2
    embed, identity = embedder(args.encoder or cfg.encoder.name, cfg.encoder.max_tokens)

    params = {key: getattr(args, key) for key in DESIGN_DEFAULTS}
    params["shared_dims"] = params["shared_dims"] or None
    if args.retrain_only:
        meta = json.loads((args.out / "scorer.json").read_text(encoding="utf-8"))
        if meta.get("evaluation") is None or recorded_design(meta) != params:
            print(
                f"--retrain-only: {args.out} measured no figures for the design ({describe(params)})"
            )
            return 1
        stacked = meta.get("shared_stacked", True)
        return train_and_save(
            args.out,
            embed,
            identity,
            params,
            stacked,
            meta["evaluation"],
            meta.get("free_model_check"),
            meta.get("measured_on"),
        )

    eval_sets = {name: read_jsonl(DATA / f) for name, f in EVAL_FILES.items()}
    train_also = {
        name: read_many([DATA / f for f in TRAIN_FILES if f != file])
        for name, file in EVAL_FILES.items()
    }
    say(f"measuring the design ({describe(params)}): CV {args.cv} and leave-one-source-out")

    def show(name: str, mode: str, report: dict) -> None:
        for curve in ("router", NO_SHARED, "knn", SOURCE_RATES, "random"):
            if curve in report["results"]:
                shown = gate.SHOWN[gate.kind_of(report)]
                figures = ", ".join(f"{k} {report['results'][curve].get(k)}" for k in shown)
                say(f"  {name} {mode} {curve}: {figures}")

    if args.reports is not None and args.reports.is_file():
        saved = json.loads(args.reports.read_text(encoding="utf-8"))
        if saved.get("params") != params or saved.get("cv") != args.cv:
            print(f"--reports: {args.reports} measured {saved.get('params')}, not {params}")
            return 1
        say(f"reports measured before, read from {args.reports}")
        measured = saved["measured"]
    else:
        measured = gate.measure(
            eval_sets, train_also, embed, identity, params, args.cv, say, on_report=show
        )
        if args.reports is not None:
            blob = {"params": params, "cv": args.cv, "measured": measured}
            args.reports.write_text(json.dumps(blob), encoding="utf-8")
    new = gate.figures_of(measured)
    # Stacked or not, the shared difficulty ships: a model joins from its profile through it.
    # It is stacked into the profiled models' estimates only if that measured no worse on
    # every gated figure than the same fits without it.
    stacked = True
    without = gate.figures_of(measured, NO_SHARED)
    if without is not None:
        lost = gate.regressions(new, without, args.tolerance)
        if lost:
            stacked, new = False, without
            print(
                "the shared difficulty in the stack measured worse than the same fits without "
                "it:\n  " + "\n  ".join(lost) + "\nshipping the stack without it (the shared "
                "model kept, unstacked, for router add-model)\n"
            )

    previous, where = None, "none recorded"
    here = cpu()
    meta = args.out / "scorer.json"
    if meta.is_file():
        shipped = json.loads(meta.read_text(encoding="utf-8"))
        previous = shipped.get("evaluation")
        shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
        where = f"recorded in {shown}" if previous else where
        if previous is not None and shipped.get("measured_on") != here:
            elsewhere = shipped.get("measured_on") or "a CPU it does not name"
            print(f"{shown} recorded its figures on {elsewhere}; this is {here}")
            previous, where = previous_here(
                shipped, params, identity, measured, remeasure_on(eval_sets, train_also, args.cv)
            )
    if previous is None:
        # The same fits stacked without the shared-difficulty model: today's design.
        previous = without
        if previous is not None:
            where = "the previous design (no shared difficulty), from the same fits"
    print(f"previous: {where}\n")
    print(table(gate.comparison_rows(new, previous)))
    worse = gate.regressions(new, previous, args.tolerance)
    if worse:
        print("\nworse than the previous artifact:\n  " + "\n  ".join(worse))
        if not args.force:
            print(f"\nnot overwriting {args.out}: rerun with --force to ship it anyway")
            return 1
    # A model at $0 must never lower quality at any budget: a design that lets one is refused
    # like a worse figure (a noisier estimate can make a free, weaker model win on noise).
    free = check_free_model(embed, identity, params, stacked, args.cv)
    if free is not None and free.worse:
        print(f"\na free {FREE_MODEL} lowers the router's quality at some budgets")
        if not args.force:
            print(f"\nnot overwriting {args.out}: rerun with --force to ship it anyway")
            return 1
    if args.measure_only:
        return 0

    summary = free.summary() if free is not None else None
    train_and_save(args.out, embed, identity, params, stacked, new, summary, here)
    if not args.no_record:
        from results import eval_figures, eval_table, record

        for name, modes in measured.items():
            record(
                f"routing_{name}",
                title=f"Routing quality on {name}",
                command="make model",
                figures={
                    f"{mode}_{k}": v
                    for mode, r in modes.items()
                    for k, v in eval_figures(r).items()
                },
                tables=[
                    eval_table(
                        modes["cv"],
                        f"{args.cv}-fold CV by prompt text ({modes['cv']['rows']} prompts)",
                    ),
                    eval_table(modes["loso"], "leave one source out"),
                ],
                notes=f"previous: {where}. Shipped: "
                + (
                    "the stack with the shared difficulty (`router`)."
                    if stacked
                    else "the stack without the shared difficulty (`router-no-shared`), which "
                    "measured better; the shared model is kept, unstacked, for models that join "
                    "later (router add-model)."
                ),
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
