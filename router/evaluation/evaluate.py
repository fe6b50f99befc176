"""Evaluate routers on routing data: cost-quality curves, metrics, baselines.

Every router curve is a sweep of one policy parameter through `CompiledPolicy.select`, the code
that routes live traffic: `max_difficulty` for two models, `cost_weight` for more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from router.core.config import Policy
from router.core.data import DataError, Example, group_folds, group_key, task_of
from router.core.heads import head_targets, knn_mean, source_rates
from router.core.policy import CompiledPolicy, ScoreInput
from router.core.scorer import ScoreBatch, Scorer
from router.evaluation import metrics as M
from router.evaluation.eval_data import EvalData, Predictions

Log = Callable[[str], None]
# fold label -> (the evaluated rows' embeddings, `TrainAlso`'s or None) for that fold.
FoldEmbeddings = Callable[[Any], tuple[np.ndarray, "np.ndarray | None"]]
# The router curve of the same fits without the shared-difficulty model (`Scorer.ablated`).
NO_SHARED = "router-no-shared"
# The reference curve that knows each test prompt's source and nothing within it (under CV).
SOURCE_RATES = "source-rates"
METRIC_NAMES = (
    "apgr",
    "cpt_50",
    "cpt_80",
    "cpt_95",
    "aiq",
    "cost_reduction_at_95",
    "quality_at_best_single_cost",
    "cost_to_match_best_single",
    "oracle_gain_captured",
)


@dataclass
class Curve:
    """Operating points of one router or baseline."""

    name: str
    cost: np.ndarray
    quality: np.ndarray
    share: np.ndarray | None = None  # strong-call share (two-tier data)
    params: list[float] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.metrics)
        out["curve"] = {"cost": _r(self.cost), "quality": _r(self.quality)}
        if self.share is not None:
            out["curve"]["large_share"] = _r(self.share)
        if self.params:
            out["curve"]["param"] = _r(np.array(self.params))
        return out


def _r(a: np.ndarray) -> list[float]:
    return [round(float(x), 8) for x in a]


@dataclass
class Overlap:
    """How many evaluation rows are prompts a scorer was trained on (`Scorer.trained_on`)."""

    rows: int
    seen: int | None  # None: the scorer recorded no training prompts (an older artifact)

    @property
    def share(self) -> float | None:
        return None if self.seen is None or not self.rows else self.seen / self.rows

    def warning(self, what: str = "figures") -> str | None:
        """A one-line warning for a person, or None when there is nothing to warn about."""
        if self.seen is None:
            return (
                "the scorer recorded no training prompts (saved before hashes were kept): "
                "cannot check whether this data overlaps its training data"
            )
        if not self.seen:
            return None
        return (
            f"{self.seen} of {self.rows} rows ({self.share:.1%}) are prompts the scorer was "
            f"trained on: the {what} on them are optimistic. Use --cv, or data the scorer did "
            "not see"
        )


def training_overlap(scorer: Scorer, examples: Sequence[Example]) -> Overlap:
    seen = scorer.trained_on(examples)
    return Overlap(len(examples), None if seen is None else int(seen.sum()))


# ---- predictions ----------------------------------------------------------------------------


def predictions_from_batch(batch: ScoreBatch, models: list[str]) -> Predictions:
    success = np.full((len(batch), len(models)), np.nan)
    evidence = None if batch.evidence is None else np.full_like(success, np.nan)
    col = [batch.models.index(m) if m in batch.models else -1 for m in models]
    for j, c in enumerate(col):
        if c >= 0:
            success[:, j] = batch.success[:, c]
            if evidence is not None:
                evidence[:, j] = batch.evidence[:, c]
    comparable = None
    if batch.comparable is not None:
        comparable = np.array(
            [[a >= 0 and b >= 0 and bool(batch.comparable[a, b]) for b in col] for a in col]
        )
    return Predictions(
        batch.domain_probs, batch.difficulty, batch.gain, success, evidence, comparable
    )


def _targets(data: EvalData) -> np.ndarray:
    """(n, 2 + M): each row's difficulty and gain targets and its score per model, in
    `data.models` order (`head_targets`; NaN where a row has none)."""
    heads, _, Y = head_targets(data.examples)
    return Y[:, [0, 1, *[heads.index(f"success:{m}") for m in data.models]]]


def knn_predictions(
    X_train: np.ndarray, data_train: EvalData, X_test: np.ndarray, k: int = 50
) -> Predictions:
    """kNN baseline: the neighbours' mean of each target (scores, difficulty, gain)."""
    P = knn_mean(X_test, X_train, np.nan_to_num(_targets(data_train)), k)
    # kNN has no domain head: one certain domain, so confidence rules never fire.
    return Predictions(np.ones((len(X_test), 1)), P[:, 0], P[:, 1], P[:, 2:])


