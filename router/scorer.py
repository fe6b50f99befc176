"""Embedding → domain probabilities, difficulty and per-model success probabilities.

Linear heads on the frozen encoder (scikit-learn for `fit`, plain numpy for `predict`), each
calibrated on out-of-fold predictions grouped by prompt text: temperature scaling for the
domain head, Platt scaling for the binary heads.

A saved scorer is a directory with `scorer.json` (metadata, calibration) and `weights.npz`
(arrays, loaded with `allow_pickle=False`): nothing in it is executed on load.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .data import Example, domain_names, domain_of, group_key

FORMAT_VERSION = 1
Progress = Callable[[str], None]


class ScorerError(ValueError):
    """A scorer cannot be trained or loaded; the message says why."""


@dataclass
class ScoreBatch:
    """Scores for n texts: domain probabilities (n, D), difficulty (n,), success (n, M)."""

    domains: list[str]
    models: list[str]
    domain_probs: np.ndarray
    difficulty: np.ndarray
    success: np.ndarray

    def __len__(self) -> int:
        return len(self.difficulty)

    def take(self, idx: np.ndarray | Sequence[int]) -> ScoreBatch:
        return ScoreBatch(
            self.domains,
            self.models,
            self.domain_probs[idx],
            self.difficulty[idx],
            self.success[idx],
        )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _soft_rows(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Graded targets in [0, 1] as weighted 0/1 rows, so logistic regression can fit them."""
    X2 = np.concatenate([X, X])
    y2 = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
    w2 = np.concatenate([y, 1.0 - y])
    keep = w2 > 0
    return X2[keep], y2[keep], w2[keep]


def _fit_binary(X: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    Xs, ys, ws = _soft_rows(X, y)
    if len(np.unique(ys)) < 2:
        # Every row agrees: a constant head (log-odds of a smoothed rate).
        rate = (y.sum() + 1) / (len(y) + 2)
        return np.zeros(X.shape[1]), float(np.log(rate / (1 - rate)))
    lr = LogisticRegression(C=C, max_iter=2000)
    lr.fit(Xs, ys, sample_weight=ws)
    return lr.coef_[0].copy(), float(lr.intercept_[0])


def _platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Fit p = sigmoid(a*z + b) to graded targets y by Newton steps on the log loss."""
    a, b = 1.0, 0.0
    for _ in range(50):
        p = _sigmoid(a * z + b)
        g = p - y
        grad = np.array([(g * z).mean(), g.mean()])
        w = np.maximum(p * (1 - p), 1e-9)
        H = np.array([[(w * z * z).mean(), (w * z).mean()], [(w * z).mean(), w.mean()]])
        H += 1e-6 * np.eye(2)
        step = np.linalg.solve(H, grad)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-7:
            break
    return float(a), float(b)


def _temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the out-of-fold log loss (a 1-D search)."""
    best_t, best = 1.0, np.inf
    for t in np.exp(np.linspace(np.log(0.2), np.log(5.0), 61)):
        p = _softmax(logits / t)
        nll = -np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)).mean()
        if nll < best:
            best_t, best = float(t), nll
    return best_t


