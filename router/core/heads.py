"""The pieces the scorer stacks, as plain functions: logistic regression on graded targets (and
around a fixed estimate), the logistic stacker, temperature scaling, kNN means (out of fold for
every head at once), each head's targets, and a joining model's head on the shared difficulty.
Numpy, SciPy and scikit-learn only; nothing here knows the Scorer.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from router.core.data import Example, tier_outcomes
from router.core.irt import SharedDifficulty, log_loss

EPS = 1e-4
# Pseudo-rows at a head's mean that each source's mean starts from (`source_means`): a source
# with a handful of labelled rows says little, one with hundreds speaks for itself.
SOURCE_SHRINK = 10.0


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_binary(
    X, y: np.ndarray, C: float, init: tuple[np.ndarray, float] | None = None
) -> tuple[np.ndarray, float]:
    """Logistic regression on graded targets: each row twice, weighted y and 1 − y. `init`
    starts the solver from another fit's weights (the same head on another fold): the same
    optimum, in a fraction of the iterations."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    n = X.shape[0]
    if n == 0 or y.min() == y.max():
        rate = (y.sum() + 1) / (len(y) + 2)
        return np.zeros(X.shape[1]), float(np.log(rate / (1 - rate)))
    X2 = sp.vstack([X, X]).tocsr() if sp.issparse(X) else np.concatenate([X, X])
    y2 = np.r_[np.ones(n), np.zeros(n)]
    w2 = np.r_[y, 1.0 - y]
    keep = w2 > 0
    lr = LogisticRegression(C=C, max_iter=3000, warm_start=init is not None)
    if init is not None:
        lr.coef_, lr.intercept_ = init[0][None, :].copy(), np.array([init[1]])
    lr.fit(X2[keep], y2[keep], sample_weight=w2[keep])
    return lr.coef_[0].astype(np.float64), float(lr.intercept_[0])


def fit_offset_binary(
    X: np.ndarray, y: np.ndarray, offset: np.ndarray, C: float
) -> tuple[np.ndarray, float]:
    """Logistic regression on graded targets around a fixed log-odds `offset` per row:
    p = sigmoid(offset + X @ w + b), with (|w|^2 + b^2) / (2 C) against the summed log loss, as
    `fit_binary`'s C. With few rows w stays near 0 and the offset speaks; with many, the rows
    correct it. The shift b is penalised too: a correction is centred on the offset, and rows
    that all fail (or all succeed) would otherwise drive b, and every estimate, to exactly 0
    (or 1), which no standard error then discounts. (scikit-learn's LogisticRegression takes
    no offset, hence L-BFGS here.)"""
    from scipy.optimize import minimize

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    offset = np.asarray(offset, dtype=np.float64)
    d = X.shape[1]

    def loss_and_grad(v: np.ndarray) -> tuple[float, np.ndarray]:
        p = sigmoid(offset + X @ v[:d] + v[d])
        loss = log_loss(p, y).sum() + (v**2).sum() / (2 * C)
        g = p - y
        return float(loss), np.r_[X.T @ g, g.sum()] + v / C

    res = minimize(loss_and_grad, np.zeros(d + 1), jac=True, method="L-BFGS-B")
    return res.x[:d], float(res.x[d])


# The strengths a joining model's correction is chosen among (`joined_head`), besides none.
JOIN_CS = (0.1, 0.3, 1.0, 3.0, 10.0)
JOIN_FOLDS = 5


