"""Routing rows narrowed to two tiers: a cheap model that answered, and the best large one.

`router eval --cascade` and the verifier's measurements compare a cheap model's (judged) answer
with a large model's on the same prompt. `two_tier` keeps the rows that score the cheap model,
with two columns: the cheap model, and "large" — the row's best-scoring non-cheap model on
average over the rows that share its model set (its dataset), or a given one. The cheap model's
`answers`, `logprobs` and `usage` stay; costs are the two models' own. `answered_rows` does it
for several cheap models at once and pools their answers under one column, "cheap", naming the
model that answered in each row's `cheap_model`: one dataset for leave-one-model-out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from router.core.data import DataError, Example

POOLED = "cheap"  # the cheap column of rows pooled from several cheap models


def two_tier(rows: Sequence[Example], cheap: str, large: str | None = None) -> list[Example]:
    """`rows` that score `cheap`, as {cheap, "large"} rows (see the module doc)."""
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
                replace(
                    ex,
                    scores={cheap: ex.scores[cheap], "large": ex.scores[best]},
                    costs=costs,
                    cheap_models=[cheap],
                    extra={**keep, "large_model": best, "cheap_model": cheap},
                )
            )
    return out


def answering_models(rows: Sequence[Example], cheap_only: bool = True) -> list[str]:
    """Every model with at least one answer in `answers` and a score beside it; with
    `cheap_only`, only a row's `cheap_models` count."""
    found = set()
    for ex in rows:
        answers = ex.extra.get("answers")
        if isinstance(answers, dict):
            names = ex.cheap_models if cheap_only else list(ex.scores)
            found.update(m for m in names if m in ex.scores and isinstance(answers.get(m), str))
    return sorted(found)


def pooled(rows: Sequence[Example], cheap: str) -> list[Example]:
    """Two-tier rows of `cheap` with its column renamed to "cheap" (`cheap_model` keeps who)."""

    def renamed(d: dict | None) -> dict | None:
        return None if d is None else {POOLED if k == cheap else k: v for k, v in d.items()}

    out = []
    for ex in rows:
        extra = dict(ex.extra)
        for k in ("answers", "logprobs", "usage"):
            if isinstance(extra.get(k), dict):
                extra[k] = renamed(extra[k])
        out.append(
            replace(
                ex,
                scores=renamed(ex.scores),
                costs=renamed(ex.costs),
                cheap_models=[POOLED],
                extra={**extra, "cheap_model": cheap},
            )
        )
    return out


def answered_rows(rows: Sequence[Example], models: Sequence[str]) -> list[Example]:
    """The rows where one of `models` answered, narrowed to two tiers per answering model.
    One model keeps its own column name; several are pooled under "cheap"."""
    if not models:
        raise DataError("no cheap model with answers: rows need `answers` {model: text}")
    out: list[Example] = []
    for m in models:
        narrowed = [
            ex
            for ex in two_tier(rows, m)
            if isinstance((ex.extra.get("answers") or {}).get(m), str)
        ]
        out += pooled(narrowed, m) if len(models) > 1 else narrowed
    if not out:
        raise DataError(
            f"no row has an answer of {', '.join(models)} with a large model's score beside it"
        )
    return out
