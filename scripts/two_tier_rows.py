"""Routing rows narrowed to two tiers, for `router eval --cascade` on profiled data.

    python scripts/two_tier_rows.py data/routing/smollm2.jsonl --cheap smollm2-135m --out rows.jsonl

Keeps the rows that score the cheap model, with two columns: the cheap model, and "large" —
the row's best-scoring non-cheap model on average over the rows that share its model set (its
dataset), or `--large NAME`. The cheap model's `answers`, `logprobs` and `usage` stay; costs are
the two models' own. Rows of datasets with different model sets become one two-model set.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router.core.data import Example, read_many, write_jsonl  # noqa: E402


def two_tier(rows: list[Example], cheap: str, large: str | None = None) -> list[Example]:
    groups: dict[tuple[str, ...], list[Example]] = defaultdict(list)
    for ex in rows:
        if cheap in ex.scores:
            groups[tuple(sorted(ex.scores))].append(ex)
    out = []
    for models, exs in groups.items():
        others = [m for m in models if m != cheap and m not in exs[0].cheap_models]
        if large is not None:
            others = [m for m in others if m == large]
        if not others:
            continue
        best = max(others, key=lambda m: np.mean([e.scores[m] for e in exs]))
        for ex in exs:
            keep = {k: v for k, v in ex.extra.items() if k not in ("answers", "logprobs", "usage")}
            for k in ("answers", "logprobs", "usage"):
                v = ex.extra.get(k)
                if isinstance(v, dict) and cheap in v:
                    keep[k] = {cheap: v[cheap]}
            costs = None
            if ex.costs and cheap in ex.costs and best in ex.costs:
                costs = {cheap: ex.costs[cheap], "large": ex.costs[best]}
            out.append(
                Example(
                    id=ex.id,
                    prompt=ex.prompt,
                    messages=ex.messages,
                    source=ex.source,
                    domain=ex.domain,
                    scores={cheap: ex.scores[cheap], "large": ex.scores[best]},
                    costs=costs,
                    cheap_models=[cheap],
                    extra={**keep, "large_model": best},
                )
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+", type=Path)
    ap.add_argument("--cheap", required=True)
    ap.add_argument("--large", default=None)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    rows = two_tier(read_many(args.data), args.cheap, args.large)
    n = write_jsonl(rows, args.out)
    print(f"wrote {n} rows to {args.out}")


if __name__ == "__main__":
    main()
