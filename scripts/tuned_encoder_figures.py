"""The router's own figures with an encoder tuned inside each fold, beside the frozen encoder's.

    python scripts/tuned_encoder_figures.py tune --split cv0 --minutes 12   # one per split
    python scripts/tuned_encoder_figures.py measure --results FILE

scripts/tune_encoder.py asks whether tuning helps two probes; this asks the question that
would decide shipping: `make model`'s gated figures (5-fold CV by prompt text and leaving a
source out, on RouteLLM and dcrouter, each fold trained on the other datasets too; the
shipped design), with the encoder tuned on the routing objective inside each fold, so that
no fold is scored by an encoder that saw its test prompts.

- `cv0` ... `cv4`: tuned on every row of every dataset except the prompts of fold k of
  RouteLLM and of dcrouter (the folds `router eval --cv 5` draws), and anything sharing their
  opening (`group_key`). Fold k of either dataset is scored with the `cvk` encoder.
- `loso-a`, `loso-b`: tuned without any row of the tasks of one half (`HALVES`). A source
  left out is scored with the encoder that never saw its half: it saw about half of the
  other tasks, where the scorer of that fold sees all of them (the tuned encoder is measured
  at a disadvantage there; one tuning per source would be 17 runs).

Frozen and tuned are the same torch encoder (MiniLM's first two layers, float32), so the two
columns differ by the tuning alone; the shipped int8 ONNX encoder gives slightly other figures.
Each tuning run is resumable (scripts/tune_encoder.py); embeddings are cached beside its
checkpoint, and `measure` keeps each report in `--results` as it finishes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import tune_encoder as T  # noqa: E402  (scripts/tune_encoder.py)
from build_scorer import DATA, EVAL_FILES, TRAIN_FILES  # noqa: E402  (make model's data)

from router.core.data import Example, group_key, read_jsonl, read_many, task_of  # noqa: E402
from router.core.encoder import MiniLMTokens  # noqa: E402

CV = 5
# The tasks of the two halves: each about half of dcrouter's rows; RouteLLM's MMLU in one,
# its GSM8K and MT-Bench in the other.
HALVES = {
    "loso-a": {
        "mmlu",
        "math",
        "natural_qa",
        "openbook_qa",
        "mbpp",
        "agentverse-mgsm",
        "commongen",
    },
    "loso-b": {
        "gsm8k",
        "mt_bench",
        "trivia_qa",
        "arc_challenge",
        "commonsense_qa",
        "gpqa",
        "human_eval",
        "agentverse-logicgrid",
    },
}
SPLITS = [f"cv{k}" for k in range(CV)] + list(HALVES)
FROZEN = "frozen"
DESIGN = {"shared_dims": None}  # the shipped stack (`router-no-shared`)


def eval_data():
    from router.evaluation.evaluate import EvalData

    return {name: EvalData.from_examples(read_jsonl(DATA / f)) for name, f in EVAL_FILES.items()}


def held_out_mask(split: str, rows: list[Example]) -> np.ndarray:
    """True for the tuning rows a split must not see."""
    if split in HALVES:
        return np.array([task_of(ex.source) in HALVES[split] for ex in rows])
    from router.evaluation.evaluate import fold_ids

    k = int(split.removeprefix("cv"))
    keys: set[str] = set()
    for data in eval_data().values():
        folds = fold_ids(data, CV, 0)
        keys |= {group_key(ex) for ex, f in zip(data.examples, folds, strict=True) if f == k}
    return np.array([group_key(ex) in keys for ex in rows])


def embeddings_path(runs: Path, split: str) -> Path:
    return runs / split / "embeddings.npz"


def texts_and_seqs(rows: list[Example]) -> tuple[list[str], list[list[int]]]:
    texts = sorted({ex.text() for ex in rows})
    tokens = MiniLMTokens()
    return texts, [tokens(t) for t in texts]


def save_embeddings(path: Path, texts: list[str], X: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, texts=np.array(texts, dtype=object), X=X)


def load_embeddings(path: Path) -> dict[str, np.ndarray]:
    blob = np.load(path, allow_pickle=True)
    return dict(zip(blob["texts"].tolist(), blob["X"], strict=True))


def tune_split(args) -> None:
    rows, datasets = T.load_rows()
    y, _heads = T.outcome_table(rows, datasets)
    texts, seqs = texts_and_seqs(rows)
    out = embeddings_path(args.runs, args.split)
    if args.split == FROZEN:
        model = T.build_encoder(args.layers)
    else:
        keep = np.flatnonzero(~held_out_mask(args.split, rows))
        print(f"{args.split}: tuning on {len(keep)} of {len(rows)} rows", flush=True)
        seq_of = dict(zip(texts, seqs, strict=True))
        model = T.tune(
            args.runs / args.split,
            [seq_of[rows[i].text()] for i in keep],
            y[keep],
            args.layers,
            args.minutes,
        )
    save_embeddings(out, texts, T.embed(model, seqs))
    print(f"{args.split}: wrote {out}", flush=True)


def split_of(mode: str, fold) -> str:
    """The tuned encoder that never saw fold `fold`'s prompts (CV) or its task (a source out)."""
    if mode == "cv":
        return f"cv{int(fold)}"
    task = task_of(str(fold))
    return next(h for h, tasks in HALVES.items() if task in tasks)


