"""Embedding (+ text) → domain probabilities, difficulty, escalation gain, per-model success.

Heads (each a probability):
- *domain*: multinomial logistic regression on the embedding, temperature-scaled out of fold;
- *difficulty*: the cheap tier fails (target: 1 − mean score of the row's cheap models);
- *gain*: escalating pays off — the large model succeeds where the cheap tier fails
  (target: large score × (1 − cheap score));
- *success* for every model in the training data.

Each binary head is a small ensemble, chosen on 5-fold CV (BENCHMARKS.md): logistic regression on
the embedding, logistic regression on word TF-IDF (1-2 grams), and the mean target of the k
nearest training prompts; a stacker (logistic regression on the three components' out-of-fold
log-odds) weights and calibrates them.

A saved scorer is a directory: `scorer.json` (metadata, vocabulary, calibration) and
`weights.npz` (arrays, loaded with `allow_pickle=False`). Nothing in it is executed on load.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router.core.data import (
    Example,
    domain_names,
    domain_of,
    group_folds,
    group_key,
    prompt_hashes,
    tier_outcomes,
)
from router.core.drift import reference_distributions
from router.core.encoder import interchangeable
from router.core.irt import SharedDifficulty
from router.core.tfidf import TfidfFeatures, tfidf_vectorizer

FORMAT_VERSION = 3
# Format 2 (no shared-difficulty model, no evidence) still loads: its stack gains a zero weight.
READABLE_VERSIONS = (2, 3)
Progress = Callable[[str], None]
EPS = 1e-4


class ScorerError(ValueError):
    """A scorer cannot be trained or loaded; the message says why."""


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

    def __len__(self) -> int:
        return len(self.difficulty)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _fit_binary(X, y: np.ndarray, C: float) -> tuple[np.ndarray, float]:
    """Logistic regression on graded targets: each row twice, weighted y and 1 − y."""
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
    lr = LogisticRegression(C=C, max_iter=3000)
    lr.fit(X2[keep], y2[keep], sample_weight=w2[keep])
    return lr.coef_[0].astype(np.float64), float(lr.intercept_[0])


def _fit_stacker(Z: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> np.ndarray:
    """Weights (…, bias) of p = sigmoid(Z @ a + c) on graded y, by Newton steps on log loss."""
    A = np.hstack([Z, np.ones((len(Z), 1))])
    w = np.zeros(A.shape[1])
    w[:-1] = 1.0 / Z.shape[1]
    for _ in range(100):
        p = _sigmoid(A @ w)
        grad = A.T @ (p - y) / len(y) + l2 * np.r_[w[:-1], 0]
        H = (A * (p * (1 - p))[:, None]).T @ A / len(y) + l2 * np.eye(len(w))
        step = np.linalg.solve(H + 1e-9 * np.eye(len(w)), grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the out-of-fold log loss (a 1-D search)."""
    best_t, best = 1.0, np.inf
    for t in np.exp(np.linspace(np.log(0.2), np.log(5.0), 61)):
        p = _softmax(logits / t)
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


def _one_blas_thread():
    return _blas_controller().limit(limits=1, user_api="blas")


def _knn_mean(Xq: np.ndarray, Xref: np.ndarray, Yref: np.ndarray, k: int) -> np.ndarray:
    """Mean target of the k most similar reference rows (cosine: rows are unit-norm)."""
    k = min(k, len(Xref))
    out = np.zeros((len(Xq), Yref.shape[1]))
    for s in range(0, len(Xq), 1024):
        sims = Xq[s : s + 1024] @ Xref.T
        nn = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out[s : s + 1024] = Yref[nn].mean(axis=1)
    return out


def _unrelated_similarity(X: np.ndarray, seed: int, pairs: int = 20000) -> float:
    """The median cosine between two training prompts drawn at random: what "unrelated" looks
    like in this encoder's space (a neighbour that close is no evidence at all)."""
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(X), pairs), rng.integers(0, len(X), pairs)
    keep = i != j
    return float(np.median(np.einsum("ij,ij->i", X[i[keep]], X[j[keep]])))


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