def _group_folds(groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A fold number per row; rows of one group share a fold."""
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(uniq, rng.permutation(len(uniq)) % k, strict=True))
    return np.array([fold_of[g] for g in groups])


class Scorer:
    """Domain, difficulty and per-model success heads on a frozen embedding."""

    def __init__(self, C: float = 1.0, calibration_folds: int = 3, random_state: int = 0) -> None:
        self.C = C
        self.calibration_folds = calibration_folds
        self.random_state = random_state

    # ---- fitting ----------------------------------------------------------------------------

    def fit(
        self,
        X: np.ndarray,
        examples: Sequence[Example],
        encoder_identity: str,
        progress: Progress | None = None,
    ) -> Scorer:
        """Learn every head from embeddings `X` (one row per example) and their outcomes."""
        if len(X) != len(examples):
            raise ScorerError(f"{len(X)} embeddings for {len(examples)} examples")
        if len(examples) < 10:
            raise ScorerError("need at least 10 examples to train a scorer")
        say = progress or (lambda _msg: None)
        groups = np.array([group_key(ex) for ex in examples])
        folds = _group_folds(groups, self.calibration_folds, self.random_state)
        self.encoder_identity_ = encoder_identity
        self.domains_ = domain_names()

        # Domain head: rows that carry a domain label.
        labels = [domain_of(ex) for ex in examples]
        idx = np.array([i for i, d in enumerate(labels) if d is not None], dtype=int)
        if len(idx) == 0:
            raise ScorerError("no example has a domain label (set 'domain' or a known 'source')")
        y = np.array([self.domains_.index(labels[i]) for i in idx])
        say(f"domain head on {len(idx)} labelled rows")
        self.domain_W_, self.domain_b_, self.domain_T_ = self._fit_domain(X[idx], y, folds[idx])

        # Difficulty head: how often the cheap tier fails (graded: 1 - mean cheap score).
        rows, target = [], []
        for i, ex in enumerate(examples):
            if ex.cheap_models:
                rows.append(i)
                target.append(1.0 - float(np.mean([ex.scores[m] for m in ex.cheap_models])))
        if not rows:
            raise ScorerError("no example names its cheap_models; difficulty cannot be learned")
        r = np.array(rows)
        say(f"difficulty head on {len(r)} rows")
        self.difficulty_ = self._fit_calibrated_binary(X[r], np.array(target), folds[r])

        # Success head per model, on the rows where that model was scored.
        self.models_ = sorted({m for ex in examples for m in ex.scores})
        self.success_ = []
        for m in self.models_:
            r = np.array([i for i, ex in enumerate(examples) if m in ex.scores])
            t = np.array([examples[i].scores[m] for i in r])
            say(f"success head for {m} on {len(r)} rows")
            self.success_.append(self._fit_calibrated_binary(X[r], t, folds[r]))
        self.n_train_ = len(examples)
        return self

    def _fit_domain(self, X: np.ndarray, y: np.ndarray, folds: np.ndarray):
        from sklearn.linear_model import LogisticRegression

        def fit(Xf, yf):
            # Balanced classes: the data is MMLU-heavy, real traffic is not.
            lr = LogisticRegression(C=self.C * 10, max_iter=3000, class_weight="balanced")
            lr.fit(Xf, yf)
            W = np.zeros((len(self.domains_), X.shape[1]))
            b = np.full(len(self.domains_), -30.0)  # domains absent from training stay ~0
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
            if len(np.unique(y[tr])) < 2 or not te.any():
                continue
            W, b = fit(X[tr], y[tr])
            oof[te] = X[te] @ W.T + b
        T = _temperature(oof, y) if len(np.unique(folds)) > 1 else 1.0
        W, b = fit(X, y)
        return W, b, T

    def _fit_calibrated_binary(self, X: np.ndarray, y: np.ndarray, folds: np.ndarray):
        oof = np.zeros(len(y))
        for k in np.unique(folds):
            tr, te = folds != k, folds == k
            if not te.any() or not tr.any():
                continue
            w, b = _fit_binary(X[tr], y[tr], self.C)
            oof[te] = X[te] @ w + b
        a, c = _platt(oof, y) if len(np.unique(folds)) > 1 else (1.0, 0.0)
        w, b = _fit_binary(X, y, self.C)
        return {"w": w, "b": b, "a": a, "c": c}

    # ---- prediction -------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "domain_W_"):
            raise ScorerError("this Scorer is not fitted yet; call fit() or Scorer.load()")

    def predict_domain_proba(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return _softmax((X @ self.domain_W_.T + self.domain_b_) / self.domain_T_)

    @staticmethod
    def _binary(X: np.ndarray, head: dict[str, Any]) -> np.ndarray:
        return _sigmoid(head["a"] * (X @ head["w"] + head["b"]) + head["c"])

    def predict_difficulty(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self._binary(X, self.difficulty_)

    def predict_success_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, M): each model's probability of success, columns in `models_` order."""
        self._check_fitted()
        if not self.success_:
            return np.zeros((len(X), 0))
        W = np.stack([h["w"] for h in self.success_])
        b = np.array([h["b"] for h in self.success_])
        a = np.array([h["a"] for h in self.success_])
        c = np.array([h["c"] for h in self.success_])
        return _sigmoid(a * (X @ W.T + b) + c)

    def predict(self, X: np.ndarray) -> ScoreBatch:
        self._check_fitted()
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        return ScoreBatch(
            domains=self.domains_,
            models=self.models_,
            domain_probs=self.predict_domain_proba(X),
            difficulty=self.predict_difficulty(X),
            success=self.predict_success_proba(X),
        )

    # ---- persistence ------------------------------------------------------------------------

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write `scorer.json` and `weights.npz` into directory `path`."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {"domain_W": self.domain_W_, "domain_b": self.domain_b_}
        arrays["difficulty_w"] = self.difficulty_["w"]
        arrays["success_W"] = np.stack([h["w"] for h in self.success_])
        meta = {
            "format_version": FORMAT_VERSION,
            "encoder": self.encoder_identity_,
            "domains": self.domains_,
            "models": self.models_,
            "params": {"C": self.C, "calibration_folds": self.calibration_folds},
            "domain_temperature": self.domain_T_,
            "difficulty": {k: self.difficulty_[k] for k in ("b", "a", "c")},
            "success": [{k: h[k] for k in ("b", "a", "c")} for h in self.success_],
            "n_train": self.n_train_,
            **(extra or {}),
        }
        np.savez_compressed(path / "weights.npz", **{k: v.astype(np.float32) for k, v in arrays.items()})
        (path / "scorer.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
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
                arrays = {k: z[k].astype(np.float64) for k in z.files}
        except (ValueError, OSError) as e:
            raise ScorerError(f"{path}: unreadable scorer files: {e}") from None
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            raise ScorerError(f"{path}/scorer.json: unsupported format_version")
        if encoder_identity is not None and meta.get("encoder") != encoder_identity:
            raise ScorerError(
                f"{path}: trained with encoder {meta.get('encoder')!r}, but the router uses "
                f"{encoder_identity!r}; retrain with `router train` or set encoder to match"
            )
        try:
            self = cls(C=meta["params"]["C"], calibration_folds=meta["params"]["calibration_folds"])
            self.encoder_identity_ = meta["encoder"]
            self.domains_ = list(meta["domains"])
            self.models_ = list(meta["models"])
            self.domain_W_, self.domain_b_ = arrays["domain_W"], arrays["domain_b"]
            self.domain_T_ = float(meta["domain_temperature"])
            self.difficulty_ = {"w": arrays["difficulty_w"], **meta["difficulty"]}
            self.success_ = [
                {"w": arrays["success_W"][i], **h} for i, h in enumerate(meta["success"])
            ]
            self.n_train_ = meta.get("n_train", 0)
            self.meta_ = meta
        except (KeyError, IndexError, TypeError) as e:
            raise ScorerError(f"{path}: incomplete scorer files (missing {e})") from None
        shapes_ok = (
            self.domain_W_.shape == (len(self.domains_), self.domain_W_.shape[1])
            and arrays["success_W"].shape[0] == len(self.models_)
        )
        if not shapes_ok:
            raise ScorerError(f"{path}: weights do not match scorer.json")
        return self