def source_rate_predictions(data_train: EvalData, data_test: EvalData) -> Predictions:
    """Each test prompt gets its source's mean outcomes in the training rows (success per
    model, difficulty, gain; `heads.source_rates`, shrunk to the training mean); a source with
    no training rows gets the training mean. It reads the test prompt's source label, which
    live routing never has: not a router but a reference for what knowing the task, and
    nothing within it, buys."""
    names, rates, mean = source_rates(
        _targets(data_train), [ex.source for ex in data_train.examples]
    )
    test_src = np.array([ex.source for ex in data_test.examples], dtype=str)
    at = np.searchsorted(names, test_src).clip(max=len(names) - 1)
    P = np.where((names[at] == test_src)[:, None], rates[at], mean)
    # One certain domain, as for kNN: confidence rules never fire.
    return Predictions(np.ones((len(P), 1)), P[:, 0], P[:, 1], P[:, 2:])


@dataclass
class TrainAlso:
    """Rows that only ever train (other datasets, other models' profiles), with their
    embeddings. Per fold, a row whose prompt is among the test prompts is left out, and so,
    leaving a source out, is every row of the same task (`task_of`): the held-out task stays
    unseen in every dataset."""

    examples: list[Example]
    X: np.ndarray

    def for_fold(self, test: Sequence[Example], whole_tasks: bool) -> np.ndarray:
        keys = {group_key(ex) for ex in test}
        tasks = {task_of(ex.source) for ex in test} if whole_tasks else set()
        return np.array(
            [group_key(ex) not in keys and task_of(ex.source) not in tasks for ex in self.examples],
            dtype=bool,
        )


def cross_val_predictions(
    X: np.ndarray,
    data: EvalData,
    folds: np.ndarray,
    encoder_identity: str,
    C: float = 1.0,
    knn_k: int = 50,
    log: Log | None = None,
    train_also: TrainAlso | None = None,
    whole_tasks: bool = False,
    scorer_params: dict[str, Any] | None = None,
    fold_embeddings: FoldEmbeddings | None = None,
) -> tuple[Predictions, Predictions, Predictions | None]:
    """Out-of-fold predictions of a fresh Scorer and of kNN, one fold held out at a time.
    `train_also` adds training rows to every fold (never its test prompts, nor, with
    `whole_tasks`, its tasks); `scorer_params` are the Scorer's (the design compared);
    `fold_embeddings(fold)`, the rows' and `train_also`'s embeddings for that fold in place of
    `X` and `train_also.X` (an encoder itself trained per fold). With a shared-difficulty
    model, the third result is the same fits without it (`Scorer.ablated`), else None."""
    texts = [ex.text() for ex in data.examples]
    router_parts: list[tuple[np.ndarray, Predictions]] = []
    knn_parts: list[tuple[np.ndarray, Predictions]] = []
    ablated_parts: list[tuple[np.ndarray, Predictions]] = []
    for f, (te, tr) in zip(np.unique(folds), fold_splits(folds), strict=True):
        X_also = train_also.X if train_also is not None else None
        if fold_embeddings is not None:
            X, X_also = fold_embeddings(f)
        train = data.subset(tr)
        fit_rows, fit_X = train.examples, X[tr]
        fit_texts = [texts[i] for i in tr]
        if train_also is not None:
            keep = train_also.for_fold(data.subset(te).examples, whole_tasks)
            fit_rows = fit_rows + [ex for ex, k in zip(train_also.examples, keep, strict=True) if k]
            fit_X = np.concatenate([fit_X, X_also[keep]])
            fit_texts = fit_texts + [ex.text() for ex in fit_rows[len(tr) :]]
        if log:
            log(f"fold {f}: train {len(fit_rows)}, test {len(te)}")
        scorer = Scorer(C=C, **(scorer_params or {})).fit(
            fit_X, fit_rows, encoder_identity, texts=fit_texts, full_heads_for=data.models
        )
        test_texts = [texts[i] for i in te]
        batch = scorer.predict(X[te], test_texts)
        router_parts.append((te, predictions_from_batch(batch, data.models)))
        knn_parts.append((te, knn_predictions(X[tr], train, X[te], knn_k)))
        if scorer.shared_ is not None:
            ablated = scorer.ablated().predict(X[te], test_texts)
            ablated_parts.append((te, predictions_from_batch(ablated, data.models)))
    merged = _merge(router_parts, len(X)), _merge(knn_parts, len(X))
    return (*merged, _merge(ablated_parts, len(X)) if ablated_parts else None)


