"""The shipped answer verifier: measured, compared with the one it would replace, rebuilt.

    python bench/verifier.py [--force]          # `make verifier` (FORCE=1 passes --force)

Learns from Mixtral's RouteLLM GSM8K answers and SmolLM2's own profiled answers
(data/routing/routellm.jsonl, data/routing/smollm2*.jsonl), as `router train-verifier` does
(router/evaluation/verifier_build.py): 5-fold CV by prompt text, leave one task out and leave one
answering model out, the router and the verifier both trained without the held-out part. Prints
the figures beside those the shipped verifier recorded, refuses to replace it when the new one
is worse on the CV or the leave-one-task-out verdict AUROC, or when its cascade does worse than
the router alone in CV or leaving a task or a model out (exit 1), unless --force, and records
the figures in bench/results/verifier.json either way (`shipped` says whether it was written).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Small matrices: BLAS threads only contend on a shared machine (router/core/verifier.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results import record  # noqa: E402

from router.cli.training import print_verifier_report  # noqa: E402
from router.core.config import load_config  # noqa: E402
from router.core.data import read_many  # noqa: E402
from router.core.encoder import load_encoder  # noqa: E402
from router.core.verifier import default_verifier_path  # noqa: E402
from router.evaluation.verifier_build import build  # noqa: E402

MODELS = ["mistralai/Mixtral-8x7B-Instruct-v0.1", "smollm2-135m"]
COLUMNS = [
    "held out",
    "rows",
    "verdict AUROC",
    "within",
    "answer side",
    "prompt side",
    "answer weight",
    "out of distribution",
    "router APGR",
    "prompt-only APGR",
    "cascade APGR",
    "hybrid APGR",
    "router APGR within",
    "cascade APGR within",
]


def _row(g: dict) -> list:
    keys = [
        "verifier_auroc",
        "verifier_auroc_within",
        "answer_side_auroc",
        "prompt_auroc_on_answered_rows",
        "mean_answer_weight",
        "out_of_distribution_share",
        "router_apgr",
        "prompt_apgr",
        "cascade_apgr",
        "hybrid_apgr",
        "router_apgr_within",
        "cascade_apgr_within",
    ]
    return [g["mode"], g["rows"], *(g.get(k) for k in keys)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="replace a verifier with better figures")
    ap.add_argument("--out", type=Path, default=default_verifier_path())
    ap.add_argument("--cv", type=int, default=5)
    args = ap.parse_args()

    files = [
        ROOT / "data/routing/routellm.jsonl",
        *sorted(ROOT.glob("data/routing/smollm2*.jsonl")),
    ]
    cfg = load_config(ROOT / "config.yaml")
    enc = load_encoder(cfg.encoder.name, cfg.encoder.max_tokens, cache_size=0, threads=2)
    report = build(
        read_many(files),
        args.out,
        enc,
        MODELS,
        cv=args.cv,
        force=args.force,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print_verifier_report(report)
    f = report.figures
    record(
        "verifier",
        title="Cascades: the answer verifier in and out of its training distribution",
        command="make verifier",
        figures={
            "shipped": report.written,
            "data": f["data"],
            **{k: f[k] for k in ("cv", "task", "model") if k in f},
            "comparison": [list(r) for r in report.comparison.rows],
            "worse_than_replaced": report.comparison.worse,
        },
        tables=[
            {
                "title": "The verdict and the cascade, the held-out part unseen by router and verifier",
                "columns": COLUMNS,
                "rows": [_row(f[k]) for k in ("cv", "task", "model") if k in f],
            }
        ],
        notes=f"data: {', '.join(p.name for p in files)}; "
        + ("written to the shipped verifier" if report.written else "NOT written (worse)"),
    )
    if not report.written:
        print(
            f"not written over {args.out}, the new verifier is worse: "
            f"{', '.join(report.comparison.worse)}; make verifier FORCE=1 to replace it anyway",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
