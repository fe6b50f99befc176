"""Which difficulty head ranks failures better on tasks the scorer never saw, and on prompts
like its training ones? (docs/evaluation.md, "The difficulty head: the stack and the shared
difficulty, blended")

    python scripts/difficulty_transfer.py --folds task --seed 0
    python scripts/difficulty_transfer.py --folds prompt --seed 0

Every shipped dataset (`make model`'s training files) in 5 folds: of whole tasks (`task_of`:
every prompt of a held-out task, in every dataset, is unseen) or of prompts (`group_folds`).
Per fold, two scorers of the shipped design are trained on the rest, one per difficulty head
(`Scorer(difficulty=...)`: "stack" and "shared"); "blend", the default, is their log-odds
mean, which is what `Scorer(difficulty="blend")` predicts (tests/test_irt.py), computed here
from the two without a third fit. On the held-out rows each head's difficulty ranks every
model's failures (a score below 0.5): AUROC pooled over all
held-out rows, for the cheap tier's failure (the head's own target), the mean over every model,
and the mean over tasks of the cheap tier's AUROC within each task.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sklearn.metrics import roc_auc_score  # noqa: E402

from router.core.config import load_config  # noqa: E402
from router.core.data import group_folds, read_many, task_of  # noqa: E402
from router.core.encoder import load_encoder  # noqa: E402
from router.core.heads import head_targets, logit, sigmoid  # noqa: E402
from router.core.scorer import Scorer  # noqa: E402
from router.evaluation.train import embed_examples  # noqa: E402

TRAIN_FILES = ("routellm.jsonl", "dcrouter.jsonl", "smollm2.jsonl")  # as make model
HEADS = ("stack", "shared")


def failure_auroc(score: np.ndarray, signal: np.ndarray) -> float:
    """AUROC of `signal` for a failure (a graded score below 0.5); NaN scores are left out."""
    known = ~np.isnan(score)
    failed = score[known] < 0.5
    if failed.all() or not failed.any():
        return float("nan")
    return float(roc_auc_score(failed, signal[known]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folds", choices=("task", "prompt"), default="task")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rows = read_many([ROOT / "data" / "routing" / f for f in TRAIN_FILES])
    cfg = load_config(ROOT / "config.yaml")
    enc = load_encoder(cfg.encoder.name, cfg.encoder.max_tokens, cache_size=0)
    X = embed_examples(enc, rows).astype(np.float64)
    meta = json.loads((ROOT / "router/artifacts/default/scorer.json").read_text())
    design = {k: meta["params"][k] for k in ("shared_dims", "knn_shrink", "source_prior", "knn_k")}
    tasks = np.array([task_of(r.source) for r in rows])
    folds = group_folds(tasks if args.folds == "task" else rows, 5, args.seed)
    _, models, Y = head_targets(rows)
    print(f"{len(rows)} rows, {len(np.unique(tasks))} tasks, {args.folds} folds, seed {args.seed}")

    difficulty = {h: np.full(len(rows), np.nan) for h in HEADS}
    for k in np.unique(folds):
        started = time.time()
        train, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        texts = [rows[i].text() for i in test]
        for head in HEADS:
            scorer = Scorer(**design, difficulty=head).fit(
                X[train], [rows[i] for i in train], enc.identity
            )
            # The shipped design: the stack without the shared model (make model's choice).
            difficulty[head][test] = scorer.ablated().predict(X[test], texts).difficulty
        print(f"fold {k}: {len(test)} held out, {time.time() - started:.0f} s", flush=True)

    # Scorer(difficulty="blend"): the two averaged in log-odds.
    difficulty["blend"] = sigmoid((logit(difficulty["stack"]) + logit(difficulty["shared"])) / 2)
    cheap_ok = 1.0 - Y[:, 0]  # the cheap tier's outcome
    print("\n| difficulty head | cheap tier | every model (mean) | within a task (mean) |")
    print("|---|---|---|---|")
    for head, s in difficulty.items():
        every = np.nanmean([failure_auroc(Y[:, 2 + j], s) for j in range(len(models))])
        within = [failure_auroc(cheap_ok[tasks == t], s[tasks == t]) for t in np.unique(tasks)]
        print(
            f"| {head} | {failure_auroc(cheap_ok, s):.4f} | {every:.4f} "
            f"| {np.nanmean(within):.4f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
