"""Answer verifier: P(a model's answer is right) from the answer, weighed against the prompt.

A prompt-only scorer judges a request by "prompts like this one"; the answer says more (issue 11:
on RouteLLM GSM8K, AUROC 0.545 from the prompt alone, 0.715 with the answer), but only about
answers like the ones the verifier learned from (issue 19: 0.566 on another model's answers to
40+ sources, below the prompt-only 0.693). So the verdict has two sides:

- the *answer side*: a logistic regression over word TF-IDF (1-2 grams) of the prompt and of
  the answer, the answer checks (`router/core/answer_checks.py`) and token logprobs;
- the *prompt side*: the router's own estimate that the model answers this prompt well (the
  scorer's success head for the model, or 1 − difficulty), given by the caller; without one,
  the training base rate.

They are mixed on the log-odds scale, logit P = (1 − w)·logit(prompt) + w·(a·answer logit + b),
where the answer weight w = σ(c0 − c1·novelty) falls as the answer looks less like the training
answers (`router/core/novelty.py`). a, b, c0 and c1 (c1 ≥ 0) are fitted in `fit` on answers
judged out of fold twice: within the training distribution (folds by prompt) and outside it
(folds by `groups`, e.g. task and model), so the weight learns how far the answer side carries.

It follows scikit-learn's estimator shape (`fit`, `predict_proba`, nothing learned before `fit`)
on `AnswerCase` inputs. A saved verifier is a directory: `verifier.json` (parameters,
vocabularies, figures) and `weights.npz` (arrays, loaded with `allow_pickle=False`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from router.core import artifact_dir
from router.core.answer_checks import (  # noqa: F401 - re-exported: the verifier's vocabulary
    CHECKS,
    FEATURE_NAMES,
    LOGPROB_FEATURES,
    AnswerCase,
    answer_length,
    arithmetic_claims,
    arithmetic_errors,
    arithmetic_shown,
    dense_features,
    empty_answer,
    equation_holds,
    final_answer_inconsistent,
    final_answer_missing,
    hedges,
    logprob_features,
    refusal,
    safe_eval,
    self_corrections,
    token_logprobs,
    truncated,
)
from router.core.data import Example, group_folds, group_key, normalised_text
from router.core.novelty import SIGNALS, AnswerNovelty
from router.core.tfidf import tfidf_vectorizer

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)  # 1: answer side only (no novelty, no weighing, no training hashes)
OUT_OF_DISTRIBUTION = 0.95  # novelty above which an answer is reported out of distribution
EPS = 1e-4


class VerifierError(ValueError):
    """A verifier cannot be trained or loaded; the message says why."""


# ---- training rows -----------------------------------------------------------------------------


class AnswerRows(NamedTuple):
    """What `verifier_cases` reads from routing rows, one entry per answer."""

    cases: list[AnswerCase]
    y: np.ndarray  # the answer's score in [0, 1]
    groups: np.ndarray  # the prompt's split group (`data.group_key`)
    models: list[str]  # who answered
    sources: list[str]  # the row's source


def verifier_cases(
    examples: Sequence[Example], models: str | Sequence[str] = "cheap"
) -> AnswerRows:
    """Rows with a model's answer and score → one case per answer.

    `models`: "cheap" (each row's cheap models: what a cascade verifies), "all", or names.
    Answers come from `answers` {model: text}; logprobs from `logprobs` {model: [...]} and a
    finish reason from `usage` {model: {finish_reason}} where the row has them. Rows narrowed to
    two tiers (`router.evaluation.two_tier`) name their answering model in `cheap_model`."""
    cases, ys, groups, who, sources = [], [], [], [], []
    for ex in examples:
        answers = ex.extra.get("answers") or {}
        if not isinstance(answers, dict):
            continue
        if models == "cheap":
            names = ex.cheap_models
        elif models == "all":
            names = list(ex.scores)
        else:
            names = list(models)
        logprobs = ex.extra.get("logprobs") or {}
        usage = ex.extra.get("usage") or {}
        for m in names:
            text = answers.get(m)
            if m not in ex.scores or not isinstance(text, str):
                continue
            u = usage.get(m) if isinstance(usage, dict) else None
            cases.append(
                AnswerCase(
                    prompt=ex.text(),
                    answer=text,
                    logprobs=logprobs.get(m) if isinstance(logprobs, dict) else None,
                    finish_reason=u.get("finish_reason") if isinstance(u, dict) else None,
                )
            )
            ys.append(ex.scores[m])
            groups.append(group_key(ex))
            renamed = m in ex.cheap_models and isinstance(ex.extra.get("cheap_model"), str)
            who.append(ex.extra["cheap_model"] if renamed else m)
            sources.append(ex.source)
    return AnswerRows(cases, np.array(ys, dtype=np.float64), np.array(groups), who, sources)


def prompt_hash(text: str) -> int:
    """64-bit hash of a prompt's normalised text: what a verifier records of its training
    prompts, to recognise them later without storing any text."""
    return int(hashlib.sha1(normalised_text(text).encode("utf-8")).hexdigest()[:16], 16)


# ---- the combination of the two sides ---------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _minimise_log_loss(
    z: Callable[[np.ndarray], np.ndarray],
    y: np.ndarray,
    start: list[float],
    bounds: list[tuple[float, float]],
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Parameters t minimising the (weighted) log loss of σ(z(t)) against graded `y`
    (L-BFGS-B, a few parameters; a faint pull towards 0 keeps them finite on separable data)."""
    from scipy.optimize import minimize

    sw = np.ones(len(y)) if weights is None else weights

    def loss(t: np.ndarray) -> float:
        p = np.clip(_sigmoid(z(t)), 1e-9, 1 - 1e-9)
        return float(-np.mean(sw * (y * np.log(p) + (1 - y) * np.log(1 - p))) + 1e-4 * t @ t)

    return minimize(loss, np.array(start, float), method="L-BFGS-B", bounds=bounds).x


# No held-out groups to learn the gate from: P(out of distribution | novelty) = σ(e0 + e1·ν)
# with the values fitted on the shipped verifier's answers (docs/cascades.md): answer weight
# 0.62 at the median novelty, 0.29 at 0.97.
DEFAULT_GATE = (-2.0, 3.0)


@dataclass(frozen=True)
class Weighing:
    """How the two sides make the verdict (see the module doc):

    logit P = (1 − w)·zp + w·(d0·za + d1·zp + d2),   w = 1 − σ(e0 + e1·novelty)

    `d` is the reading within the training distribution (fitted on answers judged out of fold,
    folds by prompt); w is the probability that the answer comes from that distribution rather
    than from a held-out task or model, given its novelty (both equally likely beforehand)."""

    d0: float = 1.0
    d1: float = 0.0
    d2: float = 0.0
    e0: float = -40.0  # the default: always within the distribution (format 1 verifiers)
    e1: float = 0.0

    def in_distribution(self, novelty: np.ndarray) -> np.ndarray:
        return 1.0 - _sigmoid(self.e0 + self.e1 * novelty)

    def verdict(self, za: np.ndarray, zp: np.ndarray, novelty: np.ndarray):
        """(log-odds of the verdict, the answer side's share of the weight)."""
        w = self.in_distribution(novelty)
        answer, prompt = w * self.d0, (1 - w) + w * self.d1
        z = answer * za + prompt * zp + w * self.d2
        return z, answer / np.maximum(answer + prompt, 1e-12)


def fit_weighing(
    za: np.ndarray,
    zp: np.ndarray,
    y: np.ndarray,
    novelty_within: np.ndarray,
    novelty_outside: np.ndarray | None,
) -> Weighing:
    """`d` from the answers judged within the distribution (d0, d1 ≥ 0: neither side counts
    against itself); the gate from how novel answers look within it and outside it (e1 ≥ 0:
    a less familiar answer is never trusted more). Without answers from outside, the gate is
    `DEFAULT_GATE`."""
    if novelty_outside is None or not len(novelty_outside):
        e = DEFAULT_GATE
    else:
        nov = np.r_[novelty_within, novelty_outside]
        out = np.r_[np.zeros(len(novelty_within)), np.ones(len(novelty_outside))]
        # Each side weighs half: equal prior odds of coming from either.
        sw = np.where(out == 1, 0.5 / len(novelty_outside), 0.5 / len(novelty_within)) * len(nov)
        e = _minimise_log_loss(
            lambda t: t[0] + t[1] * nov, out, [0.0, 1.0], [(-20, 20), (0, 50)], sw
        )
    # The reading within the distribution, fitted as the verdict will use it: through the
    # gate, so that the weight an ordinary answer loses to its novelty is learned back.
    gate = Weighing(e0=float(e[0]), e1=float(e[1]))
    d = _minimise_log_loss(
        lambda t: dataclasses.replace(gate, d0=t[0], d1=t[1], d2=t[2]).verdict(
            za, zp, novelty_within
        )[0],
        y,
        [1.0, 0.0, 0.0],
        [(0, 5), (0, 5), (-5, 5)],
    )
    return Weighing(*(float(v) for v in d), *(float(v) for v in e))


@dataclass
class Verdicts:
    """The verifier's reading of n answers (arrays, aligned with the cases)."""

    probability: np.ndarray  # the verdict: P(right), both sides weighed
    answer_probability: np.ndarray  # the answer side alone
    prompt_probability: np.ndarray  # the prompt side as used (given, or the base rate)
    answer_weight: np.ndarray  # the answer side's share of the verdict's weight, in [0, 1]
    novelty: np.ndarray  # NaN for a verifier that measures none (format 1)

    @property
    def out_of_distribution(self) -> np.ndarray:
        return np.nan_to_num(self.novelty, nan=0.0) > OUT_OF_DISTRIBUTION

    def one(self, i: int = 0) -> dict[str, Any]:
        """One answer's reading, rounded for a receipt."""
        nov = float(self.novelty[i])
        return {
            "probability": round(float(self.probability[i]), 4),
            "answer_probability": round(float(self.answer_probability[i]), 4),
            "prompt_probability": round(float(self.prompt_probability[i]), 4),
            "answer_weight": round(float(self.answer_weight[i]), 4),
            "prompt_weight": round(1.0 - float(self.answer_weight[i]), 4),
            # Unknown (None) for a verifier that measures no novelty (format 1).
            "novelty": None if np.isnan(nov) else round(nov, 4),
            "out_of_distribution": None if np.isnan(nov) else bool(self.out_of_distribution[i]),
        }


# ---- the estimator -----------------------------------------------------------------------------


class AnswerVerifier:
    """P(answer right | prompt, answer, the router's prompt estimate): see the module doc."""

    def __init__(
        self,
        C: float = 0.5,
        max_features: int = 20000,
        use_text: bool = True,
        inner_folds: int = 3,
        random_state: int = 0,
    ) -> None:
        self.C = C
        self.max_features = max_features
        self.use_text = use_text
        self.inner_folds = inner_folds
        self.random_state = random_state

    # ---- the answer side -------------------------------------------------------------------

    def _design(self, cases: Sequence[AnswerCase], dense: np.ndarray):
        import scipy.sparse as sp

        blocks = [sp.csr_matrix((dense - self.mean_) / self.scale_)]
        if self.use_text:
            blocks.append(self._prompt_vec.transform([c.prompt for c in cases]))
            blocks.append(self._answer_vec.transform([c.answer for c in cases]))
        return sp.hstack(blocks).tocsr()

    def _fit_lr(self, X, y: np.ndarray, start: bool = False) -> tuple[np.ndarray, float]:
        """Logistic regression on graded scores: each row twice, weighted y and 1 − y.
        `start`: begin from the fitted coefficients (an inner fold's solution is near them)."""
        import scipy.sparse as sp
        from sklearn.linear_model import LogisticRegression

        n = len(y)
        X2, y2, w2 = sp.vstack([X, X]).tocsr(), np.r_[np.ones(n), np.zeros(n)], np.r_[y, 1 - y]
        keep = w2 > 0
        lr = LogisticRegression(C=self.C, max_iter=5000, warm_start=start)
        if start:
            lr.coef_, lr.intercept_ = self.coef_[None, :].copy(), np.array([self.intercept_])
        lr.fit(X2[keep], y2[keep], sample_weight=w2[keep])
        return lr.coef_[0].astype(np.float64), float(lr.intercept_[0])

    def fit(
        self,
        cases: Sequence[AnswerCase],
        y: Sequence[float],
        prompt_p: Sequence[float] | None = None,
        groups: Sequence[str] | None = None,
    ) -> AnswerVerifier:
        """Learn from answers and their scores in [0, 1] (graded scores weight both classes).

        `prompt_p`: the router's estimate for each training answer, made without its label (out
        of fold); without it the prompt side is the training base rate. `groups`: labels of
        the training answers' distributions (task, model); folds that hold whole groups out
        teach the weighing how the answer side fares on what it has not seen."""
        y = np.asarray(y, dtype=np.float64)
        if len(cases) != len(y):
            raise VerifierError(f"{len(cases)} answers for {len(y)} scores")
        if len(cases) < 10:
            raise VerifierError("need at least 10 answers with scores to train a verifier")
        if y.min() == y.max():
            raise VerifierError("every answer has the same score: nothing to learn")
        if prompt_p is not None and len(prompt_p) != len(y):
            raise VerifierError(f"{len(prompt_p)} prompt estimates for {len(y)} answers")
        if groups is not None and len(groups) != len(y):
            raise VerifierError(f"{len(groups)} group labels for {len(y)} answers")
        # The matrices are small: BLAS threads only contend (one fit took 72 s with OpenBLAS'
        # threads on the shared 2-core machine, 8 s with one).
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(list(cases), y, prompt_p, groups)

    def _fit(self, cases, y, prompt_p, groups) -> AnswerVerifier:
        self.base_rate_ = float(y.mean())
        z_prompt = _logit(self.base_rate_ if prompt_p is None else np.asarray(prompt_p, float))
        z_prompt = np.broadcast_to(z_prompt, y.shape).astype(np.float64)

        D = dense_features(cases)
        self.mean_ = D.mean(axis=0)
        self.scale_ = np.where(D.std(axis=0) > 1e-9, D.std(axis=0), 1.0)
        if self.use_text:
            self._prompt_vec = tfidf_vectorizer(self.max_features).fit([c.prompt for c in cases])
            self._answer_vec = tfidf_vectorizer(self.max_features).fit([c.answer for c in cases])
            self.prompt_vocabulary_ = dict(self._prompt_vec.vocabulary_)
            self.answer_vocabulary_ = dict(self._answer_vec.vocabulary_)
        X = self._design(cases, D)
        self.coef_, self.intercept_ = self._fit_lr(X, y)
        counts = AnswerNovelty.count(cases)
        self.novelty_ = self._novelty(len(cases)).fit(cases, D, counts)

        # Within the distribution: answers judged out of fold (folds by prompt) teach the
        # reading `d` and what usual familiarity looks like. Outside it: folds that hold whole
        # groups out (tasks, models) show how novel an unseen distribution looks.
        prompts = np.array([prompt_hash(c.prompt) for c in cases], dtype=np.uint64)
        within = group_folds(prompts.astype(str), self.inner_folds, self.random_state)
        z_in, fam_in = self._out_of_fold(cases, D, X, y, counts, within)
        ok = ~np.isnan(z_in)
        if ok.sum() < 2:
            raise VerifierError("too few answers to judge out of fold: give more answers")
        self.novelty_.set_reference(fam_in[ok])
        labels = np.asarray(groups if groups is not None else [], dtype=str)
        self.n_groups_ = len(np.unique(labels))
        novelty_outside = None
        if self.n_groups_ >= 2:
            outside = group_folds(labels, min(self.inner_folds, self.n_groups_), self.random_state)
            _, fam_out = self._out_of_fold(cases, D, X, y, counts, outside, answers=False)
            seen = ~np.isnan(fam_out).any(axis=1)
            novelty_outside = self.novelty_.novelty_from(fam_out[seen])
        self.weighing_ = fit_weighing(
            z_in[ok], z_prompt[ok], y[ok], self.novelty_.novelty_from(fam_in[ok]), novelty_outside
        )
        self.train_hashes_ = np.unique(prompts)
        self.n_train_ = len(y)
        return self

    def _out_of_fold(
        self, cases, D, X, y, counts, folds, answers: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Answer logits (NaN where a fold could not be trained, or `answers` is False) and
        familiarity signals of each answer, from a model and a novelty fitted without its
        fold. (The word vocabularies and the checks' scaling come from every answer:
        unsupervised, and small beside what the fold's labels would leak.)"""
        z = np.full(len(y), np.nan)
        fam = np.full((len(y), len(SIGNALS)), np.nan)
        for f in np.unique(folds):
            tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            if len(tr) < 5 or (answers and y[tr].min() == y[tr].max()):
                continue
            if answers:
                coef, icpt = self._fit_lr(X[tr], y[tr], start=True)
                z[te] = np.asarray(X[te] @ coef).ravel() + icpt
            nov = self._novelty(len(y)).fit(
                [cases[i] for i in tr], D[tr], (counts[0].rows(tr), counts[1].rows(tr))
            )
            fam[te] = nov.familiarity(
                [cases[i] for i in te], D[te], (counts[0].rows(te), counts[1].rows(te))
            )
        return z, fam

    def _novelty(self, n: int) -> AnswerNovelty:
        """One subspace size for the final novelty and its out-of-fold reference (fitted on
        fewer answers): similarities in spaces of different sizes are not comparable, and a
        subspace must stay well below the number of answers it is fitted on."""
        return AnswerNovelty(n_components=max(2, min(64, n // 6)), random_state=self.random_state)

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise VerifierError("this AnswerVerifier is not fitted yet; call fit() or load()")

    # ---- reading answers -------------------------------------------------------------------

    def decision_function(self, cases: Sequence[AnswerCase]) -> np.ndarray:
        """The answer side's log-odds."""
        self._check_fitted()
        if not len(cases):
            return np.zeros(0)
        return self._answer_logit(cases, dense_features(cases))

    def _answer_logit(self, cases, D) -> np.ndarray:
        return np.asarray(self._design(cases, D) @ self.coef_).ravel() + self.intercept_

    def verdicts(
        self, cases: Sequence[AnswerCase], prompt_p: Sequence[float | None] | None = None
    ) -> Verdicts:
        """Both sides and their weighing for each answer. `prompt_p`: the router's estimate
        per answer (None, or a None entry: the training base rate stands in)."""
        self._check_fitted()
        n = len(cases)
        if prompt_p is None:
            prompt_p = [None] * n
        if len(prompt_p) != n:
            raise VerifierError(f"{len(prompt_p)} prompt estimates for {n} answers")
        pp = np.array([self.base_rate_ if p is None else float(p) for p in prompt_p], float)
        D = dense_features(cases)
        z_answer = self._answer_logit(cases, D) if n else np.zeros(0)
        if self.novelty_ is not None and n:
            novelty = self.novelty_.novelty(cases, D)
        else:
            novelty = np.full(n, np.nan)
        z, w = self.weighing_.verdict(z_answer, _logit(pp), np.nan_to_num(novelty, nan=0.0))
        return Verdicts(_sigmoid(z), _sigmoid(z_answer), np.clip(pp, 0, 1), w, novelty)

    def predict_proba(
        self, cases: Sequence[AnswerCase], prompt_p: Sequence[float | None] | None = None
    ) -> np.ndarray:
        """(n, 2): P(wrong), P(right), as scikit-learn classifiers do; the verdict."""
        p = self.verdicts(cases, prompt_p).probability
        return np.column_stack([1 - p, p])

    def answer_proba(self, cases: Sequence[AnswerCase]) -> np.ndarray:
        """P(right) from the answer side alone (no prompt estimate, no weighing)."""
        return _sigmoid(self.decision_function(cases))

    def probability(self, case: AnswerCase, prompt_p: float | None = None) -> float:
        """P(right) for one answer."""
        return float(self.verdicts([case], [prompt_p]).probability[0])

    def explain(self, case: AnswerCase, prompt_p: float | None = None) -> dict[str, Any]:
        """One answer's verdict, each side and its weight, its novelty, and every answer
        check's value (for receipts and debugging)."""
        out = self.verdicts([case], [prompt_p]).one()
        out["checks"] = {
            k: round(float(v), 4)
            for k, v in zip(FEATURE_NAMES, dense_features([case])[0], strict=True)
        }
        return out

    def trained_on(self, examples: Sequence[Example]) -> np.ndarray | None:
        """Per row, whether its prompt was among this verifier's training prompts; None for
        a verifier that recorded none (format 1)."""
        hashes = getattr(self, "train_hashes_", None)
        if hashes is None:
            return None
        mine = np.array([prompt_hash(ex.text()) for ex in examples], dtype=np.uint64)
        return np.isin(mine, hashes)

    # ---- persistence -------------------------------------------------------------------------

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write `verifier.json` and `weights.npz` into directory `path`."""
        self._check_fitted()
        if self.novelty_ is None:
            raise VerifierError("a format 1 verifier cannot be saved again: retrain it")
        arrays = {
            "coef": self.coef_,
            "mean": self.mean_,
            "scale": self.scale_,
            "train_hashes": self.train_hashes_.astype(np.uint64),
        }
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "kind": "answer-verifier",
            "params": {
                "C": self.C,
                "max_features": self.max_features,
                "use_text": self.use_text,
                "inner_folds": self.inner_folds,
            },
            "features": list(FEATURE_NAMES),
            "intercept": self.intercept_,
            "n_train": self.n_train_,
            "base_rate": self.base_rate_,
            "weighing": dataclasses.asdict(self.weighing_),
            "training_groups": self.n_groups_,
            **(extra or {}),
        }
        nov_meta, nov_arrays = self.novelty_.to_state()
        meta["novelty"] = nov_meta
        arrays.update(nov_arrays)
        if self.use_text:
            arrays["prompt_idf"] = self._prompt_vec.idf_.astype(np.float64)
            arrays["answer_idf"] = self._answer_vec.idf_.astype(np.float64)
            meta["prompt_vocabulary"] = sorted(
                self.prompt_vocabulary_, key=self.prompt_vocabulary_.get
            )
            meta["answer_vocabulary"] = sorted(
                self.answer_vocabulary_, key=self.answer_vocabulary_.get
            )
        return artifact_dir.write(path, "verifier.json", meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> AnswerVerifier:
        """Load a saved verifier (no code runs: JSON and plain arrays)."""
        meta, arrays = artifact_dir.read(path, "verifier.json", "verifier", VerifierError)
        version = meta.get("format_version") if isinstance(meta, dict) else None
        if version not in READABLE_FORMATS:
            raise VerifierError(
                f"{path}/verifier.json: format {version!r}, this version reads "
                f"{list(READABLE_FORMATS)}; retrain with `router train-verifier`"
            )
        if meta.get("features") != list(FEATURE_NAMES):
            raise VerifierError(
                f"{path}/verifier.json: trained on features {meta.get('features')}, this version "
                f"computes {list(FEATURE_NAMES)}; retrain with `router train-verifier`"
            )
        try:
            params = {k: v for k, v in meta["params"].items() if k != "inner_folds"}
            self = cls(**params, inner_folds=meta["params"].get("inner_folds", 3))
            self.coef_ = arrays["coef"].astype(np.float64)
            self.mean_ = arrays["mean"].astype(np.float64)
            self.scale_ = arrays["scale"].astype(np.float64)
            self.intercept_ = float(meta["intercept"])
            self.n_train_ = int(meta.get("n_train", 0))
            self.base_rate_ = float(meta.get("base_rate", 0.5))
            width = len(FEATURE_NAMES)
            if self.use_text:
                pv = {t: i for i, t in enumerate(meta["prompt_vocabulary"])}
                av = {t: i for i, t in enumerate(meta["answer_vocabulary"])}
                self._prompt_vec = tfidf_vectorizer(self.max_features, pv)
                self._prompt_vec.idf_ = arrays["prompt_idf"]
                self._answer_vec = tfidf_vectorizer(self.max_features, av)
                self._answer_vec.idf_ = arrays["answer_idf"]
                self.prompt_vocabulary_, self.answer_vocabulary_ = pv, av
                width += len(pv) + len(av)
            if version == 1:
                self.novelty_, self.weighing_, self.train_hashes_ = None, Weighing(), None
                self.n_groups_ = 0
            else:
                self.novelty_ = AnswerNovelty.from_state(meta["novelty"], arrays)
                self.weighing_ = Weighing(**{k: float(v) for k, v in meta["weighing"].items()})
                self.train_hashes_ = arrays["train_hashes"].astype(np.uint64)
                self.n_groups_ = int(meta.get("training_groups", 0))
            self.meta_ = {
                k: v
                for k, v in meta.items()
                if not k.endswith("_vocabulary") and k not in ("novelty",)
            }
        except (KeyError, TypeError, ValueError) as e:
            raise VerifierError(f"{path}: incomplete verifier files (missing or bad {e})") from None
        if len(self.coef_) != width or len(self.mean_) != len(FEATURE_NAMES):
            raise VerifierError(f"{path}: weights do not match verifier.json")
        return self


def default_verifier_path() -> Path:
    """The verifier shipped inside the package (`make verifier` rebuilds it)."""
    return Path(str(resources.files("router").joinpath("artifacts/verifier")))


def load_verifier(spec: str, base_dir: Path | None = None) -> AnswerVerifier:
    """ "default" (the shipped verifier) or a directory, relative to `base_dir`."""
    if spec == "default":
        return AnswerVerifier.load(default_verifier_path())
    p = Path(spec)
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return AnswerVerifier.load(p)


# ---- measuring ---------------------------------------------------------------------------------


def auroc(y: np.ndarray, p: np.ndarray) -> float | None:
    """Area under the ROC curve of P(right) against right (score ≥ 0.5); None with one class."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(y) >= 0.5
    if labels.all() or not labels.any():
        return None
    return float(roc_auc_score(labels, p))


def cross_val_proba(
    cases: Sequence[AnswerCase],
    y: np.ndarray,
    folds: np.ndarray,
    make: Callable[[], AnswerVerifier] = AnswerVerifier,
    prompt_p: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-fold verdicts for every case, one fold held out at a time."""
    p = np.full(len(y), np.nan)
    for f in np.unique(folds):
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        v = make().fit(
            [cases[i] for i in tr],
            y[tr],
            None if prompt_p is None else prompt_p[tr],
            None if groups is None else groups[tr],
        )
        p[te] = v.predict_proba(
            [cases[i] for i in te], None if prompt_p is None else list(prompt_p[te])
        )[:, 1]
    return p
