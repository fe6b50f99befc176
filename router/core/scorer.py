"""Embedding (+ text) → domain probabilities, difficulty, escalation gain, per-model success.

Heads (each a probability):
- *domain*: multinomial logistic regression on the embedding, temperature-scaled out of fold;
- *difficulty*: the cheap tier fails (target: 1 − mean score of the row's cheap models);
- *gain*: escalating pays off — the large model succeeds where the cheap tier fails
  (target: large score × (1 − cheap score));
- *success* for every model in the training data.

Each binary head is a small ensemble, chosen on 5-fold CV (BENCHMARKS.md): logistic regression on
the embedding, logistic regression on word TF-IDF (1-2 grams), and the mean target of the k
nearest training prompts; a stacker (logistic regression on the components' out-of-fold
log-odds) weights and calibrates them. With `source_prior`, success heads stack one more
component: the mean, over the same k neighbours, of their sources' mean outcomes for the model
(`heads.source_means`); measured and not the default (docs/evaluation.md, "The source prior").

A saved scorer is a directory: `scorer.json` (metadata, vocabulary, calibration) and
`weights.npz` (arrays, loaded with `allow_pickle=False`). Nothing in it is executed on load.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from router.core import scorer_format
from router.core.data import (
    Example,
    domain_names,
    domain_of,
    group_folds,
    group_key,
    prompt_hashes,
    with_cheap_tier,
)
from router.core.drift import reference_distributions
from router.core.heads import (
    SMALL_BATCH,
    fit_binary,
    fit_stacker,
    head_targets,
    joined_head,
    knn_out_of_fold,
    labelled_alike,
    logit,
    memory_rows,
    neighbour_estimate,
    neighbour_weights,
    one_blas_thread,
    sigmoid,
    softmax,
    source_means,
    temperature,
    unrelated_similarity,
)
from router.core.irt import SharedDifficulty
from router.core.scorer_format import BIAS, EMB, KNN, SHARED, SOURCE, TEXT, ScorerError
from router.core.tfidf import TfidfFeatures, tfidf_vectorizer

# The share of the smaller head's labelled prompts two success heads must share to be compared.
COMPARABLE_SHARE = 0.5
Progress = Callable[[str], None]


@dataclass
class ScoreBatch:
    """Scores for n texts: domain probabilities (n, D), difficulty and gain (n,), success (n, M)."""

    domains: list[str]
    models: list[str]
    domain_probs: np.ndarray
    difficulty: np.ndarray
    gain: np.ndarray
    success: np.ndarray
    # The evidence behind each success estimate: how many similar labelled prompts the model
    # has near this one (similarity-weighted, `Scorer.neighbour_weights`), (n, M); and its
    # labelled rows in all, (M,). None for a scorer saved before evidence was kept.
    evidence: np.ndarray | None = None
    rows: np.ndarray | None = None
    # (M, M) bool: which two models' success estimates may be multiplied, learned on mostly
    # the same prompts (`Scorer.success_comparable_`); None: unknown, every pair may.
    comparable: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.difficulty)


# What `domain_head_from_` says when the shipped scorer's domain head stood in.
SHIPPED_DOMAIN_HEAD = "shipped scorer"


def default_scorer_path() -> Path:
    """The scorer shipped inside the package (`make model` rebuilds it)."""
    return Path(str(resources.files("router").joinpath("artifacts/default")))


def configured_scorer_path(scorer: str, base: Path) -> Path:
    """Where a config's `scorer` field points: the shipped scorer for "default", else a
    directory relative to `base`, the config's folder."""
    return default_scorer_path() if scorer == "default" else base / scorer


@functools.lru_cache(maxsize=4)
def shipped_domain_head(encoder_identity: str) -> tuple[list[str], np.ndarray, np.ndarray, float]:
    """The shipped scorer's domain head (domains, W, b, temperature), read once per encoder:
    what a scorer trained on rows without domain labels uses."""
    return scorer_format.read_domain_head(default_scorer_path(), encoder_identity)


