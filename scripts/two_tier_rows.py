"""Routing rows narrowed to two tiers, for `router eval --cascade` on profiled data.

    python scripts/two_tier_rows.py data/routing/smollm2.jsonl --cheap smollm2-135m --out rows.jsonl
    python scripts/two_tier_rows.py data/routing/routellm.jsonl data/routing/smollm2.jsonl \
        --cheap mistralai/Mixtral-8x7B-Instruct-v0.1 --cheap smollm2-135m --answered --out rows.jsonl

Keeps the rows that score the cheap model, with two columns: the cheap model, and "large" —
the row's best-scoring non-cheap model on average over the rows that share its model set (its
dataset), or `--large NAME`. The cheap model's `answers`, `logprobs` and `usage` stay; costs are
the two models' own. Several `--cheap` models keep only their answered rows, pooled under one
column "cheap" with `cheap_model` naming who answered (for `--group-by model`).
(router/evaluation/two_tier.py)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router.core.data import read_many, write_jsonl  # noqa: E402
from router.evaluation.two_tier import answered_rows, two_tier  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+", type=Path)
    ap.add_argument("--cheap", required=True, action="append", help="repeatable")
    ap.add_argument("--large", default=None)
    ap.add_argument("--answered", action="store_true", help="only rows with the cheap answer")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    rows = read_many(args.data)
    if len(args.cheap) > 1 or args.answered:
        if args.large is not None:
            ap.error("--large applies to one --cheap model without --answered")
        out = answered_rows(rows, args.cheap)
    else:
        out = two_tier(rows, args.cheap[0], args.large)
    n = write_jsonl(out, args.out)
    print(f"wrote {n} rows to {args.out}")


if __name__ == "__main__":
    main()