def joined_head(
    shared: SharedDifficulty,
    X: np.ndarray,
    y: np.ndarray,
    Cs: Sequence[float] = JOIN_CS,
    folds: int = JOIN_FOLDS,
    seed: int = 0,
) -> tuple[int, np.ndarray, float, float]:
    """A new model's success head from its own rows: its ability on `shared` (added to it,
    the prompt side frozen), and a regression of the rows around that estimate
    (`fit_offset_binary`). The rows decide how far they can be trusted: each strength of `Cs`,
    and none, is scored by its held-out log loss over `folds` folds of the rows (the ability
    refitted without the held-out part). A correction is taken only when the best one beats
    none by more than a standard error, and then the best strength: a model like the fitted
    ones keeps the shared estimate; one unlike them corrects it as far as its rows show.
    Returns (column, w, b, C); C 0 means no correction."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    k = min(folds, len(y) // 2)
    choices = [0.0, *Cs]  # weakest first
    C = 0.0
    if k >= 2:
        losses = np.zeros((len(y), len(choices)))
        order = np.random.default_rng(seed).permutation(len(y))
        for part in np.array_split(order, k):
            rest = np.setdiff1d(order, part)
            m = SharedDifficulty.from_arrays(shared.to_arrays())
            col = m.add_model(X[rest], y[rest])
            off_rest, off_part = m.logits(X[rest])[:, col], m.logits(X[part])[:, col]
            for i, c in enumerate(choices):
                z = off_part
                if c > 0:
                    w, b = fit_offset_binary(X[rest], y[rest], off_rest, c)
                    z = off_part + X[part] @ w + b
                losses[part, i] = log_loss(sigmoid(z), y[part], eps=1e-6)
        # Leaving the shared estimate needs evidence: the best correction must beat none by
        # more than one standard error of their difference (a few noisy folds must not buy
        # one). Once it does, the best strength wins, not the weakest within one standard
        # error of it, which held back the correction of the models that needed it most.
        total = losses.sum(axis=0)
        best = int(total[1:].argmin()) + 1
        diff = losses[:, 0] - losses[:, best]
        if diff.sum() > diff.std(ddof=1) * np.sqrt(len(y)):
            C = choices[best]
    col = shared.add_model(X, y)
    if C == 0:
        return col, np.zeros(X.shape[1]), 0.0, 0.0
    w, b = fit_offset_binary(X, y, shared.logits(X)[:, col], C)
    return col, w, b, C


def fit_stacker(Z: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> np.ndarray:
    """Weights (…, bias) of p = sigmoid(Z @ a + c) on graded y, by Newton steps on log loss."""
    A = np.hstack([Z, np.ones((len(Z), 1))])
    w = np.zeros(A.shape[1])
    w[:-1] = 1.0 / Z.shape[1]

    def loss(v: np.ndarray) -> float:
        return float(log_loss(sigmoid(A @ v), y).mean() + 0.5 * l2 * (v[:-1] ** 2).sum())

    current = loss(w)
    for _ in range(100):
        p = sigmoid(A @ w)
        grad = A.T @ (p - y) / len(y) + l2 * np.r_[w[:-1], 0]
        H = (A * (p * (1 - p))[:, None]).T @ A / len(y) + l2 * np.eye(len(w))
        step = np.linalg.solve(H + 1e-9 * np.eye(len(w)), grad)
        # A full Newton step overshoots where a component nearly separates the outcomes (its
        # weight then ran to thousands and every estimate to 0): halve it until the loss falls.
        for _ in range(40):
            if (new := loss(w - step)) <= current:
                break
            step = step / 2
        w, current = w - step, new
        if np.abs(step).max() < 1e-8:
            break
    return w


def temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the out-of-fold log loss (a 1-D search)."""
    best_t, best = 1.0, np.inf
    for t in np.exp(np.linspace(np.log(0.2), np.log(5.0), 61)):
        p = softmax(logits / t)
        nll = -np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)).mean()
        if nll < best:
            best_t, best = float(t), nll
    return best_t


# Up to this many rows a prediction runs on one BLAS thread (requests); above, all (eval).
SMALL_BATCH = 64


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # finds the BLAS libraries once (a limit then costs ~0.1 ms)


def one_blas_thread():
    return _blas_controller().limit(limits=1, user_api="blas")


def neighbour_weights(similarity: np.ndarray, floor: float) -> np.ndarray:
    """How much a neighbour at this cosine counts, in [0, 1]: 0 at or below `floor` (the cosine
    of two unrelated prompts), 1 for the same prompt, linear between."""
    return np.clip((similarity - floor) / (1.0 - floor), 0.0, 1.0)


