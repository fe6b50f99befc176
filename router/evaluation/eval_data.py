"""What an evaluation reads: the models' scores and costs on the prompts (`EvalData`), and what
a router knows about each prompt (`Predictions`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from router.core.config import ModelSpec, Policy
from router.core.data import DataError, Example, cheaper_half


@dataclass
class EvalData:
    """Scores and costs of M models on n prompts, as matrices."""

    examples: list[Example]
    models: list[str]
    scores: np.ndarray  # (n, M)
    costs: np.ndarray  # (n, M) USD per prompt
    cheap: list[str]
    # Rows left out because they lack a score for one of the models (a missing label).
    dropped: int = 0
    # The kept rows' positions in the examples given (align embeddings of every row with them).
    kept: list[int] | None = None
    # Per model, how many of the given rows lack its score (models scored on every row omitted).
    missing: dict[str, int] | None = None

    @classmethod
    def from_examples(
        cls, examples: Sequence[Example], prices: dict[str, float] | None = None
    ) -> EvalData:
        """The rows that score every model of the data, each with a cost per model (or a given
        price). Rows missing a model's score (RouterBench's empty cells) are left out and
        counted in `dropped`; data whose rows score different model sets is refused."""
        if not examples:
            raise DataError("no examples to evaluate")
        models = sorted({m for ex in examples for m in ex.scores})
        if len(models) < 2:
            raise DataError(
                f"the data scores one model, {models[0]}: an evaluation compares two or more"
            )
        prices = prices or {}
        if unknown := sorted(set(prices) - set(models)):
            raise DataError(f"--price for {unknown}: not models of the data, which has {models}")
        keep = [i for i, ex in enumerate(examples) if len(ex.scores) == len(models)]
        if not keep:
            first = sorted(examples[0].scores)
            other = next(i for i, ex in enumerate(examples) if sorted(ex.scores) != first)
            raise DataError(
                f"row {other + 1} ({examples[other].id or examples[other].source}): scores "
                f"models {sorted(examples[other].scores)}, but row 1 scores {first}, and no "
                "row scores them all; evaluate one model set at a time"
            )
        dropped = len(examples) - len(keep)
        missing = {m: sum(m not in ex.scores for ex in examples) for m in models}
        missing = {m: k for m, k in sorted(missing.items(), key=lambda kv: -kv[1]) if k}
        S = np.zeros((len(keep), len(models)))
        C = np.zeros_like(S)
        cheap: set[str] = set()
        for r, i in enumerate(keep):
            ex = examples[i]
            for j, m in enumerate(models):
                S[r, j] = ex.scores[m]
                if m in prices:
                    C[r, j] = prices[m]
                elif ex.costs and m in ex.costs:
                    C[r, j] = ex.costs[m]
                else:
                    raise DataError(
                        f"row {i + 1} ({ex.id or ex.source}): no cost for {m}; "
                        f"add 'costs' to the data or pass --price {m}=USD_PER_CALL"
                    )
            cheap.update(ex.cheap_models)
        mean_cost = C.mean(axis=0)
        if mean_cost.max() <= mean_cost.min():
            # Cost-quality curves (AIQ's cost axis, the cost reductions) need a spread of cost.
            raise DataError(
                f"every model costs the same on average (${mean_cost[0]:.6g} a prompt): the "
                "curves trade cost against quality; check the data's 'costs' or --price"
            )
        rows = [examples[i] for i in keep]
        if not cheap:
            # No tiers given: the cheaper half (by mean cost, prices included), which the
            # scorers fitted on these rows learn as their cheap tier too.
            cheap = set(cheaper_half(dict(zip(models, C.mean(axis=0).tolist(), strict=True))))
            rows = [replace(ex, cheap_models=sorted(cheap)) for ex in rows]
        return cls(rows, models, S, C, sorted(cheap), dropped, keep, missing)

    def dropped_note(self) -> str | None:
        """Why rows were left out, naming the models whose scores they lack (a model scored on
        a handful of rows drops all the others); None when every row was kept."""
        if not self.dropped:
            return None
        total = len(self.examples) + self.dropped
        lacking = ", ".join(
            f"{m} on {total - k} of {total}" for m, k in (self.missing or {}).items()
        )
        return (
            f"{self.dropped} of {total} rows lack a score for some model and are left out "
            f"(scored: {lacking}); an evaluation needs every model's score on a row: to keep "
            "more rows, take a model scored on few of them out of the data's scores"
        )

    def subset(self, idx: np.ndarray) -> EvalData:
        return EvalData(
            [self.examples[i] for i in idx],
            self.models,
            self.scores[idx],
            self.costs[idx],
            self.cheap,
        )

    @property
    def two_tier(self) -> bool:
        return len(self.models) == 2

    def weak_strong(self) -> tuple[int, int]:
        """Two-tier data: (index of the cheap model, index of the other)."""
        weak = self.models.index(self.cheap[0]) if self.cheap else int(self.costs.mean(0).argmin())
        return weak, 1 - weak

    def eval_policy(self, base: Policy | None = None) -> tuple[Policy, list[ModelSpec]]:
        """A policy over the data's own models, keeping `base`'s escalation settings."""
        quality = self.scores.mean(axis=0)
        cheap = [m for m in self.models if m in self.cheap]
        large = [m for m in self.models if m not in self.cheap] or [
            self.models[int(quality.argmax())]
        ]
        by_quality = lambda names: sorted(names, key=lambda m: -quality[self.models.index(m)])  # noqa: E731
        catalogue = [
            ModelSpec(
                name=m.replace("/", "__"),
                litellm_model=f"eval/{m}",
                input_price=0,
                output_price=0,
                context_window=10**9,
                capabilities=frozenset({"tools", "json", "vision", "streaming"}),
                tier="small" if m in self.cheap else "large",
            )
            for m in self.models
        ]
        esc = base.escalation.model_dump() if base else {}
        policy = Policy(
            name=base.name if base else "eval",
            default=tuple(n.replace("/", "__") for n in by_quality(cheap or self.models)),
            large=tuple(n.replace("/", "__") for n in by_quality(large)),
            escalation=esc,
        )
        return policy, catalogue


@dataclass
class Predictions:
    """What a router knows about each prompt, aligned with EvalData.models."""

    domain_probs: np.ndarray
    difficulty: np.ndarray
    gain: np.ndarray
    success: np.ndarray  # (n, M), NaN where unknown
    evidence: np.ndarray | None = None  # (n, M) behind each success estimate; None: unknown
    # (M, M) bool: the pairs whose estimates may be multiplied (`ScoreBatch.comparable`).
    comparable: np.ndarray | None = None