class Scorer:
    """Domain, difficulty, gain and per-model success heads on a frozen embedding and the text."""

    def __init__(
        self,
        C: float = 1.0,
        text_C: float = 1.0,
        knn_k: int = 50,
        knn_shrink: float = 0.0,
        calibration_folds: int = 3,
        max_features: int = 50000,
        random_state: int = 0,
        shared_dims: int | None = 8,
        source_prior: bool = False,
        difficulty: Literal["blend", "shared", "stack"] = "blend",
    ) -> None:
        self.C = C
        self.text_C = text_C
        self.knn_k = knn_k
        # 0: the kNN component is its k neighbours' mean. > 0: their similarity-weighted mean
        # with this many pseudo-rows at the training mean (`heads.neighbour_estimate`).
        self.knn_shrink = knn_shrink
        self.calibration_folds = calibration_folds
        self.max_features = max_features
        self.random_state = random_state
        # Latent traits of the shared-difficulty model (router/core/irt.py) that every head
        # stacks as a fourth component; None: no shared model (the scorer of format 2).
        self.shared_dims = shared_dims
        # Success heads stack the source prior (`heads.source_means`). Off by default: it
        # raised make model's figures but failed its free-model check (docs/evaluation.md).
        self.source_prior = source_prior
        # The difficulty head. "stack": every component stacked, as the other heads. "shared":
        # the shared model's prompt difficulty alone, calibrated on its out-of-fold log-odds;
        # it ranked failures better on tasks the scorer never saw and worse on prompts like
        # the training ones. "blend", the default: the two averaged in log-odds, which kept
        # most of either's strength (docs/evaluation.md). Without a shared model (shared_dims
        # None), the stack.
        if difficulty not in ("blend", "shared", "stack"):
            raise ScorerError(
                f"difficulty must be 'blend', 'shared' or 'stack', not {difficulty!r}"
            )
        self.difficulty = difficulty

    # ---- fitting ----------------------------------------------------------------------------

    def fit(
        self,
        X: np.ndarray,
        examples: Sequence[Example],
        encoder_identity: str,
        progress: Progress | None = None,
        texts: Sequence[str] | None = None,
        full_heads_for: Sequence[str] | None = None,
    ) -> Scorer:
        """Learn every head from embeddings `X` (one row per example) and their outcomes.

        `full_heads_for`: the models whose success heads get every component (an evaluation
        that scores only some models: it fits what it scores). The others' heads are the
        shared model's estimate alone (kNN's without one), which still learns from them all.
        With the shared model, each head also keeps the stack it would have without it
        (`ablated()`), so one fit measures both designs."""
        # One BLAS thread: the fitting is many small solves, and OpenBLAS' idle threads spin on
        # a busy machine (a verifier fit took 72 s with two threads, 8 s with one, measured here).
        with one_blas_thread():
            return self._fit(X, examples, encoder_identity, progress, texts, full_heads_for)

    def _fit(self, X, examples, encoder_identity, progress, texts, full_heads_for) -> Scorer:
        if len(X) != len(examples):
            raise ScorerError(f"{len(X)} embeddings for {len(examples)} examples")
        if len(examples) < 10:
            raise ScorerError("need at least 10 examples to train a scorer")
        say = progress or (lambda _msg: None)
        X = np.asarray(X, dtype=np.float64)
        texts = list(texts) if texts is not None else [ex.text() for ex in examples]
        groups = np.array([group_key(ex) for ex in examples])
        folds = group_folds(groups, self.calibration_folds, self.random_state)
        self.encoder_identity_ = encoder_identity
        self.domains_ = domain_names()

        untiered = sum(not ex.cheap_models for ex in examples)
        examples, inferred = with_cheap_tier(examples)
        if inferred is not None:
            say(f"{untiered} rows name no cheap_models: the cheaper half by mean cost, {inferred}")

        labels = [domain_of(ex) for ex in examples]
        idx = np.array([i for i, d in enumerate(labels) if d is not None], dtype=int)
        # Where the domain head came from: None, learned from these rows.
        self.domain_head_from_: str | None = None
        if len(idx) == 0:
            # A user's own rows often carry no domain: the shipped scorer's head stands in.
            domains, W, b, self.domain_T_ = shipped_domain_head(encoder_identity)
            # Copies: the cached head is shared by every scorer trained this way.
            self.domains_, self.domain_W_, self.domain_b_ = list(domains), W.copy(), b.copy()
            self.domain_head_from_ = SHIPPED_DOMAIN_HEAD
            say("no row has a domain label: the domain head is the shipped scorer's")
            domain_oof = (X @ self.domain_W_.T + self.domain_b_) / self.domain_T_
        else:
            y = np.array([self.domains_.index(labels[i]) for i in idx])
            say(f"domain head on {len(idx)} labelled rows")
            self.domain_W_, self.domain_b_, self.domain_T_, domain_oof = self._fit_domain(
                X[idx], y, folds[idx]
            )

        self.heads_, self.models_, Y = head_targets(examples)
        if np.isnan(Y[:, 0]).all():
            raise ScorerError("no row scores one of its cheap_models; difficulty cannot be learned")
        if np.isnan(Y[:, 1]).all():
            raise ScorerError(
                "no row scores a model beside its cheap_models; the escalation gain cannot be "
                "learned (the data needs a model outside the cheap tier)"
            )
        say("TF-IDF vocabulary")
        # Rows logged without their text (embedding only) take no part in the text component.
        has_text = np.array([bool(t.strip()) for t in texts])
        vec = tfidf_vectorizer(self.max_features).fit(
            [t for t, ok in zip(texts, has_text, strict=True) if ok]
        )
        self.vocabulary_ = {t: int(i) for t, i in vec.vocabulary_.items()}
        self.idf_ = vec.idf_.astype(np.float64)
        T = vec.transform(texts).tocsr()

        H, d, V = len(self.heads_), X.shape[1], T.shape[1]
        self.emb_W_, self.emb_b_ = np.zeros((H, d)), np.zeros(H)
        self.text_W_, self.text_b_ = np.zeros((H, V)), np.zeros(H)
        self.stack_ = np.zeros((H, BIAS + 1))
        cheap = sorted({m for ex in examples for m in ex.cheap_models} & set(self.models_))
        self.cheap_models_ = cheap
        self.join_C_: dict[str, float] = {}
        shared_oof = self._fit_shared(X, Y, folds, say)
        say("nearest neighbours")
        # The kNN memory: every training row, targets NaN where unlabelled.
        self.knn_X_, self.knn_Y_ = X.astype(np.float32), Y.astype(np.float32)
        # What "unrelated" looks like in this encoder's space: the evidence weights' zero.
        self.sim_floor_ = unrelated_similarity(self.knn_X_, self.random_state)
        sources = np.array([ex.source for ex in examples]) if self.source_prior else None
        knn_oof, source_oof = knn_out_of_fold(
            X, Y, folds, self.knn_k, self.knn_shrink, self.sim_floor_, sources
        )
        # Each training row's source mean per head, for the source prior in prediction.
        self.knn_S_ = None if sources is None else source_means(Y, sources).astype(np.float32)
        if source_oof is None:
            source_oof = np.zeros_like(Y)
        oof = np.full((len(examples), 2), np.nan)  # difficulty and gain, out of fold
        self.stack_ablated_ = np.zeros((H, BIAS + 1)) if self.shared_ is not None else None
        full = None if full_heads_for is None else {f"success:{m}" for m in full_heads_for}
        for h, name in enumerate(self.heads_):
            if full is not None and h >= 2 and name not in full:
                self.stack_[h, SHARED if self.shared_ is not None else KNN] = 1.0
                if self.stack_ablated_ is not None:
                    self.stack_ablated_[h, KNN] = 1.0
                continue
            rows = np.flatnonzero(~np.isnan(Y[:, h]))
            say(f"{name} head on {len(rows)} rows")
            parts = np.column_stack([knn_oof[rows, h], shared_oof[rows, h], source_oof[rows, h]])
            p = self._fit_head(h, X[rows], T[rows], Y[rows, h], folds[rows], has_text[rows], parts)
            if h < 2 and p is not None:
                oof[rows, h] = p
        self.n_train_ = len(examples)
        # Hashes of the normalised training prompts, so evaluation and calibration can tell
        # when they are shown prompts this scorer learned from (no text is stored).
        self.train_hashes_ = np.unique(prompt_hashes(examples))
        self._prepare()
        if np.isnan(oof).all(axis=0).any():  # one calibration fold: no out-of-fold scores
            P = self.predict_heads(X, texts)
            oof = np.where(np.isnan(Y[:, :2]), np.nan, P[:, :2])
        # What live scores look like on prompts like these, for the drift alarm (drift.py).
        self.training_distributions_ = reference_distributions(
            self.domains_, domain_oof.argmax(axis=1), oof[:, 0], oof[:, 1]
        )
        return self

    def _fit_domain(self, X: np.ndarray, y: np.ndarray, folds: np.ndarray):
        from sklearn.linear_model import LogisticRegression

        def fit(Xf, yf):
            W = np.zeros((len(self.domains_), X.shape[1]))
            b = np.full(len(self.domains_), -30.0)  # domains absent from training stay ~0
            if len(np.unique(yf)) == 1:
                b[yf[0]] = 0.0
                return W, b
            # No class re-weighting: "balanced" and sqrt weights were measured, and did not
            # improve 3-fold accuracy (0.848 unweighted) but pulled proofs into "writing".
            lr = LogisticRegression(C=self.C * 10, max_iter=3000)
            lr.fit(Xf, yf)
            if len(lr.classes_) == 2:  # sklearn keeps one row for two classes
                W[lr.classes_[0]], b[lr.classes_[0]] = 0.0, 0.0
                W[lr.classes_[1]], b[lr.classes_[1]] = lr.coef_[0], lr.intercept_[0]
            else:
                W[lr.classes_] = lr.coef_
                b[lr.classes_] = lr.intercept_
            return W, b

        oof = np.zeros((len(y), len(self.domains_)))
        for k in np.unique(folds):
            tr, te = folds != k, folds == k
            if not te.any() or not tr.any():
                continue
            W, b = fit(X[tr], y[tr])
            oof[te] = X[te] @ W.T + b
        T = temperature(oof, y) if len(np.unique(folds)) > 1 else 1.0
        W, b = fit(X, y)
        if len(np.unique(folds)) <= 1:
            oof = X @ W.T + b
        return W, b, T, oof / T

    def _fit_shared(self, X: np.ndarray, Y: np.ndarray, folds: np.ndarray, say) -> np.ndarray:
        """The shared-difficulty model on every model's outcomes (router/core/irt.py); returns
        its log-odds for every head, out of fold (zeros without a shared model)."""
        self.shared_ = None
        out = np.zeros_like(Y)
        if not self.shared_dims:
            return out
        say("shared difficulty over every model")
        S = Y[:, 2:]
        uniq = np.unique(folds)
        self.shared_ = SharedDifficulty(self.shared_dims, random_state=self.random_state)
        self.shared_.fit(X, S)
        level = self.shared_.difficulty_logit(X).mean()
        for k in uniq if len(uniq) > 1 else []:
            tr, te = folds != k, folds == k
            fold_model = SharedDifficulty(self.shared_dims, random_state=self.random_state)
            out[te] = self._shared_logits(fold_model.fit(X[tr], S[tr]), X[te])
            # The difficulty's level is not identified (each model's offset can absorb it), so
            # each fold's is moved to the final model's, which the stacker's bias then fits.
            out[te, 0] += level - fold_model.difficulty_logit(X[tr]).mean()
        if len(uniq) <= 1:
            out = self._shared_logits(self.shared_, X)
        return out

    def _shared_logits(self, shared: SharedDifficulty, X: np.ndarray) -> np.ndarray:
        """(n, H): the shared model's log-odds for each head. Difficulty: the prompt's shared
        difficulty; gain: large tier right and cheap tier wrong, from the tiers' mean success;
        success: each model's own."""
        Z = shared.logits(X)
        P = sigmoid(Z)
        # Over the models the gain head was fitted with: a model that joined later has no tier
        # the scorer knows, and counting it would move every prompt's gain.
        fitted = ~np.isin(self.models_, self.added_models_)
        cheap = np.isin(self.models_, self.cheap_models_) & fitted
        large = ~cheap & fitted
        p_cheap = P[:, cheap].mean(axis=1) if cheap.any() else P[:, fitted].mean(axis=1)
        p_large = P[:, large].mean(axis=1) if large.any() else P[:, fitted].mean(axis=1)
        return np.column_stack(
            [shared.difficulty_logit(X), logit(p_large * (1 - p_cheap)), Z[:, : len(self.models_)]]
        )

    def _fit_head(
        self,
        h: int,
        X,
        T,
        y: np.ndarray,
        folds: np.ndarray,
        has_text: np.ndarray,
        parts: np.ndarray,
    ) -> np.ndarray | None:
        """Components out of fold → stacker; then the components on all rows.

        The text component learns only from rows with text (`has_text`); for the others it
        gives its intercept, as it does in prediction for an empty text, so the stacker learns
        how little it knows there. Returns the head's out-of-fold probabilities (None with a
        single fold). `parts`: the kNN, shared-model and source-prior log-odds, out of fold,
        computed for every head at once (`knn_out_of_fold`, `_fit_shared`)."""
        Z = np.zeros((len(y), BIAS))
        Z[:, [KNN, SHARED, SOURCE]] = parts
        uniq = np.unique(folds)
        emb = text = None  # the previous fold's fits, where the next one starts
        for k in uniq:
            tr, te = folds != k, folds == k
            if not te.any() or not tr.any():
                continue
            emb = fit_binary(X[tr], y[tr], self.C, emb)
            Z[te, EMB] = X[te] @ emb[0] + emb[1]
            text = fit_binary(T[tr & has_text], y[tr & has_text], self.text_C, text)
            Z[te, TEXT] = T[te] @ text[0] + text[1]  # without text: the intercept, as in prediction
        # Difficulty and gain are thresholded, not compared across models: no source prior.
        base = [EMB, TEXT, KNN] + ([SOURCE] if self.source_prior and h >= 2 else [])
        used = base + ([SHARED] if self.shared_ is not None else [])
        # Both designs take the shared difficulty, if the head does: it is what transfers to
        # new tasks.
        shared_difficulty = h == 0 and self.shared_ is not None and self.difficulty != "stack"
        if shared_difficulty and self.difficulty == "shared":
            base = used = [SHARED]
        if shared_difficulty and self.difficulty == "blend":
            # The stack without the shared model and the shared difficulty alone, each
            # calibrated, averaged in log-odds. Both are linear in the components, so their
            # mean is one stack row, the same in both designs, and prediction needs nothing
            # of its own.
            row = (
                self._stack_row(Z, y, base, len(uniq)) + self._stack_row(Z, y, [SHARED], len(uniq))
            ) / 2
            self.stack_[h] = self.stack_ablated_[h] = row
        else:
            for stack, cols in ((self.stack_, used), (self.stack_ablated_, base)):
                if stack is not None:  # None: no shared model, no stack without it
                    stack[h] = self._stack_row(Z, y, cols, len(uniq))
        self.emb_W_[h], self.emb_b_[h] = fit_binary(X, y, self.C, emb)
        self.text_W_[h], self.text_b_[h] = fit_binary(T[has_text], y[has_text], self.text_C, text)
        if len(uniq) <= 1:
            return None
        return sigmoid(Z @ self.stack_[h, :BIAS] + self.stack_[h, BIAS])

    @staticmethod
    def _stack_row(Z: np.ndarray, y: np.ndarray, cols: list[int], n_folds: int) -> np.ndarray:
        """One head's stack over components `cols` of the out-of-fold `Z`: the stacker's
        weights and bias, or their plain mean without out-of-fold scores (one fold)."""
        row = np.zeros(BIAS + 1)
        if n_folds > 1:
            w = fit_stacker(Z[:, cols], y)
            row[cols], row[BIAS] = w[:-1], w[-1]
        else:
            row[cols] = 1 / len(cols)
        return row

    def _prepare(self) -> None:
        """Derived state for prediction: the TF-IDF features and the kNN label groups."""
        self._tfidf = TfidfFeatures(self.vocabulary_, self.idf_)
        # Heads labelled on the same rows share one neighbour search over the similarities to
        # every training row, computed once per query.
        labelled = ~np.isnan(self.knn_Y_)
        # Labelled rows per head, for every prediction's evidence: counted once here, not per
        # request (0.5 ms a prediction over 14k rows).
        self._rows_per_head = labelled.sum(axis=0)
        # Two models' success estimates are comparable (the policy multiplies them into the
        # escalation gain) when their heads learned mostly the same prompts: heads trained on
        # different datasets each carry their dataset's base rate, and their product then
        # measures the datasets, not the prompt (docs/evaluation.md).
        succ = labelled[:, 2:].astype(np.int64)
        shared = succ.T @ succ
        fewer = np.minimum.outer(np.diag(shared), np.diag(shared))
        self.success_comparable_ = shared >= COMPARABLE_SHARE * np.maximum(fewer, 1)
        source = getattr(self, "knn_S_", None)
        self._knn_groups: list[tuple] = []
        for heads in labelled_alike(labelled):
            rows = np.flatnonzero(labelled[:, heads[0]])
            subset = None if len(rows) == len(labelled) else rows
            targets = self.knn_Y_[np.ix_(rows, heads)]
            # The neighbours' source means, for the source prior (None: the scorer has none).
            means = None if source is None else source[np.ix_(rows, heads)]
            self._knn_groups.append((subset, targets, heads, targets.mean(axis=0), means))
        self._text_WT = np.ascontiguousarray(self.text_W_.T)
        # The neighbour memory column-major, so that M.T is contiguous: x @ M.T on a row-major
        # (rows, dims) array took 2.5 ms for one query against 0.8 ms (OpenBLAS, 14k rows, one
        # thread). The same values and shape: one copy, not two.
        self.knn_X_ = np.asfortranarray(self.knn_X_)

    # ---- prediction -------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "domain_W_"):
            raise ScorerError("this Scorer is not fitted yet; call fit() or Scorer.load()")

    def predict_domain_proba(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return softmax((X @ self.domain_W_.T + self.domain_b_) / self.domain_T_)

    def predict_heads(self, X: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """(n, H) calibrated probabilities of every binary head, in `heads_` order."""
        return self._predict_heads(X, texts)[0]

    def _predict_heads(self, X: np.ndarray, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Every head's probability, and its evidence: the similarity-weighted count of its
        labelled training prompts among the query's k nearest (`neighbour_weights`)."""
        self._check_fitted()
        if len(texts) != len(X):
            raise ScorerError(f"{len(texts)} texts for {len(X)} embeddings")
        z_emb = X @ self.emb_W_.T + self.emb_b_
        z_text = self._tfidf.dot(list(texts), self._text_WT) + self.text_b_
        z_knn = np.zeros_like(z_emb)
        z_source = np.zeros_like(z_emb)
        evidence = np.zeros_like(z_emb)
        for start in range(0, len(X), 1024):
            sims = X[start : start + 1024].astype(np.float32) @ self.knn_X_.T
            for subset, targets, heads, prior, means in self._knn_groups:
                sub = sims if subset is None else sims[:, subset]
                k = min(self.knn_k, sub.shape[1])
                nn = np.argpartition(-sub, k - 1, axis=1)[:, :k]
                near = np.take_along_axis(sub, nn, axis=1)
                estimate = neighbour_estimate(
                    near, targets[nn], self.knn_shrink, getattr(self, "sim_floor_", None), prior
                )
                z_knn[start : start + 1024, heads] = logit(estimate)
                if means is not None:
                    z_source[start : start + 1024, heads] = logit(means[nn].mean(axis=1))
                evidence[start : start + 1024, heads] = self.neighbour_weights(near).sum(axis=1)[
                    :, None
                ]
        # Kept but unstacked (make model's choice), the shared model weighs nothing: not computed.
        unused = self.shared_ is None or not self.stack_[:, SHARED].any()
        z_shared = np.zeros_like(z_emb) if unused else self._shared_logits(self.shared_, X)
        a = self.stack_
        z = (
            a[:, EMB] * z_emb
            + a[:, TEXT] * z_text
            + a[:, KNN] * z_knn
            + a[:, SHARED] * z_shared
            + a[:, SOURCE] * z_source
        )
        return sigmoid(z + a[:, BIAS]), evidence

    def neighbour_weights(self, similarity: np.ndarray) -> np.ndarray:
        """How much a labelled neighbour at this cosine counts as evidence, in [0, 1]: 0 at or
        below the cosine of two unrelated training prompts (`sim_floor_`, measured at fit),
        1 for the same prompt, linear between."""
        floor = getattr(self, "sim_floor_", None)
        if floor is None:
            return np.full_like(similarity, np.nan)
        return neighbour_weights(similarity, floor)

    def predict(self, X: np.ndarray, texts: Sequence[str]) -> ScoreBatch:
        """Every score for embeddings `X` of `texts`."""
        self._check_fitted()
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        # A request's few rows: one BLAS thread. OpenBLAS' idle threads spin, and two of them
        # on two busy cores turned a 2 ms prediction into 40-60 ms (measured on this machine).
        with one_blas_thread() if len(X) <= SMALL_BATCH else contextlib.nullcontext():
            P, evidence = self._predict_heads(X, texts)
            domain_probs = self.predict_domain_proba(X)
        known = getattr(self, "sim_floor_", None) is not None
        return ScoreBatch(
            domains=self.domains_,
            models=self.models_,
            domain_probs=domain_probs,
            difficulty=P[:, 0],
            gain=P[:, 1],
            success=P[:, 2:],
            evidence=evidence[:, 2:] if known else None,
            rows=self._rows_per_head[2:].copy() if known else None,
            comparable=self.success_comparable_,
        )

    @property
    def added_models_(self) -> list[str]:
        """The models that joined from their profiled rows (`add_model`), in order."""
        return list(self.join_C_)

    def ablated(self, keep_shared: bool = False) -> Scorer:
        """This scorer as it would be without the shared-difficulty model: the same fitted
        components, stacked without it (evaluation compares the two designs from one fit). With
        `difficulty` "shared" or "blend", the difficulty head keeps it in both designs.
        `keep_shared` keeps the shared model, unstacked, for models that join later
        (`add_model`): the profiled models' estimates are those of the design without it."""
        if getattr(self, "stack_ablated_", None) is None:
            raise ScorerError("this scorer kept no stack without its shared model")
        other = copy.copy(self)
        # Its own lists, dicts and shared model: a model joining (`add_model`) extends them. The
        # arrays can be shared, as no method changes one in place (a join builds new ones).
        for name, value in vars(self).items():
            if isinstance(value, (list, dict, set)):
                setattr(other, name, copy.copy(value))
        other.stack_, other.stack_ablated_ = self.stack_ablated_, None
        if not keep_shared and not other.stack_[:, SHARED].any():
            other.shared_ = None
        else:
            other.shared_ = copy.deepcopy(self.shared_)
        return other

    def check_can_join(self, model: str, where: str | None = None) -> None:
        """Raise a ScorerError when `model` cannot join this scorer (`add_model`): before the
        rows are embedded, which takes minutes. `where` names the scorer (its directory) in
        the message; a model already in it is told apart by how it got there."""
        self._check_fitted()
        if model in self.models_:
            how = (
                "(joined by router add-model): to join it again from new rows, extend the scorer "
                "it was added to instead (--scorer; `--scorer default`: the shipped one)"
                if model in self.added_models_
                else "(one of the models it was trained on): retrain (router train) to change "
                "its head, or extend a scorer without it (--scorer)"
            )
            at = f" in {where}" if where else ""
            raise ScorerError(f"{model!r} already has a success head{at} {how}")
        if self.shared_ is None:
            raise ScorerError(
                "this scorer has no shared-difficulty model (shared_dims); retrain it"
            )

    def add_model(self, model: str, X: np.ndarray, examples: Sequence[Example]) -> Scorer:
        """A model joins from its own profiled rows alone. Its success head is its ability on
        the shared difficulty (the prompt side frozen), corrected by a regression of its rows on
        the embedding around that estimate, as strong as its rows show it should be
        (`joined_head`: `join_C_[model]`, 0 for none). Rows of a model like the fitted ones
        keep the shared estimate; a model unlike them corrects it. Its rows join the neighbour
        memory (on the rows of the prompts the scorer learned), so its estimates carry their
        own (small) evidence and compare with the heads' that learned the same prompts."""
        self.check_can_join(model)
        y = np.array([ex.scores.get(model, np.nan) for ex in examples], dtype=float)
        keep = ~np.isnan(y)
        if keep.sum() < 1:
            raise ScorerError(f"no row has a score for {model!r}")
        X = np.asarray(X, dtype=np.float64)[keep]
        # What the model's own rows say beyond its ability on the shared difficulty: a model
        # unlike the fitted ones (a tiny one near chance on multiple choice) is misjudged by
        # the shared prompt side alone, and its few ability weights cannot correct that.
        _, w, b, C = joined_head(self.shared_, X, y[keep])
        self.join_C_[model] = C
        self.models_.append(model)
        self.heads_.append(f"success:{model}")
        self.emb_W_ = np.vstack([self.emb_W_, w])
        self.emb_b_ = np.r_[self.emb_b_, b]
        self.text_W_ = np.vstack([self.text_W_, np.zeros(self.text_W_.shape[1])])
        self.text_b_ = np.r_[self.text_b_, 0.0]
        # The shared model plus that correction: no other component learned anything about it.
        row = np.zeros(BIAS + 1)
        row[SHARED] = row[EMB] = 1.0
        self.stack_ = np.vstack([self.stack_, row])
        kept = [ex for ex, k in zip(examples, keep, strict=True) if k]
        # A prompt the scorer learned is labelled on its own row of the neighbour memory, so
        # the head counts as learned on the prompts it shares with the fitted heads
        # (`success_comparable_` counts rows); a prompt of its own joins as a new row.
        learned = self.trained_on(kept)
        at = memory_rows(
            self.knn_X_, self.knn_Y_, X, np.ones(len(kept), bool) if learned is None else learned
        )
        self.knn_X_ = np.vstack([self.knn_X_, X[at < 0].astype(np.float32)])
        self.knn_Y_ = _with_new_column(self.knn_Y_, y[keep], at)
        if getattr(self, "knn_S_", None) is not None:
            # Unstacked for this head, but kept aligned with the memory.
            sources = np.array([ex.source for ex in kept])
            means = source_means(y[keep, None], sources)[:, 0]
            self.knn_S_ = _with_new_column(self.knn_S_, means, at)
        if getattr(self, "train_hashes_", None) is not None:
            self.train_hashes_ = np.union1d(self.train_hashes_, prompt_hashes(kept))
        self._prepare()
        return self

    def get_params(self) -> dict[str, Any]:
        """The design: the parameters this scorer was built with, read off the constructor's
        signature as scikit-learn's `get_params` does (so a new one cannot be left out), for a
        retrain to fit the same one and an artifact to record it."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self"}

    @property
    def shared_stacked_(self) -> bool:
        """Whether the shared model is a component of the gain and success heads, or kept
        unstacked for models that join later (`ablated(keep_shared=True)`, make model's choice
        when the stack measured no better with it)."""
        self._check_fitted()
        return self.shared_ is not None and bool(self.stack_[1:, SHARED].any())

    def trained_on(self, examples: Sequence[Example]) -> np.ndarray | None:
        """Per example, whether its prompt (normalised, `data.group_key`) was among this
        scorer's training prompts; None for an artifact that recorded no hashes."""
        hashes = getattr(self, "train_hashes_", None)
        if hashes is None:
            return None
        return np.isin(prompt_hashes(examples), hashes)

    # ---- persistence (router/core/scorer_format.py) -------------------------------------------

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write `scorer.json` and `weights.npz` into directory `path`."""
        return scorer_format.write(self, path, extra)

    @classmethod
    def load(cls, path: str | Path, encoder_identity: str | None = None) -> Scorer:
        """Load a saved scorer; refuse one trained with a different encoder."""
        return scorer_format.read(cls, path, encoder_identity)


def _with_new_column(memory: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The neighbour memory (rows, heads) with a head holding `values`: on the old row `at`
    names (its prompt's), else on a new row, NaN for every other head; NaN elsewhere."""
    old = np.hstack([memory, np.full((len(memory), 1), np.nan, np.float32)])
    old[at[at >= 0], -1] = values[at >= 0]
    new = np.full(((at < 0).sum(), old.shape[1]), np.nan, np.float32)
    new[:, -1] = values[at < 0]
    return np.vstack([old, new])