def neighbour_estimate(
    near: np.ndarray, targets: np.ndarray, shrink: float, floor: float | None, prior: np.ndarray
) -> np.ndarray:
    """(n, H) estimate from each query's k nearest rows: `near` (n, k) their cosines, `targets`
    (n, k, H) their labels. `shrink` 0: the plain mean. Otherwise each neighbour counts by its
    similarity (`neighbour_weights`) and `shrink` pseudo-rows at the training mean `prior` (H,)
    join them, so a prompt whose neighbours are all far gets the prior, not their labels."""
    if not shrink or floor is None:
        return targets.mean(axis=1)
    w = neighbour_weights(near, floor)
    return (np.einsum("nk,nkh->nh", w, targets) + shrink * prior) / (
        w.sum(axis=1)[:, None] + shrink
    )


def knn_mean(
    Xq: np.ndarray,
    Xref: np.ndarray,
    Yref: np.ndarray,
    k: int,
    shrink: float = 0.0,
    floor: float | None = None,
) -> np.ndarray:
    """Target of the k most similar reference rows (cosine: rows are unit-norm): their mean, or
    with `shrink` their similarity-weighted mean shrunk to the reference mean
    (`neighbour_estimate`)."""
    return knn_means(Xq, Xref, Yref, k, shrink, floor)[0]