def _merge(parts: list[tuple[np.ndarray, Predictions]], n: int) -> Predictions:
    """Out-of-fold pieces → one Predictions in row order."""
    first = parts[0][1]
    out = Predictions(
        np.zeros((n, first.domain_probs.shape[1])),
        np.zeros(n),
        np.zeros(n),
        np.zeros((n, first.success.shape[1])),
    )
    if all(p.evidence is not None for _, p in parts):
        out.evidence = np.zeros_like(out.success)
    if all(p.comparable is not None for _, p in parts):
        # A pair is compared only if every fold's scorer learned its two heads alike.
        out.comparable = np.logical_and.reduce([p.comparable for _, p in parts])
    for idx, p in parts:
        out.domain_probs[idx], out.difficulty[idx] = p.domain_probs, p.difficulty
        out.gain[idx], out.success[idx] = p.gain, p.success
        if out.evidence is not None:
            out.evidence[idx] = p.evidence
    return out


def fold_splits(folds: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(test rows, training rows) of each fold, in the order of `np.unique(folds)`."""
    for f in np.unique(folds):
        yield np.flatnonzero(folds == f), np.flatnonzero(folds != f)


def fold_ids(data: EvalData, k: int, seed: int = 0) -> np.ndarray:
    """K folds by prompt text: duplicates of a text share a fold."""
    return group_folds(np.array([group_key(ex) for ex in data.examples]), k, seed)


def source_groups(data: EvalData) -> np.ndarray:
    """Leave-one-source-out groups: the source's first part ("mmlu", "gsm8k"), or the whole
    source when every row shares that first part (dcrouter tasks)."""
    first = np.array([ex.source.split("/")[0] for ex in data.examples])
    if len(np.unique(first)) > 1:
        return first
    return np.array([ex.source for ex in data.examples])


GROUPINGS = ("source", "task", "model")


def group_labels(data: EvalData, by: str) -> np.ndarray:
    """Each row's leave-one-out label: its source (`source_groups`), its task (`task_of`), or
    the cheap model that answered it (`cheap_model`, rows pooled by router/evaluation/two_tier)."""
    if by == "source":
        return source_groups(data)
    if by == "task":
        return np.array([task_of(ex.source) for ex in data.examples])
    if by != "model":
        raise DataError(f"--group-by {by!r}: one of {', '.join(GROUPINGS)}")
    labels = [ex.extra.get("cheap_model") for ex in data.examples]
    if not all(isinstance(m, str) for m in labels) or len(set(labels)) < 2:
        raise DataError(
            "--group-by model needs rows answered by two or more cheap models, each naming it "
            "in `cheap_model` (scripts/two_tier_rows.py --cheap A --cheap B)"
        )
    return np.array(labels)


# ---- sweeps through the live policy code ----------------------------------------------------


def _outcome(data: EvalData, choice_cols: np.ndarray) -> tuple[float, float]:
    rows = np.arange(len(choice_cols))
    return float(data.scores[rows, choice_cols].mean()), float(data.costs[rows, choice_cols].mean())


def sweep(
    name: str,
    data: EvalData,
    preds: Predictions,
    base: Policy | None = None,
    n_points: int = 201,
) -> Curve:
    """The router's cost-quality curve: a sweep of the policy's escalation parameter."""
    policy, catalogue = data.eval_policy(base)
    domains = [f"d{i}" for i in range(preds.domain_probs.shape[1])]
    col_of = [data.models.index(s.name.replace("__", "/")) for s in catalogue]
    n = len(data.examples)
    field_name = sweep_field(policy, data.two_tier, preds)
    if field_name != "cost_weight":
        # Only the swept threshold escalates on scores.
        update = {"cost_weight": None}
        if field_name == "max_gain":
            update["max_difficulty"] = 1.0
        policy = policy.model_copy(
            update={"escalation": policy.escalation.model_copy(update=update)}
        )
    compiled = CompiledPolicy(policy, catalogue, domains)
    order_cols = np.array([col_of[catalogue.index(s)] for s in compiled.models])
    s = ScoreInput(
        domain_probs=preds.domain_probs,
        difficulty=preds.difficulty,
        gain=preds.gain,
        success=preds.success[:, order_cols],
        eligible=np.ones((n, len(compiled.models)), dtype=bool),
        has_text=np.ones(n, dtype=bool),
        cost=data.costs[:, order_cols],
        evidence=None if preds.evidence is None else preds.evidence[:, order_cols],
        comparable=None
        if preds.comparable is None
        else preds.comparable[np.ix_(order_cols, order_cols)],
    )
    values = sweep_values(field_name, compiled, s, n_points)
    results = []
    for v in values:
        esc = policy.escalation.model_copy(update={field_name: float(v)})
        compiled = CompiledPolicy(policy.model_copy(update={"escalation": esc}), catalogue, domains)
        choice, _ = compiled.select(s)
        cols = order_cols[choice]
        q, c = _outcome(data, cols)
        large = np.array([compiled.models[i].tier == "large" for i in range(len(compiled.models))])
        results.append((c, q, float(large[choice].mean()), float(v)))
    results.sort()
    costs = np.array([r[0] for r in results])
    quality = np.array([r[1] for r in results])
    shares = np.array([r[2] for r in results])
    params = [r[3] for r in results]
    return Curve(name, costs, quality, shares, params)


def sweep_field(policy: Policy, two_tier: bool, preds: Predictions | None = None) -> str:
    """Which escalation parameter a sweep varies: `cost_weight` for more than two models (when
    success estimates exist) or when the policy uses it; else `max_difficulty` when the policy
    escalates on difficulty alone; else `max_gain` (the better signal, BENCHMARKS.md)."""
    esc = policy.escalation
    has_success = preds is None or not np.isnan(preds.success).all()
    if esc.cost_weight is not None or (not two_tier and has_success):
        return "cost_weight"
    if esc.max_gain is None and esc.max_difficulty < 1.0:
        return "max_difficulty"
    return "max_gain"


def sweep_values(
    field_name: str, compiled: CompiledPolicy, s: ScoreInput, n_points: int
) -> np.ndarray:
    """The values a sweep tries: a log grid of cost weights, or thresholds at the quantiles of
    the swept signal (plus 0 and 1, so the curve reaches both ends): the difficulty, or the
    gain the policy compares (`CompiledPolicy.escalation_gain`)."""
    if field_name == "cost_weight":
        return np.concatenate([[0.0], np.logspace(-4, 2, n_points - 1)])
    signal = compiled.escalation_gain(s) if field_name == "max_gain" else s.difficulty
    qs = np.quantile(signal, np.linspace(0, 1, n_points))
    return np.unique(np.clip(np.concatenate([[0.0, 1.0], qs]), 0.0, 1.0))


def baselines(data: EvalData) -> list[Curve]:
    """Every single model, the oracle, and `random`: RouterBench's zero router, random mixing
    of the single models, which reaches the upper convex hull of their (cost, quality) points."""
    out = []
    q_single = data.scores.mean(axis=0)
    c_single = data.costs.mean(axis=0)
    for j, m in enumerate(data.models):
        share = np.array([0.0 if m in data.cheap else 1.0])
        out.append(Curve(f"single:{m}", c_single[j : j + 1], q_single[j : j + 1], share))
    _, qo, co = M.oracle(data.scores, data.costs)
    out.append(Curve("oracle", np.array([co]), np.array([qo])))
    cost, quality = M.zero_router(c_single, q_single)
    share = None
    if data.two_tier:
        # Two models: every hull point is a mix of the two, its share of the strong one
        # read off its cost.
        w, s = data.weak_strong()
        if c_single[s] != c_single[w]:
            share = np.clip((cost - c_single[w]) / (c_single[s] - c_single[w]), 0.0, 1.0)
        else:
            share = np.full(len(cost), float(q_single[s] > q_single[w]))
    out.append(Curve("random", cost, quality, share))
    return out


def score_curve(curve: Curve, data: EvalData) -> dict[str, Any]:
    """Every metric for one curve (APGR and CPT only for two-tier data, on the large-call
    shares the curve covers: `large_share_from`..`large_share_to`)."""
    q_single = data.scores.mean(axis=0)
    c_single = data.costs.mean(axis=0)
    best = int(q_single.argmax())
    _, q_oracle, _ = M.oracle(data.scores, data.costs)
    out: dict[str, Any] = dict.fromkeys(METRIC_NAMES)
    # Scalars, not a pair, so a table of every metric stays numeric (notebook 02).
    out["large_share_from"] = out["large_share_to"] = None
    if data.two_tier and curve.share is not None and len(curve.share) > 1:
        w, s = data.weak_strong()
        if q_single[s] != q_single[w]:
            # On the shares the curve covers, which the result says (see metrics.apgr).
            out["large_share_from"], out["large_share_to"] = M.share_range(curve.share)
            out["apgr"] = M.apgr(curve.share, curve.quality, q_single[w], q_single[s])
            for p in (50, 80, 95):
                out[f"cpt_{p}"] = M.cpt(
                    curve.share, curve.quality, q_single[w], q_single[s], p / 100
                )
    out["aiq"] = M.aiq(curve.cost, curve.quality, c_single.min(), c_single.max())
    # "95% of the large model's quality": the most expensive model in two-tier data, else the
    # best single model.
    large = int(c_single.argmax()) if data.two_tier else best
    c95 = M.cost_at_quality(curve.cost, curve.quality, 0.95 * q_single[large])
    out["cost_reduction_at_95"] = None if c95 is None else 1 - c95 / c_single[large]
    out["quality_at_best_single_cost"] = M.quality_at_cost(
        curve.cost, curve.quality, c_single[best]
    )
    cm = M.cost_at_quality(curve.cost, curve.quality, q_single[best])
    out["cost_to_match_best_single"] = None if cm is None else cm / c_single[best]
    gain = q_oracle - q_single[best]
    out["oracle_gain_captured"] = (
        (float(curve.quality.max()) - q_single[best]) / gain if gain > 0 else None
    )
    return out


@dataclass
class Report:
    """The outcome of one evaluation: settings, reference figures and every curve."""

    settings: dict[str, Any]
    data: EvalData
    curves: list[Curve]

    def to_json(self) -> dict[str, Any]:
        q = self.data.scores.mean(axis=0)
        c = self.data.costs.mean(axis=0)
        _, qo, co = M.oracle(self.data.scores, self.data.costs)
        return {
            **self.settings,
            "rows": len(self.data.examples),
            "rows_dropped_missing_scores": self.data.dropped,
            "models": {
                m: {"quality": float(q[j]), "cost": float(c[j]), "cheap": m in self.data.cheap}
                for j, m in enumerate(self.data.models)
            },
            "oracle": {"quality": qo, "cost": co},
            "results": {cv.name: cv.to_json() for cv in self.curves},
        }


def evaluate(
    data: EvalData,
    X: np.ndarray,
    *,
    scorer: Scorer | None = None,
    encoder_identity: str = "",
    policy: Policy | None = None,
    cv: int | None = None,
    group_by_source: bool = False,
    knn_k: int = 50,
    seed: int = 0,
    log: Log | None = None,
    extra: Callable[..., tuple[list[Curve], dict[str, Any]]] | None = None,
    train_also: TrainAlso | None = None,
    scorer_params: dict[str, Any] | None = None,
    groups: tuple[str, np.ndarray] | None = None,
    fold_embeddings: FoldEmbeddings | None = None,
) -> Report:
    """Router and baseline curves with every metric.

    With `cv`, `group_by_source` or `groups` (a name and a label per row: leave one label out)
    a fresh scorer is trained per fold; otherwise `scorer` is evaluated as it is. The kNN
    baseline is always out-of-fold (5 folds without `cv`). `extra(data, router predictions,
    folds, cross_validated)` adds curves and settings on the same rows and folds (`router eval
    --cascade`: router/evaluation/evaluate_cascade.py). `train_also` adds training-only rows to
    every fold (`TrainAlso`); `scorer_params` are the trained Scorer's (the kNN baseline learns
    from the evaluated data alone). `fold_embeddings(fold)` gives each held-out fold its own
    embeddings of the rows and of `train_also` (scripts/tuned_encoder_figures.py: an encoder
    tuned without that fold's prompts); the router and kNN of that fold read them.
    """
    if group_by_source:
        groups = ("source", source_groups(data))
    if groups is not None:
        name, folds = groups[0], np.asarray(groups[1])
        if len(np.unique(folds)) < 2:
            raise DataError(f"--group-by {name} needs at least two {name}s")
        mode = f"leave-one-{name}-out"
    else:
        folds = fold_ids(data, cv or 5, seed)
        # Folds are by prompt text: K above the distinct prompts would be fewer folds than said.
        if cv and (distinct := len(np.unique(folds))) < cv:
            raise DataError(
                f"--cv {cv}: the data has {distinct} distinct prompts, so at most {distinct} folds"
            )
        mode = f"{cv}-fold CV by prompt text" if cv else "as is"
    held_out = bool(cv or groups is not None)
    if held_out:
        router_p, knn_p, ablated_p = cross_val_predictions(
            X,
            data,
            folds,
            encoder_identity,
            knn_k=knn_k,
            log=log,
            train_also=train_also,
            # A held-out source or task stays out of the training-only rows too.
            whole_tasks=groups is not None and groups[0] in ("source", "task"),
            scorer_params=scorer_params,
            fold_embeddings=fold_embeddings,
        )
    else:
        if scorer is None:
            raise ValueError("evaluate needs a scorer, or cv / group_by_source to train one")
        ablated_p = None
        batch = scorer.predict(X, [ex.text() for ex in data.examples])
        router_p = predictions_from_batch(batch, data.models)
        knn_p = _merge(
            [
                (te, knn_predictions(X[tr], data.subset(tr), X[te], knn_k))
                for te, tr in fold_splits(folds)
            ],
            len(X),
        )
    curves = [sweep("router", data, router_p, policy), sweep("knn", data, knn_p, policy)]
    if ablated_p is not None:
        # The same fits stacked without the shared-difficulty model: the previous design.
        curves.append(sweep(NO_SHARED, data, ablated_p, policy))
    if cv and groups is None:
        # Leaving a source out, the held-out source has no training rows: no reference there.
        parts = [
            (te, source_rate_predictions(data.subset(tr), data.subset(te)))
            for te, tr in fold_splits(folds)
        ]
        curves.append(sweep(SOURCE_RATES, data, _merge(parts, len(X)), policy))
    curves += baselines(data)
    more: dict[str, Any] = {}
    if extra is not None:
        extra_curves, more = extra(data, router_p, folds, held_out)
        curves += extra_curves
    for cv_ in curves:
        cv_.metrics = score_curve(cv_, data)
    eval_policy, _ = data.eval_policy(policy)
    settings = {
        "mode": mode,
        "policy": policy.name if policy else None,
        "trained_also_on": len(train_also.examples) if train_also is not None else 0,
        "scorer_params": scorer_params or {},
        "sweep": sweep_field(eval_policy, data.two_tier, router_p),
        **more,
    }
    if scorer is not None and not held_out:
        # Rows the evaluated scorer learned from (None: it did not record its prompts).
        settings["rows_seen_in_training"] = training_overlap(scorer, data.examples).seen
    return Report(settings, data, curves)


def plot(report: Report, path: str | None = None):
    """The cost-quality curves of every router and baseline: a matplotlib Figure, also saved
    as a PNG when `path` is given. Built without pyplot, so the caller's backend (a notebook's
    inline plots, a headless CLI) is left alone."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5))
    ax = fig.subplots()
    for cv in report.curves:
        if cv.name.startswith("single:"):
            ax.scatter(cv.cost * 1000, cv.quality, marker="s", s=40, label=cv.name[7:], zorder=3)
        elif cv.name == "oracle":
            ax.scatter(
                cv.cost * 1000,
                cv.quality,
                marker="*",
                s=160,
                c="gold",
                edgecolors="k",
                label="oracle",
                zorder=4,
            )
        else:
            style = {"router": "-", "knn": "--", "random": ":"}.get(cv.name, "-")
            ax.plot(
                cv.cost * 1000,
                cv.quality,
                style,
                lw=2 if cv.name == "router" else 1.3,
                label=cv.name,
            )
    ax.set_xlabel("cost (USD per 1,000 prompts)")
    ax.set_ylabel("quality (mean score)")
    ax.set_title(
        f"Cost-quality curves ({report.settings['mode']}, {len(report.data.examples)} prompts)"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
