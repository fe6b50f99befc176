"""A new model joins from its profiled rows alone: its success AUROC after 25, 50, 100, 200 rows.

    python bench/new_model.py [--reps 5]        (make bench-new-model)

Each dcrouter model in turn is the new one: the shared-difficulty model (router/core/irt.py, the
shipped scorer's settings) is fitted on every other model's outcomes (dcrouter and RouteLLM), on
four fifths of the prompts; the new model then joins from n of its rows on those prompts
(`SharedDifficulty.add_model`, the prompt side frozen), and its success is ranked on the fifth
of the prompts nobody trained on. "joined" is the head `router add-model` gives it
(`heads.joined_head`: its ability on the shared difficulty, corrected by its rows as far as
they show they can be trusted). Beside it: the shared difficulty alone (no rows of the model
at all), its ability alone (no correction), and a logistic regression on the same n rows
alone. SmolLM2-135M, profiled by `router profile`, joins the same way from its rows in
data/routing/smollm2.jsonl.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from results import command_line, record  # noqa: E402

from router.core.config import load_config  # noqa: E402
from router.core.data import group_folds, group_key, read_jsonl  # noqa: E402
from router.core.encoder import load_encoder  # noqa: E402
from router.core.heads import joined_head  # noqa: E402
from router.core.irt import SharedDifficulty  # noqa: E402
from router.core.scorer import Scorer  # noqa: E402
from router.evaluation.train import embed_examples  # noqa: E402

SIZES = (25, 50, 100, 200)


def auroc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    y = y > 0.5
    return None if y.all() or not y.any() else float(roc_auc_score(y, s))


def own_regression(X: np.ndarray, y: np.ndarray, Xt: np.ndarray) -> np.ndarray | None:
    from sklearn.linear_model import LogisticRegression

    labels = (y > 0.5).astype(int)
    if labels.min() == labels.max():
        return None
    return LogisticRegression(max_iter=2000).fit(X, labels).decision_function(Xt)


def mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(float(np.mean(kept)), 4) if kept else None


def joins(shared_of, X, Y, names, new, train, test, rng, reps):
    """One row of the table: the new model's AUROC by rows it joined from."""
    j = names.index(new)
    others = [i for i in range(len(names)) if i != j]
    base = shared_of(X[train], Y[np.ix_(train, others)])
    labelled = train[~np.isnan(Y[train, j])]
    tested = test[~np.isnan(Y[test, j])]
    row = {"model": new, "rows_available": int(len(labelled))}
    row["difficulty_alone"] = auroc(Y[tested, j], -base.difficulty_logit(X[tested]))
    for n in SIZES:
        if n > len(labelled):
            for kind in ("joined", "ability", "own", "corrected"):
                row[f"{kind}_{n}"] = None
            continue
        joined, ability, own, corrected = [], [], [], 0
        for _ in range(reps):
            pick = rng.choice(labelled, n, replace=False)
            m = SharedDifficulty.from_arrays(base.to_arrays())
            col, w, b, C = joined_head(m, X[pick], Y[pick, j])
            shared_logit = m.logits(X[tested])[:, col]
            ability.append(auroc(Y[tested, j], shared_logit))
            joined.append(auroc(Y[tested, j], shared_logit + X[tested] @ w + b))
            corrected += C > 0
            s = own_regression(X[pick], Y[pick, j], X[tested])
            own.append(None if s is None else auroc(Y[tested, j], s))
        row[f"joined_{n}"], row[f"ability_{n}"] = mean(joined), mean(ability)
        row[f"own_{n}"], row[f"corrected_{n}"] = mean(own), corrected / reps
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="random draws of the n rows")
    args = ap.parse_args()
    cfg = load_config(ROOT / "config.yaml")
    enc = load_encoder(cfg.encoder.name, cfg.encoder.max_tokens, cache_size=0)
    rows = []
    for name in ("dcrouter", "routellm", "smollm2"):
        rows += read_jsonl(ROOT / "data" / "routing" / f"{name}.jsonl")
    names = sorted({m for r in rows for m in r.scores})
    X = embed_examples(enc, rows).astype(np.float64)
    Y = np.array([[r.scores.get(m, np.nan) for m in names] for r in rows])
    folds = group_folds(np.array([group_key(r) for r in rows]), 5, 0)
    train, test = np.flatnonzero(folds != 0), np.flatnonzero(folds == 0)
    dims = Scorer().shared_dims

    def shared_of(Xf, Yf):
        return SharedDifficulty(dims).fit(Xf, Yf)

    rng = np.random.default_rng(0)
    dc_models = sorted({m for r in rows if r.source.startswith("dcrouter/") for m in r.scores})
    table = []
    for new in [m for m in dc_models if m != "smollm2-135m"] + ["smollm2-135m"]:
        row = joins(shared_of, X, Y, names, new, train, test, rng, args.reps)
        print(row, flush=True)
        table.append(row)
    kinds = {"joined": "joined", "ability": "ability alone", "own": "own LR"}
    columns = ["model", "rows", "difficulty alone"] + [
        f"{label} {n}" for n in SIZES for label in kinds.values()
    ]
    cells = [
        [r["model"], r["rows_available"], r["difficulty_alone"]]
        + [r[f"{kind}_{n}"] for n in SIZES for kind in kinds]
        for r in table
    ]
    dc = [r for r in table if r["model"] != "smollm2-135m"]
    figures = {
        f"mean_{kind}_{n}": mean([r[f"{kind}_{n}"] for r in dc]) for kind in kinds for n in SIZES
    }
    figures["mean_difficulty_alone"] = mean([r["difficulty_alone"] for r in dc])
    figures |= {f"share_corrected_{n}": mean([r[f"corrected_{n}"] for r in table]) for n in SIZES}
    smol = next(r for r in table if r["model"] == "smollm2-135m")
    figures |= {f"smollm2_{kind}_{n}": smol[f"{kind}_{n}"] for kind in kinds for n in SIZES}
    figures["smollm2_rows"] = smol["rows_available"]
    record(
        "new_model",
        title="A new model joins from its profiled rows",
        command=command_line(),
        figures=figures,
        tables=[
            {
                "title": "success AUROC on prompts nobody trained on, by rows the model joined from",
                "columns": columns,
                "formats": ["", "int", ".3f"] + [".3f"] * (len(kinds) * len(SIZES)),
                "rows": cells,
            }
        ],
        notes=f"{args.reps} random draws of the rows per size; shared dims {dims}; "
        "share_corrected_n: the share of joins (every model, every draw) whose own rows chose a "
        "correction (heads.joined_head)",
    )


if __name__ == "__main__":
    main()