def knn_means(
    Xq: np.ndarray,
    Xref: np.ndarray,
    Yref: np.ndarray,
    k: int,
    shrink: float = 0.0,
    floor: float | None = None,
    also: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """`knn_mean`, and the plain mean of `also` (reference rows' other values: their sources'
    means, `source_means`) over the same neighbours, from one search; None without `also`."""
    k = min(k, len(Xref))
    prior = Yref.mean(axis=0)
    out = np.zeros((len(Xq), Yref.shape[1]))
    extra = None if also is None else np.zeros((len(Xq), also.shape[1]))
    for s in range(0, len(Xq), 1024):
        sims = Xq[s : s + 1024] @ Xref.T
        nn = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        near = np.take_along_axis(sims, nn, axis=1)
        out[s : s + 1024] = neighbour_estimate(near, Yref[nn], shrink, floor, prior)
        if extra is not None:
            extra[s : s + 1024] = also[nn].mean(axis=1)
    return out, extra


def source_rates(
    Y: np.ndarray, sources: Sequence[str] | np.ndarray, shrink: float = SOURCE_SHRINK
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each source's mean target per head (sources sorted by name, (S, H)), from `shrink`
    pseudo-rows at the head's mean plus the source's labelled rows; and the heads' means (H,).
    A source is a dataset and task (`Example.source`)."""
    labelled = ~np.isnan(Y)
    names, inv = np.unique(np.asarray(sources, dtype=str), return_inverse=True)
    inv = inv.ravel()
    values = np.where(labelled, Y, 0.0)
    count = np.zeros((len(names), Y.shape[1]))
    total = np.zeros_like(count)
    np.add.at(count, inv, labelled.astype(float))
    np.add.at(total, inv, values)
    mean = values.sum(axis=0) / np.maximum(labelled.sum(axis=0), 1)
    return names, (total + shrink * mean) / (count + shrink), mean


def source_means(Y: np.ndarray, sources: np.ndarray, shrink: float = SOURCE_SHRINK) -> np.ndarray:
    """(n, H): for each row, its source's mean target per head (`source_rates`); NaN where the
    row has no label for the head."""
    if len(Y) == 0:
        return np.full_like(Y, np.nan)
    sources = np.asarray(sources, dtype=str)
    names, rates, _ = source_rates(Y, sources, shrink)
    return np.where(~np.isnan(Y), rates[np.searchsorted(names, sources)], np.nan)


def unrelated_similarity(X: np.ndarray, seed: int, pairs: int = 20000) -> float:
    """The median cosine between two training prompts drawn at random: what "unrelated" looks
    like in this encoder's space (a neighbour that close is no evidence at all)."""
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(X), pairs), rng.integers(0, len(X), pairs)
    keep = i != j
    return float(np.median(np.einsum("ij,ij->i", X[i[keep]], X[j[keep]])))


def labelled_alike(labelled: np.ndarray) -> list[list[int]]:
    """The heads (columns of `labelled`, rows × heads) grouped by the rows they are labelled
    on: each group's neighbour search is shared."""
    groups: dict[bytes, list[int]] = {}
    for h in range(labelled.shape[1]):
        groups.setdefault(np.packbits(labelled[:, h]).tobytes(), []).append(h)
    return list(groups.values())


# The least cosine between a prompt the scorer learned and its row of the neighbour memory:
# the same text embeds at 0.9999 (float16 storage), an interchangeable encoder's at ~0.995
# (encoder.INTERCHANGEABLE); the nearest other shipped prompt of a learned one was at most 0.9946.
SAME_PROMPT = 0.99
TIE = 1e-3  # one text in two datasets: its rows tie


def memory_rows(memory: np.ndarray, labels: np.ndarray, X: np.ndarray, learned: np.ndarray):
    """Per row of `X` (a joining model's prompts) whose prompt the scorer learned (`learned`,
    by `data.group_key`), the neighbour memory's row of that prompt: the nearest at cosine ≥
    SAME_PROMPT; of rows that tie (a prompt in two datasets), the one labelled for the most heads
    (`labels`, NaN: unlabelled); each memory row taken once. -1: a prompt of its own."""
    at = np.full(len(X), -1)
    taken: set[int] = set()
    count = (~np.isnan(labels)).sum(axis=1)
    rows = np.flatnonzero(learned)
    for start in range(0, len(rows), 256):
        part = rows[start : start + 256]
        sims = np.asarray(X[part], np.float32) @ np.asarray(memory, np.float32).T
        for i, s in zip(part, sims, strict=True):
            near = np.flatnonzero(s >= SAME_PROMPT)
            near = [int(r) for r in near[np.argsort(-s[near])] if int(r) not in taken]
            if near:
                ties = [r for r in near if s[r] >= s[near[0]] - TIE]
                at[i] = max(ties, key=lambda r: count[r])  # the nearest of the most labelled
                taken.add(int(at[i]))
    return at


def knn_out_of_fold(
    X: np.ndarray,
    Y: np.ndarray,
    folds: np.ndarray,
    k: int,
    shrink: float = 0.0,
    floor: float | None = None,
    sources: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(n, H) out-of-fold log-odds of the kNN component of every head: the target of the k
    nearest training rows labelled for it (`knn_mean`). Heads labelled on the same rows share
    one neighbour search per fold (a third of the fitting time when each head searched on its
    own). With `sources` (one per row), also the source-prior component from the same
    neighbours: the mean of their sources' means (`source_means`, from the fold's training rows
    alone); else None."""
    out = np.zeros_like(Y)
    prior = None if sources is None else np.zeros_like(Y)
    labelled = ~np.isnan(Y)
    uniq = np.unique(folds)
    for heads in labelled_alike(labelled):
        rows = np.flatnonzero(labelled[:, heads[0]])
        f = folds[rows]
        for fold in uniq if len(uniq) > 1 else []:
            tr, te = rows[f != fold], rows[f == fold]
            if len(tr) and len(te):
                Ytr = Y[np.ix_(tr, heads)]
                also = None if sources is None else source_means(Ytr, sources[tr])
                est, from_sources = knn_means(X[te], X[tr], Ytr, k, shrink, floor, also)
                out[np.ix_(te, heads)] = logit(est)
                if prior is not None:
                    prior[np.ix_(te, heads)] = logit(from_sources)
    return out, prior


def head_targets(examples: Sequence[Example]) -> tuple[list[str], list[str], np.ndarray]:
    """(head names, models, targets (n, H) with NaN where a head has no label for a row)."""
    models = sorted({m for ex in examples for m in ex.scores})
    heads = ["difficulty", "gain"] + [f"success:{m}" for m in models]
    Y = np.full((len(examples), len(heads)), np.nan)
    for i, (ex, (cheap, large)) in enumerate(zip(examples, tier_outcomes(examples), strict=True)):
        if cheap is not None:
            Y[i, 0] = 1.0 - cheap
            if large is not None:
                Y[i, 1] = large * (1.0 - cheap)
        for j, m in enumerate(models):
            if m in ex.scores:
                Y[i, 2 + j] = ex.scores[m]
    return heads, models, Y