def measure(args) -> None:
    from router.evaluation import gate
    from router.evaluation.evaluate import TrainAlso, evaluate

    needed = [FROZEN, *(SPLITS if "tuned" in args.encoders else [])]
    missing = [s for s in needed if not embeddings_path(args.runs, s).is_file()]
    if missing:
        raise SystemExit(f"not tuned yet: {', '.join(missing)} (tune --split NAME)")
    cache: dict[str, dict[str, np.ndarray]] = {}

    def emb(split: str) -> dict[str, np.ndarray]:
        if split not in cache:
            cache[split] = load_embeddings(embeddings_path(args.runs, split))
        return cache[split]

    def stack(split: str, rows: list[Example]) -> np.ndarray:
        e = emb(split)
        return np.stack([e[ex.text()] for ex in rows]).astype(np.float32)

    results = json.loads(args.results.read_text()) if args.results.is_file() else {}
    for name, data in eval_data().items():
        also = read_many([DATA / f for f in TRAIN_FILES if f != EVAL_FILES[name]])
        for mode in gate.MODES:
            for encoder in args.encoders:
                key = f"{encoder}/{name}/{mode}"
                if key in results:
                    continue

                def fold_embeddings(fold, mode=mode, encoder=encoder, data=data, also=also):
                    split = FROZEN if encoder == FROZEN else split_of(mode, fold)
                    return stack(split, data.examples), stack(split, also)

                print(f"{key} ...", flush=True)
                report = evaluate(
                    data,
                    stack(FROZEN, data.examples),
                    encoder_identity=f"minilm-l2-torch-{encoder}",
                    cv=CV if mode == "cv" else None,
                    group_by_source=mode == "loso",
                    train_also=TrainAlso(also, stack(FROZEN, also)),
                    scorer_params=DESIGN,
                    fold_embeddings=fold_embeddings,
                ).to_json()
                kind = gate.GATED[gate.kind_of(report)]
                results[key] = {
                    curve: report["results"][curve].get(kind) for curve in ("router", "knn")
                } | {"figure": kind}
                print(f"{key}: {results[key]}", flush=True)
                args.results.write_text(json.dumps(results, indent=1))
    print("| data | mode | figure | frozen | tuned | kNN frozen | kNN tuned |")
    print("|---|---|---|---|---|---|---|")
    for name in EVAL_FILES:
        for mode in gate.MODES:
            f, t = results.get(f"{FROZEN}/{name}/{mode}"), results.get(f"tuned/{name}/{mode}")
            if f and t:
                print(
                    f"| {name} | {mode} | {f['figure']} | {f['router']:.4f} | {t['router']:.4f} "
                    f"| {f['knn']:.4f} | {t['knn']:.4f} |"
                )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tune", help="tune the encoder of one split and embed every prompt")
    t.add_argument("--split", required=True, choices=[FROZEN, *SPLITS])
    t.add_argument("--minutes", type=float, default=12.0, help="tuning, at most 60")
    t.add_argument("--layers", type=int, default=2, choices=range(1, 7))
    m = sub.add_parser("measure", help="the gated figures, frozen and tuned")
    m.add_argument("--results", type=Path, default=Path("tuned_encoder_figures.json"))
    m.add_argument("--encoders", nargs="+", choices=[FROZEN, "tuned"], default=[FROZEN, "tuned"])
    for p in (t, m):
        p.add_argument("--runs", type=Path, default=Path("tune_encoder_runs/folds"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # one core: the machine is shared (docs/performance.md)
    if args.cmd == "tune":
        if not 0 < args.minutes <= 60:
            ap.error(f"--minutes {args.minutes}: more than 0 and at most 60")
        tune_split(args)
    else:
        measure(args)


if __name__ == "__main__":
    main()