class Scorer:
    """Domain, difficulty, gain and per-model success heads on a frozen embedding and the text."""

    def __init__(
        self,
        C: float = 1.0,
        text_C: float = 1.0,
        knn_k: int = 50,
        calibration_folds: int = 3,
        max_features: int = 50000,
        random_state: int = 0,
        shared_dims: int | None = 8,
    ) -> None:
        self.C = C
        self.text_C = text_C
        self.knn_k = knn_k
        self.calibration_folds = calibration_folds
        self.max_features = max_features
        self.random_state = random_state
        # Latent traits of the shared-difficulty model (router/core/irt.py) that every head
        # stacks as a fourth component; None: no shared model (the scorer of format 2).
        self.shared_dims = shared_dims

    # ---- fitting ----------------------------------------------------------------------------

    def fit(
        self,
        X: np.ndarray,
        examples: Sequence[Example],
        encoder_identity: str,
        progress: Progress | None = None,
        texts: Sequence[str] | None = None,
    ) -> Scorer:
        """Learn every head from embeddings `X` (one row per example) and their outcomes."""
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

        labels = [domain_of(ex) for ex in examples]
        idx = np.array([i for i, d in enumerate(labels) if d is not None], dtype=int)
        if len(idx) == 0:
            raise ScorerError("no example has a domain label (set 'domain' or a known 'source')")
        y = np.array([self.domains_.index(labels[i]) for i in idx])
        say(f"domain head on {len(idx)} labelled rows")
        self.domain_W_, self.domain_b_, self.domain_T_, domain_oof = self._fit_domain(
            X[idx], y, folds[idx]
        )

        self.heads_, self.models_, Y = head_targets(examples)
        if np.isnan(Y[:, 0]).all():
            raise ScorerError("no example names its cheap_models; difficulty cannot be learned")
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
        self.stack_ = np.zeros((H, 5))
        cheap = sorted({m for ex in examples for m in ex.cheap_models} & set(self.models_))
        self.cheap_models_ = cheap
        shared_oof = self._fit_shared(X, Y, folds, say)
        oof = np.full((len(examples), 2), np.nan)  # difficulty and gain, out of fold
        for h, name in enumerate(self.heads_):
            rows = np.flatnonzero(~np.isnan(Y[:, h]))
            say(f"{name} head on {len(rows)} rows")
            p = self._fit_head(
                h, X[rows], T[rows], Y[rows, h], folds[rows], has_text[rows], shared_oof[rows, h]
            )
            if h < 2 and p is not None:
                oof[rows, h] = p
        # kNN memory: every training row, targets NaN where unlabelled.
        self.knn_X_, self.knn_Y_ = X.astype(np.float32), Y.astype(np.float32)
        self.sim_floor_ = _unrelated_similarity(self.knn_X_, self.random_state)
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
        T = _temperature(oof, y) if len(np.unique(folds)) > 1 else 1.0
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
        for k in uniq if len(uniq) > 1 else []:
            tr, te = folds != k, folds == k
            fold_model = SharedDifficulty(self.shared_dims, random_state=self.random_state)
            out[te] = self._shared_logits(fold_model.fit(X[tr], S[tr]), X[te])
        self.shared_ = SharedDifficulty(self.shared_dims, random_state=self.random_state)
        self.shared_.fit(X, S)
        if len(uniq) <= 1:
            out = self._shared_logits(self.shared_, X)
        return out

    def _shared_logits(self, shared: SharedDifficulty, X: np.ndarray) -> np.ndarray:
        """(n, H): the shared model's log-odds for each head. Difficulty: the prompt's shared
        difficulty; gain: large tier right and cheap tier wrong, from the tiers' mean success;
        success: each model's own."""
        Z = shared.logits(X)
        P = _sigmoid(Z)
        cheap = np.isin(self.models_, self.cheap_models_)
        p_cheap = P[:, cheap].mean(axis=1) if cheap.any() else P.mean(axis=1)
        p_large = P[:, ~cheap].mean(axis=1) if (~cheap).any() else P.mean(axis=1)
        return np.column_stack(
            [shared.difficulty_logit(X), _logit(p_large * (1 - p_cheap)), Z[:, : len(self.models_)]]
        )

    def _fit_head(
        self,
        h: int,
        X,
        T,
        y: np.ndarray,
        folds: np.ndarray,
        has_text: np.ndarray | None = None,
        shared: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """Components out of fold → stacker; then the components on all rows.

        The text component learns only from rows with text (`has_text`); for the others it
        gives its intercept, as it does in prediction for an empty text, so the stacker learns
        how little it knows there. Returns the head's out-of-fold probabilities (None with a
        single fold)."""
        txt = np.ones(len(y), dtype=bool) if has_text is None else has_text
        Z = np.zeros((len(y), 4))
        Z[:, 3] = 0.0 if shared is None else shared  # the shared model, out of fold
        uniq = np.unique(folds)
        for k in uniq:
            tr, te = folds != k, folds == k
            if not te.any() or not tr.any():
                continue
            w, b = _fit_binary(X[tr], y[tr], self.C)
            Z[te, 0] = X[te] @ w + b
            w, b = _fit_binary(T[tr & txt], y[tr & txt], self.text_C)
            Z[te, 1] = T[te] @ w + b  # a row without text: the intercept, as in prediction
            Z[te, 2] = _logit(_knn_mean(X[te], X[tr], y[tr, None], self.knn_k)[:, 0])
        comps = 4 if self.shared_ is not None else 3
        if len(uniq) > 1:
            w = _fit_stacker(Z[:, :comps], y)
            self.stack_[h, :comps], self.stack_[h, 4] = w[:comps], w[comps]
        else:
            self.stack_[h, :comps] = 1 / comps
        self.emb_W_[h], self.emb_b_[h] = _fit_binary(X, y, self.C)
        self.text_W_[h], self.text_b_[h] = _fit_binary(T[txt], y[txt], self.text_C)
        if len(uniq) <= 1:
            return None
        return _sigmoid(Z @ self.stack_[h, :4] + self.stack_[h, 4])

    def _prepare(self) -> None:
        """Derived state for prediction: the TF-IDF features and the kNN label groups."""
        self._tfidf = TfidfFeatures(self.vocabulary_, self.idf_)
        # Heads labelled on the same rows share one neighbour search over the similarities to
        # every training row, computed once per query.
        labelled = ~np.isnan(self.knn_Y_)
        groups: dict[bytes, list[int]] = {}
        for h in range(labelled.shape[1]):
            groups.setdefault(np.packbits(labelled[:, h]).tobytes(), []).append(h)
        self._knn_groups: list[tuple[np.ndarray | None, np.ndarray, list[int]]] = []
        for heads in groups.values():
            rows = np.flatnonzero(labelled[:, heads[0]])
            subset = None if len(rows) == len(labelled) else rows
            self._knn_groups.append((subset, self.knn_Y_[np.ix_(rows, heads)], heads))
        self._text_WT = np.ascontiguousarray(self.text_W_.T)

    # ---- prediction -------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "domain_W_"):
            raise ScorerError("this Scorer is not fitted yet; call fit() or Scorer.load()")

    def predict_domain_proba(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return _softmax((X @ self.domain_W_.T + self.domain_b_) / self.domain_T_)

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
        evidence = np.zeros_like(z_emb)
        for start in range(0, len(X), 1024):
            sims = X[start : start + 1024].astype(np.float32) @ self.knn_X_.T
            for subset, targets, heads in self._knn_groups:
                sub = sims if subset is None else sims[:, subset]
                k = min(self.knn_k, sub.shape[1])
                nn = np.argpartition(-sub, k - 1, axis=1)[:, :k]
                z_knn[start : start + 1024, heads] = _logit(targets[nn].mean(axis=1))
                near = np.take_along_axis(sub, nn, axis=1)
                evidence[start : start + 1024, heads] = self.neighbour_weights(near).sum(axis=1)[
                    :, None
                ]
        z_shared = (
            np.zeros_like(z_emb) if self.shared_ is None else self._shared_logits(self.shared_, X)
        )
        a = self.stack_
        z = a[:, 0] * z_emb + a[:, 1] * z_text + a[:, 2] * z_knn + a[:, 3] * z_shared
        return _sigmoid(z + a[:, 4]), evidence

    def neighbour_weights(self, similarity: np.ndarray) -> np.ndarray:
        """How much a labelled neighbour at this cosine counts as evidence, in [0, 1]: 0 at or
        below the cosine of two unrelated training prompts (`sim_floor_`, measured at fit),
        1 for the same prompt, linear between."""
        floor = getattr(self, "sim_floor_", None)
        if floor is None:
            return np.full_like(similarity, np.nan)
        return np.clip((similarity - floor) / (1.0 - floor), 0.0, 1.0)

    def predict(self, X: np.ndarray, texts: Sequence[str]) -> ScoreBatch:
        """Every score for embeddings `X` of `texts`."""
        self._check_fitted()
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        # A request's few rows: one BLAS thread. OpenBLAS' idle threads spin, and two of them
        # on two busy cores turned a 2 ms prediction into 40-60 ms (measured on this machine).
        with _one_blas_thread() if len(X) <= SMALL_BATCH else contextlib.nullcontext():
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
            rows=(~np.isnan(self.knn_Y_[:, 2:])).sum(axis=0) if known else None,
        )

    def trained_on(self, examples: Sequence[Example]) -> np.ndarray | None:
        """Per example, whether its prompt (normalised, `data.group_key`) was among this
        scorer's training prompts; None for an artifact that recorded no hashes."""
        hashes = getattr(self, "train_hashes_", None)
        if hashes is None:
            return None
        return np.isin(prompt_hashes(examples), hashes)

    # ---- persistence ------------------------------------------------------------------------

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write `scorer.json` and `weights.npz` into directory `path`."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {
            "domain_W": self.domain_W_.astype(np.float32),
            "domain_b": self.domain_b_.astype(np.float32),
            "emb_W": self.emb_W_.astype(np.float32),
            "emb_b": self.emb_b_.astype(np.float32),
            "text_W": self.text_W_.astype(np.float32),
            "text_b": self.text_b_.astype(np.float32),
            "stack": self.stack_.astype(np.float64),
            "idf": self.idf_.astype(np.float64),
            "knn_X": self.knn_X_.astype(np.float16),
            "knn_Y": self.knn_Y_.astype(np.float16),
        }
        if getattr(self, "train_hashes_", None) is not None:
            arrays["train_hashes"] = self.train_hashes_.astype(np.uint64)
        if self.shared_ is not None:
            arrays.update(self.shared_.to_arrays())
        vocab = sorted(self.vocabulary_, key=self.vocabulary_.__getitem__)
        meta = {
            "format_version": FORMAT_VERSION,
            "encoder": self.encoder_identity_,
            "domains": self.domains_,
            "models": self.models_,
            "heads": self.heads_,
            "params": {
                "C": self.C,
                "text_C": self.text_C,
                "knn_k": self.knn_k,
                "calibration_folds": self.calibration_folds,
                "max_features": self.max_features,
                "shared_dims": self.shared_dims if self.shared_ is not None else None,
            },
            "cheap_models": self.cheap_models_,
            "domain_temperature": self.domain_T_,
            "n_train": self.n_train_,
            "sim_floor": getattr(self, "sim_floor_", None),
            # Absent in scorers saved before the drift alarm existed.
            **(
                {"training_distributions": self.training_distributions_}
                if getattr(self, "training_distributions_", None)
                else {}
            ),
            **(extra or {}),
            "vocabulary": vocab,
        }
        np.savez_compressed(path / "weights.npz", **arrays)
        (path / "scorer.json").write_text(json.dumps(meta) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path, encoder_identity: str | None = None) -> Scorer:
        """Load a saved scorer; refuse one trained with a different encoder."""
        path = Path(path)
        meta_file, weights_file = path / "scorer.json", path / "weights.npz"
        if not meta_file.is_file() or not weights_file.is_file():
            raise ScorerError(f"{path}: not a scorer directory (needs scorer.json and weights.npz)")
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            with np.load(weights_file, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (ValueError, OSError) as e:
            raise ScorerError(f"{path}: unreadable scorer files: {e}") from None
        if not isinstance(meta, dict) or meta.get("format_version") not in READABLE_VERSIONS:
            raise ScorerError(
                f"{path}/scorer.json: format_version {meta.get('format_version') if isinstance(meta, dict) else '?'}"
                f" is not {FORMAT_VERSION}; retrain with `router train`"
            )
        if encoder_identity is not None and not interchangeable(
            str(meta.get("encoder")), encoder_identity
        ):
            raise ScorerError(
                f"{path}: trained with encoder {meta.get('encoder')!r}, but the router uses "
                f"{encoder_identity!r}; retrain with `router train` or set encoder to match"
            )
        try:
            self = cls(**meta["params"])
            self.encoder_identity_ = meta["encoder"]
            self.domains_ = list(meta["domains"])
            self.models_ = list(meta["models"])
            self.heads_ = list(meta["heads"])
            self.domain_T_ = float(meta["domain_temperature"])
            self.n_train_ = int(meta.get("n_train", 0))
            # None for an artifact saved before evidence was kept: its estimates carry none.
            floor = meta.get("sim_floor")
            self.sim_floor_ = None if floor is None else float(floor)
            # None for an artifact saved before scorers recorded them: no drift alarm then.
            self.training_distributions_ = meta.get("training_distributions")
            self.vocabulary_ = {t: i for i, t in enumerate(meta["vocabulary"])}
            f64 = {
                k: arrays[k].astype(np.float64)
                for k in arrays
                if k not in ("knn_X", "knn_Y", "train_hashes")
            }
            # Artifacts saved before training hashes were recorded have none: unknown, not empty.
            hashes = arrays.get("train_hashes")
            self.train_hashes_ = None if hashes is None else hashes.astype(np.uint64)
            self.domain_W_, self.domain_b_ = f64["domain_W"], f64["domain_b"]
            self.emb_W_, self.emb_b_ = f64["emb_W"], f64["emb_b"]
            self.text_W_, self.text_b_ = f64["text_W"], f64["text_b"]
            self.stack_, self.idf_ = f64["stack"], f64["idf"]
            if self.stack_.shape[1:] == (4,):  # format 2: no shared model
                self.stack_ = np.insert(self.stack_, 3, 0.0, axis=1)
            self.shared_ = SharedDifficulty.from_arrays(arrays) if "irt_A" in arrays else None
            self.cheap_models_ = list(meta.get("cheap_models", []))
            self.knn_X_ = arrays["knn_X"].astype(np.float32)
            self.knn_Y_ = arrays["knn_Y"].astype(np.float32)
            self.meta_ = {k: v for k, v in meta.items() if k != "vocabulary"}
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ScorerError(f"{path}: incomplete scorer files (missing or bad {e})") from None
        H, D, V = len(self.heads_), len(self.domains_), len(self.vocabulary_)
        ok = (
            self.domain_W_.shape[0] == D
            and self.emb_W_.shape[0] == H
            and self.text_W_.shape == (H, V)
            and self.stack_.shape == (H, 5)
            and (self.shared_ is None or self.shared_.theta_.shape[0] == len(self.models_))
            and len(self.idf_) == V
            and self.knn_Y_.shape == (len(self.knn_X_), H)
            and H == 2 + len(self.models_)
        )
        if not ok:
            raise ScorerError(f"{path}: weights do not match scorer.json")
        self._prepare()
        return self
