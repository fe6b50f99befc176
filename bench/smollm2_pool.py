"""SmolLM2-135M's own profile, and what adding it to the dcrouter pool as a free tenth model does.

1. Per task: SmolLM2's profiled accuracy, rows, mean latency and prompts/min (data/routing/
   smollm2.jsonl, written by `router profile`; the latency is the local llama.cpp server's).
2. The dcrouter pool on the profiled prompts, 5-fold CV by prompt text (`router eval --cv 5`),
   with and without SmolLM2 at $0: the router's quality at the best single model's cost and at
   25% of it, and whether adding the free model lowers the router's quality at any budget.
3. That last check again on other fold splits (`--seeds`), for the stacked curve and for the
   curve `make model` gates on (`router-no-shared`): how much of it is the luck of the split.

    python bench/smollm2_pool.py [--data data/routing/smollm2.jsonl] [--cv 5] [--seeds N ...]
    (or: make bench-smollm2)

Records bench/results/smollm2_pool.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from results import command_line, record  # noqa: E402  (bench/ is on sys.path as a script)

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from router.core.config import load_config  # noqa: E402
from router.core.data import read_jsonl  # noqa: E402
from router.core.encoder import load_encoder  # noqa: E402
from router.evaluation import free_model  # noqa: E402
from router.evaluation import metrics as M  # noqa: E402
from router.evaluation.evaluate import NO_SHARED  # noqa: E402
from router.evaluation.train import embed_examples  # noqa: E402

SMOL = "smollm2-135m"
KIND = {
    "em_mc": "multiple choice (4-token answer)",
    "f1_score": "short answer (16 tokens)",
    "GSM8K": "worked maths (192 tokens)",
    "MATH": "worked maths (192 tokens)",
    "code_eval": "code (256 tokens, sandboxed tests)",
    "commongen_coverage": "sentence (48 tokens)",
}


def _show(cell) -> str:
    return "-" if cell is None else f"{cell:.3f}" if isinstance(cell, float) else str(cell)


def profile_tables(rows) -> tuple[list[dict], dict]:
    """SmolLM2's accuracy per task beside the other models' on the same rows, and its
    throughput per task type; and the overall figures."""
    by_source: dict[str, list] = defaultdict(list)
    for r in rows:
        if SMOL in r.scores:
            by_source[r.source].append(r)
    tasks, kinds = [], defaultdict(list)
    for source, rs in sorted(by_source.items()):
        acc = float(np.mean([r.scores[SMOL] for r in rs]))
        lat = [r.extra["usage"][SMOL]["latency_ms"] / 1000 for r in rs]
        metric = rs[0].extra.get("metric", "")
        kinds[KIND.get(metric, metric)] += lat
        # The other models scored on these very rows (the dataset's own models).
        others = sorted({m for r in rs for m in r.scores if m != SMOL})
        means = {m: float(np.mean([r.scores[m] for r in rs if m in r.scores])) for m in others}
        best = max(means, key=means.get) if means else None
        tasks.append(
            [
                source,
                metric,
                len(rs),
                acc,
                float(np.mean(list(means.values()))) if means else None,
                best,
                means.get(best),
            ]
        )
    answered = [r for rs in by_source.values() for r in rs]
    overall = {
        "prompts": len(answered),
        "tasks": len(by_source),
        "accuracy": float(np.mean([r.scores[SMOL] for r in answered])) if answered else None,
    }
    kind_rows = [
        [kind, len(lat), float(np.mean(lat)), 60 / float(np.mean(lat))]
        for kind, lat in sorted(kinds.items())
    ]
    tables = [
        {
            "title": "SmolLM2-135M's profiled accuracy per task",
            "columns": [
                "task",
                "metric",
                "prompts",
                "SmolLM2 accuracy",
                "the dataset's models (mean)",
                "best of them",
                "its accuracy",
            ],
            "formats": ["", "", "int", ".3f", ".3f", "", ".3f"],
            "rows": tasks,
        },
        {
            "title": "SmolLM2-135M's throughput by task type (the local server's latency)",
            "columns": ["task type (answer budget)", "prompts", "mean latency s", "prompts/min"],
            "formats": ["", "int", ".1f", ".1f"],
            "rows": kind_rows,
        },
    ]
    for t in tables:
        print(f"\n{t['title']}")
        for row in t["rows"]:
            print("  " + " | ".join(_show(c) for c in row))
    return tables, overall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "data/routing/smollm2.jsonl"))
    ap.add_argument("--cv", type=int, default=5)
    ap.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4, 5, 6],
        help="fold seeds of the free-model check; the first gives the tables",
    )
    args = ap.parse_args()
    rows = read_jsonl(args.data)
    tables, overall = profile_tables(rows)

    pool = [r for r in rows if r.source.startswith("dcrouter/") and SMOL in r.scores]
    cfg = load_config(ROOT / "config.yaml")
    enc = load_encoder(cfg.encoder.name, cfg.encoder.max_tokens, cache_size=0)
    X = embed_examples(enc, pool)
    picks = {}
    names = {free_model.WITHOUT: "9 models", free_model.WITH: "10 models (+SmolLM2 $0)"}

    def diagnose(name):
        # The top-quality end of the sweep (cost weight 0) sends each prompt to the model with
        # the highest predicted success: record those picks, out of fold.
        def extra(data, preds, folds, cross_validated):
            picks[names[name]] = (
                data,
                np.nanargmax(np.nan_to_num(preds.success, nan=-1.0), axis=1),
            )
            return [], {}

        return extra

    check = free_model.compare(
        pool, SMOL, X, enc.identity, cv=args.cv, seed=args.seeds[0], extra=diagnose
    )
    reports = {names[k]: v for k, v in check.reports.items()}
    base_data, _ = reports["9 models"]
    q_single = base_data.scores.mean(axis=0)
    c_single = base_data.costs.mean(axis=0)
    best = int(q_single.argmax())
    budget = float(c_single[best])
    print(
        f"\n## dcrouter pool on the {len(pool)} profiled prompts, {args.cv}-fold CV "
        f"(best single model: {base_data.models[best]}, quality {q_single[best]:.3f}, "
        f"${budget * 1000:.4f} per 1k prompts)\n"
    )
    print("| pool | curve | quality at best single's cost | at 25% of it | at 0 $ |")
    print("|---|---|---:|---:|---:|")
    out = {
        "cv": args.cv,
        "pool_rows": len(pool),
        "best_single": base_data.models[best],
        "best_single_quality": float(q_single[best]),
        "best_single_usd_per_1k": budget * 1000,
        **{f"profile_{k}": v for k, v in overall.items()},
    }
    pool_rows = []
    for name, (_data, rep) in reports.items():
        for cv_ in rep.curves:
            if cv_.name not in ("router", "random", "oracle"):
                continue
            cells = [M.quality_at_cost(cv_.cost, cv_.quality, b) for b in (budget, budget / 4, 0)]
            fmt = ["-" if c is None else f"{c:.3f}" for c in cells]
            print(f"| {name} | {cv_.name} | {fmt[0]} | {fmt[1]} | {fmt[2]} |")
            pool_rows.append([name, cv_.name, *cells])
    tables.append(
        {
            "title": f"the dcrouter pool on the profiled prompts, {args.cv}-fold CV by prompt text",
            "columns": [
                "pool",
                "router / baseline",
                "quality at the best single model's cost",
                "at 25% of it",
                "at $0",
            ],
            "formats": ["", "", ".3f", ".3f", ".3f"],
            "rows": pool_rows,
        }
    )
    # Does the free model lower the router's quality at any budget (free_model.py)?
    grid, worse = check.grid, check.worse
    print(
        f"\nbudgets (of {len(grid)}, $0 to the priciest model) where the router with SmolLM2 "
        f"is worse than without: {len(worse)}"
    )
    for g, qa, qb in worse[:10]:
        print(f"  ${g * 1000:.4f}/1k: without {qa:.3f}, with {qb}")
    out["budget_grid"] = len(grid)
    out["budgets_worse_with_smollm2"] = len(worse)
    out["worst_drop_with_smollm2"] = check.worst_drop
    out["budgets_worse_usd_per_1k"] = [1000 * worse[0][0], 1000 * worse[-1][0]] if worse else None
    d9, p9 = picks["9 models"]
    d10, p10 = picks["10 models (+SmolLM2 $0)"]
    rows = np.arange(len(p10))
    q9, q10 = d9.scores[rows, p9], d10.scores[rows, p10]
    smol = p10 == d10.models.index(SMOL)
    differ = np.array([d9.models[i] for i in p9]) != np.array([d10.models[i] for i in p10])
    print(
        f"\nat cost weight 0 (each prompt to its highest predicted success): quality "
        f"{q9.mean():.3f} without SmolLM2, {q10.mean():.3f} with; the picks differ on "
        f"{int(differ.sum())} of {len(rows)} prompts; SmolLM2 is picked on {int(smol.sum())}"
    )
    if smol.any():
        print(
            f"  where it scored {q10[smol].mean():.3f} and the 9-model router's pick "
            f"{q9[smol].mean():.3f}"
        )
    out["cost_weight_0"] = {
        "quality_without": float(q9.mean()),
        "quality_with": float(q10.mean()),
        "picks_differ": int(differ.sum()),
        "smollm2_picked": int(smol.sum()),
    }
    # The same check on other fold splits: which prompts are held out together moves a few
    # near-chance answers, and the check counts any drop at all.
    by_seed = []
    for seed in args.seeds:
        c = (
            check
            if seed == args.seeds[0]
            else free_model.compare(pool, SMOL, X, enc.identity, cv=args.cv, seed=seed)
        )
        for curve in ("router", NO_SHARED):
            worse = c.worse_on(curve)
            drop = max((qa - qb for _, qa, qb in worse if qb is not None), default=0.0)
            by_seed.append([seed, curve, len(worse), drop])
    print(f"\nthe free-model check by fold seed ({args.cv}-fold CV, {len(check.grid)} budgets)")
    print("| fold seed | curve | budgets worse with SmolLM2 | worst drop |")
    print("|---:|---|---:|---:|")
    for seed, curve, n, drop in by_seed:
        print(f"| {seed} | {curve} | {n} | {drop:.4f} |")
    out["budgets_worse_by_fold_seed"] = {
        f"{seed}/{curve}": {"budgets_worse": n, "worst_drop": drop}
        for seed, curve, n, drop in by_seed
    }
    tables.append(
        {
            "title": "the free-model check by fold seed (the gate: router-no-shared, seed 0)",
            "columns": ["fold seed", "curve", "budgets worse with SmolLM2", "worst drop"],
            "formats": ["int", "", "int", ".4f"],
            "rows": by_seed,
        }
    )
    record(
        "smollm2_pool",
        title="SmolLM2-135M's own profile, and a free tenth model in the dcrouter pool",
        command=command_line(),
        figures=out,
        tables=tables,
    )


if __name__ == "__main__":
    main()
