"""Budget controller: does it hold a large-model share through a shift in traffic?

    python bench/budget.py [--config config.yaml] [--policy balanced] [--n 10000]
                           [--target 0.3] [--window-s 1000] [--rate 1.0]

Replays `n` shipped prompts (data/routing/routellm.jsonl and dcrouter.jsonl) through the policy with a budget of
`large_share: target`: the first half from an easy pool (MMLU questions), the second half from a
hard pool (grade-school and competition maths, code, GPQA), the way traffic shifts when a new
client arrives. Requests arrive every 1/rate seconds of simulated time. Each prompt is scored
once by the configured scorer (batched); each decision then runs through the SDK's own steps
(`BudgetController.escalation` → `CompiledPolicy.decide` → `BudgetController.record`), in order.

Prints the large share per window (non-overlapping, `window_s` of requests) with the controller
and with the policy's fixed threshold, and whether every settled window (from the second window
after the start and after the shift) is within ±2 points of the target. Writes a plot and
records bench/results/budget.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np
from results import command_line, record

ROOT = Path(__file__).resolve().parent.parent
EASY = ("mmlu/",)
HARD = (
    "gsm8k",
    "dcrouter/math",
    "dcrouter/gsm8k",
    "dcrouter/agentverse-mgsm",
    "dcrouter/mbpp",
    "dcrouter/human_eval",
    "dcrouter/gpqa",
    "dcrouter/agentverse-logicgrid",
    "mt_bench/math",
    "mt_bench/coding",
    "mt_bench/reasoning",
)
TOLERANCE = 0.02  # a settled window within ±2 points of the target holds it


DATA = [ROOT / "data" / "routing" / "routellm.jsonl", ROOT / "data" / "routing" / "dcrouter.jsonl"]


def load_pools(files: list[Path]) -> tuple[list[str], list[str]]:
    easy, hard = [], []
    for f in files:
        for line in f.open(encoding="utf-8"):
            row = json.loads(line)
            src, text = row.get("source", ""), row.get("prompt")
            if not isinstance(text, str) or not text.strip():
                continue
            if src.startswith(EASY):
                easy.append(text)
            elif src.startswith(HARD):
                hard.append(text)
    return easy, hard


def draw(pool: list[str], k: int, rng: random.Random) -> list[str]:
    """k prompts from pool, without replacement while it lasts."""
    out: list[str] = []
    while len(out) < k:
        out += rng.sample(pool, min(len(pool), k - len(out)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    ap.add_argument("--data", type=Path, nargs="+", default=DATA, help="routing-data files")
    ap.add_argument("--policy", default="balanced")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--target", type=float, default=0.3)
    ap.add_argument("--window-s", type=float, default=1000.0)
    ap.add_argument("--rate", type=float, default=1.0, help="requests per simulated second")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "budget_controller.png")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

    from router import Router
    from router.core.request import request_facts
    from router.serving.budget import BudgetController

    rng = random.Random(args.seed)
    easy, hard = load_pools(args.data)
    half = args.n // 2
    texts = draw(easy, half, rng) + draw(hard, args.n - half, rng)
    router = Router.from_config(args.config)
    compiled = router.policy(args.policy)
    # The policy file's content plus a budget, validated like a policy file.
    policy = type(compiled.policy).model_validate(
        {
            **compiled.policy.model_dump(),
            "budget": {"large_share": args.target, "window_s": args.window_s},
        }
    )

    t0 = time.perf_counter()
    routing = [router.text_of(t).strip() for t in texts]
    X = router.encoder.encode(routing, batch_size=64)
    scores = router.scorer.predict(X, routing)
    score_s = time.perf_counter() - t0

    clock = {"t": 1_700_000_000.0}
    ctl = BudgetController(policy, clock=lambda: clock["t"])
    large_ctl, large_fixed, thresholds = [], [], []
    t0 = time.perf_counter()
    for i, text in enumerate(texts):
        clock["t"] += 1.0 / args.rate
        facts = request_facts(
            [{"role": "user", "content": text}], {}, router.config.expected_output_tokens
        )
        # The router's own inputs to the pure policy, as Router.route_many passes them.
        inputs = router.decide_inputs(scores, i)
        esc = ctl.escalation(policy)
        d = compiled.decide(facts, escalation=esc, **inputs)
        ctl.record(d, esc)
        large_ctl.append(d.tier == "large")
        thresholds.append(getattr(esc, ctl.field))
        fixed = compiled.decide(facts, **inputs)
        large_fixed.append(fixed.tier == "large")
    replay_s = time.perf_counter() - t0

    per_window = max(1, int(round(args.window_s * args.rate)))
    large_ctl_a, large_fixed_a = np.array(large_ctl), np.array(large_fixed)
    starts = list(range(0, args.n, per_window))
    rows = []
    for s in starts:
        e = min(args.n, s + per_window)
        settled = (s >= per_window and e <= half) or (s >= half + per_window)
        straddles = s < half < e
        rows.append(
            {
                "requests": f"{s}-{e - 1}",
                "traffic": "shift" if straddles else ("easy" if e <= half else "hard"),
                "controller": float(large_ctl_a[s:e].mean()),
                "fixed_threshold": float(large_fixed_a[s:e].mean()),
                "mean_threshold": float(np.mean(thresholds[s:e])),
                "settled": settled,
            }
        )
    settled = [
        r
        for r in rows
        if r["settled"]
        and int(r["requests"].split("-")[1]) - int(r["requests"].split("-")[0]) + 1 == per_window
    ]
    worst = max(abs(r["controller"] - args.target) for r in settled) if settled else float("nan")
    holds = bool(settled) and worst <= TOLERANCE
    sliding = np.convolve(large_ctl_a, np.ones(per_window) / per_window, mode="valid")
    sliding_fixed = np.convolve(large_fixed_a, np.ones(per_window) / per_window, mode="valid")

    print(
        f"{args.n} prompts ({half} easy: MMLU; {args.n - half} hard: maths, code, GPQA), "
        f"policy {args.policy} ({ctl.field} {ctl.base_threshold}), target large share "
        f"{args.target}, window {args.window_s:g} s at {args.rate:g} req/s = {per_window} requests"
    )
    print(f"scoring {score_s:.1f} s (batched); replay {replay_s:.1f} s")
    print(f"{'requests':>12} {'traffic':>7} {'controller':>10} {'fixed':>7} {'threshold':>9}")
    for r in rows:
        mark = " *" if r["settled"] else ""
        print(
            f"{r['requests']:>12} {r['traffic']:>7} {r['controller']:>10.3f} "
            f"{r['fixed_threshold']:>7.3f} {r['mean_threshold']:>9.3f}{mark}"
        )
    print(
        f"settled windows (*): worst {worst * 100:.1f} points from the target; "
        f"within ±2 points: {'yes' if holds else 'no'}; threshold moves: {ctl.adjustments}"
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, height_ratios=[3, 1.3])
    x = np.arange(per_window - 1, args.n)
    ax.plot(x, sliding_fixed, color="0.6", label="policy's fixed threshold")
    ax.plot(x, sliding, color="C0", label="budget controller")
    ax.axhspan(
        args.target - 0.02, args.target + 0.02, color="C2", alpha=0.2, label="target ±2 points"
    )
    ax.axvline(half, color="k", ls="--", lw=1)
    ax.text(
        half, 0.97, " traffic shifts: easy → hard", va="top", transform=ax.get_xaxis_transform()
    )
    ax.set_ylabel(f"large share, last {per_window} requests")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="upper left")
    ax2.plot(np.arange(args.n), thresholds, color="C1")
    ax2.axhline(ctl.base_threshold, color="0.6", lw=1)
    ax2.axvline(half, color="k", ls="--", lw=1)
    ax2.set_ylabel(ctl.field)
    ax2.set_xlabel("request")
    fig.suptitle(f"Budget controller, large_share {args.target}: {args.n} shipped prompts")
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=110)
    plot = args.plot.resolve()
    in_repo = plot.is_relative_to(ROOT)
    print(f"plot: {plot.relative_to(ROOT) if in_repo else plot}")

    def mean_of(traffic: str, key: str) -> float | None:
        vals = [r[key] for r in rows if r["settled"] and r["traffic"] == traffic]
        return float(np.mean(vals)) if vals else None

    after_shift = next((r for r in rows if int(r["requests"].split("-")[0]) >= half), None)
    record(
        "budget",
        title="Budget controller: a large share held through a shift in traffic",
        command=command_line(),
        figures={
            "n": args.n,
            "easy": half,
            "hard": args.n - half,
            "policy": args.policy,
            "encoder": router.encoder.identity,
            "field": ctl.field,
            "base_threshold": ctl.base_threshold,
            "target": args.target,
            "window_s": args.window_s,
            "rate": args.rate,
            "window_requests": per_window,
            "tolerance_points": TOLERANCE * 100,
            "worst_settled_points": None if not settled else worst * 100,
            "worst_settled_share": None
            if not settled
            else max((r["controller"] for r in settled), key=lambda x: abs(x - args.target)),
            "first_after_shift_share": after_shift and after_shift["controller"],
            "holds": holds,
            "adjustments": ctl.adjustments,
            "fixed_share_easy": mean_of("easy", "fixed_threshold"),
            "fixed_share_hard": mean_of("hard", "fixed_threshold"),
            "threshold_easy": mean_of("easy", "mean_threshold"),
            "threshold_hard": mean_of("hard", "mean_threshold"),
            "scoring_s": score_s,
            "replay_s": replay_s,
        },
        tables=[
            {
                "title": "large share per window",
                "columns": [
                    "requests",
                    "traffic",
                    "large share, controller",
                    "large share, policy's fixed threshold",
                    f"mean {ctl.field} used",
                    "settled",
                ],
                "formats": ["", "", ".3f", ".3f", ".3f", ""],
                "rows": [
                    [
                        r["requests"],
                        r["traffic"],
                        r["controller"],
                        r["fixed_threshold"],
                        r["mean_threshold"],
                        r["settled"],
                    ]
                    for r in rows
                ],
            }
        ],
        plots=[str(plot.relative_to(ROOT))] if in_repo else [],
    )


if __name__ == "__main__":
    main()
