"""How unlike a verifier's training answers an answer is: a novelty score fitted with it.

A verifier learns from a few models' answers to a few tasks. An answer in another model's style,
or to another task, carries text it never learned to weigh (issue 19: on another model's answers
to 40+ sources the shipped verifier scored AUROC 0.566, below the prompt-only 0.693), so the
verdict must know when it is out of its depth. `AnswerNovelty` measures the distance from the
training data with five familiarity signals, each larger for a more familiar answer:

- `answer_in_subspace`: the share of the answer's character 3-4-gram TF-IDF vector that lies in
  the 64-dimension SVD subspace of the training answers (style and vocabulary);
- `answer_neighbours`: its mean cosine similarity to the 5 nearest training answers there;
- `prompt_in_subspace`, `prompt_neighbours`: the same for the prompt (another task);
- `checks_typical`: minus the RMS z-score of the answer checks against their training mean
  (length, arithmetic shown, logprobs present ...).

Character n-grams separate held-out tasks and models better than word TF-IDF does (measured on
the answered SmolLM2 and Mixtral rows: docs/cascades.md). Each signal becomes the share of
*reference* answers more familiar than this one; the shares are averaged, and the average is
read as a percentile of the reference's own averages. The reference is the training answers
seen out of fold (the verifier's `fit` supplies it), so on answers like the training ones the
novelty is spread evenly over [0, 1], and 0.97 means "less familiar than 97% of them".

Nothing is learned before `fit`; the state is plain arrays and JSON (`to_state`/`from_state`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SIGNALS = (
    "answer_in_subspace",
    "answer_neighbours",
    "prompt_in_subspace",
    "prompt_neighbours",
    "checks_typical",
)
QUANTILES = 201  # points kept of each reference distribution


def _char_vectorizer(vocabulary: dict[str, int]):
    """The scikit-learn vectorizer that reproduces a fitted view's features from text."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=NGRAMS,
        sublinear_tf=True,
        vocabulary=vocabulary,
        dtype=np.float32,
    )


NGRAMS = (3, 4)


@dataclass
class CharCounts:
    """Character n-gram counts of texts over every n-gram they contain, counted once, so that
    fitting a view on a subset (the verifier's inner folds) needs no second pass over text."""

    matrix: Any  # scipy CSR (n texts, n-grams)
    terms: np.ndarray  # the n-gram of each column

    @classmethod
    def of(cls, texts: Sequence[str]) -> CharCounts:
        from sklearn.feature_extraction.text import CountVectorizer

        cv = CountVectorizer(analyzer="char_wb", ngram_range=NGRAMS, dtype=np.float32)
        try:
            m = cv.fit_transform(texts).tocsr()
        except ValueError:  # no n-gram at all (empty texts)
            import scipy.sparse as sp

            return cls(sp.csr_matrix((len(texts), 0), dtype=np.float32), np.array([], dtype=str))
        return cls(m, cv.get_feature_names_out())

    def rows(self, idx: Sequence[int] | np.ndarray) -> CharCounts:
        return CharCounts(self.matrix[np.asarray(idx)], self.terms)


def _tfidf(counts, idf: np.ndarray):
    """What TfidfVectorizer(sublinear_tf=True) makes of raw counts: (1 + log tf) × idf, unit
    L2 rows."""
    from sklearn.preprocessing import normalize

    m = counts.astype(np.float64).tocsr(copy=True)
    m.data = 1.0 + np.log(m.data)
    return normalize(m.multiply(idf[None, :]).tocsr())


class _TextView:
    """One text field (answers or prompts): char TF-IDF → SVD subspace → training neighbours."""

    def __init__(self, n_components: int, max_features: int, k: int, random_state: int):
        self.n_components, self.max_features = n_components, max_features
        self.k, self.random_state = k, random_state

    def fit(self, counts: CharCounts) -> _TextView:
        """Keep the `max_features` most frequent n-grams seen in two or more texts (as
        TfidfVectorizer(min_df=2, max_features) does), weigh them, and find the subspace."""
        from sklearn.decomposition import TruncatedSVD

        C = counts.matrix
        n = C.shape[0]
        df = np.asarray((C > 0).sum(axis=0)).ravel()
        freq = np.asarray(C.sum(axis=0)).ravel()
        ok = np.flatnonzero(df >= 2)
        cols = ok[np.argsort(-freq[ok], kind="stable")[: self.max_features]]
        cols = np.sort(cols)
        self.columns_ = cols  # into `counts.terms` (used while fitting only)
        self.terms = counts.terms[cols]
        self.idf = np.log((1 + n) / (1 + df[cols])) + 1.0
        A = _tfidf(C[:, cols], self.idf)
        rank = max(1, min(self.n_components, A.shape[0] - 1, A.shape[1] - 1))
        svd = TruncatedSVD(rank, n_iter=3, random_state=self.random_state).fit(A)
        self.components = svd.components_.astype(np.float32)
        self.train = self._unit(self._project(A)).astype(np.float16)
        self._vec = None
        return self

    def _project(self, A) -> np.ndarray:
        return np.asarray(A @ self.components.T, dtype=np.float64)

    @staticmethod
    def _unit(Z: np.ndarray) -> np.ndarray:
        return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)

    def signals_from_counts(self, counts: CharCounts) -> tuple[np.ndarray, np.ndarray]:
        """`signals` of texts counted over the same columns as the fitting counts."""
        has_text = np.asarray(counts.matrix.sum(axis=1)).ravel() > 0
        return self._signals(_tfidf(counts.matrix[:, self.columns_], self.idf), has_text)

    def signals(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(share of the vector in the training subspace, mean similarity to the k nearest)."""
        if self._vec is None:
            self._vec = _char_vectorizer({t: i for i, t in enumerate(self.terms)})
            self._vec.idf_ = self.idf
        has_text = np.array([bool(t.strip()) for t in texts], dtype=bool)
        return self._signals(self._vec.transform(texts), has_text)

    def _signals(self, A, has_text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        norm2 = np.asarray(A.multiply(A).sum(axis=1)).ravel()
        Z = self._project(A)
        inside = np.sum(Z**2, axis=1) / np.maximum(norm2, 1e-12)
        sims = self._unit(Z) @ self.train.astype(np.float32).T
        k = min(self.k, sims.shape[1])
        near = -np.sort(-sims, axis=1)[:, :k].mean(axis=1)
        # No character n-gram in the vocabulary. An empty answer has nothing unfamiliar in it;
        # a text made wholly of n-grams the training texts never had (another script, another
        # alphabet soup) is as unfamiliar as a text can be: nothing in the subspace, no
        # similarity to any training text.
        none = norm2 <= 0
        inside = np.where(none, np.where(has_text, 0.0, 1.0), inside)
        near = np.where(none, np.where(has_text, -1.0, 1.0), near)
        return inside, near

    def state(self, prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {f"{prefix}_vocabulary": [str(t) for t in self.terms]}
        arrays = {
            f"{prefix}_idf": self.idf.astype(np.float64),
            f"{prefix}_components": self.components,
            f"{prefix}_train": self.train,
        }
        return meta, arrays

    @classmethod
    def from_state(cls, prefix: str, meta: dict, arrays: dict, params: dict) -> _TextView:
        self = cls(params["n_components"], params["max_features"], params["k"], 0)
        self.terms = np.array(meta[f"{prefix}_vocabulary"], dtype=str)
        self.idf = arrays[f"{prefix}_idf"].astype(np.float64)
        self.components = arrays[f"{prefix}_components"].astype(np.float32)
        self.train = arrays[f"{prefix}_train"]
        self._vec = None
        if self.components.shape[1] != len(self.terms) or len(self.idf) != len(self.terms):
            raise ValueError(f"{prefix} arrays do not match its vocabulary")
        if self.train.shape[1] != len(self.components):
            raise ValueError(f"{prefix} training vectors do not match its subspace")
        return self


class AnswerNovelty:
    """Familiarity signals of answers against the training answers, and their novelty."""

    def __init__(
        self,
        n_components: int = 64,
        max_features: int = 4096,
        k: int = 5,
        random_state: int = 0,
    ) -> None:
        self.n_components = n_components
        self.max_features = max_features
        self.k = k
        self.random_state = random_state

    def fit(
        self,
        cases: Sequence[Any],
        dense: np.ndarray,
        counts: tuple[CharCounts, CharCounts] | None = None,
    ) -> AnswerNovelty:
        """Learn what the training answers (`cases`, their answer-check matrix `dense`) look
        like; `counts`: their answers' and prompts' `CharCounts`, when already counted.
        `set_reference` must follow before `novelty` can be read."""
        if counts is None:
            counts = self.count(cases)
        args = (self.n_components, self.max_features, self.k, self.random_state)
        self.answers_ = _TextView(*args).fit(counts[0])
        self.prompts_ = _TextView(*args).fit(counts[1])
        self.dense_mean_ = dense.mean(axis=0)
        sd = dense.std(axis=0)
        self.dense_scale_ = np.where(sd > 1e-9, sd, 1.0)
        return self

    @staticmethod
    def count(cases: Sequence[Any]) -> tuple[CharCounts, CharCounts]:
        """The answers' and the prompts' character n-gram counts."""
        return CharCounts.of([c.answer for c in cases]), CharCounts.of([c.prompt for c in cases])

    def familiarity(
        self,
        cases: Sequence[Any],
        dense: np.ndarray,
        counts: tuple[CharCounts, CharCounts] | None = None,
    ) -> np.ndarray:
        """(n, len(SIGNALS)): each signal, larger for an answer more like the training ones.
        `counts`: the cases' counts over the columns this novelty was fitted on (inner folds)."""
        if not hasattr(self, "answers_"):
            raise ValueError("this AnswerNovelty is not fitted yet")
        if not len(cases):
            return np.zeros((0, len(SIGNALS)))
        if counts is not None:
            a_in, a_near = self.answers_.signals_from_counts(counts[0])
            p_in, p_near = self.prompts_.signals_from_counts(counts[1])
        else:
            a_in, a_near = self.answers_.signals([c.answer for c in cases])
            p_in, p_near = self.prompts_.signals([c.prompt for c in cases])
        z = (dense - self.dense_mean_) / self.dense_scale_
        typical = -np.sqrt(np.mean(np.minimum(z**2, 100.0), axis=1))
        return np.column_stack([a_in, a_near, p_in, p_near, typical])

    def set_reference(self, familiarity: np.ndarray) -> AnswerNovelty:
        """The familiarity of training answers seen out of fold: what "usual" looks like."""
        if len(familiarity) < 2:
            raise ValueError("the novelty reference needs at least 2 answers")
        qs = np.linspace(0, 1, QUANTILES)
        self.reference_ = np.quantile(familiarity, qs, axis=0).T  # (signals, QUANTILES)
        self.reference_mean_ = np.quantile(self._unfamiliar(familiarity), qs)
        return self

    def _unfamiliar(self, familiarity: np.ndarray) -> np.ndarray:
        """Per answer: the mean over signals of the share of reference answers more familiar."""
        shares = [
            1.0 - np.interp(familiarity[:, j], ref, np.linspace(0, 1, len(ref)))
            for j, ref in enumerate(self.reference_)
        ]
        return np.mean(shares, axis=0)

    def novelty_from(self, familiarity: np.ndarray) -> np.ndarray:
        """Novelty in [0, 1]: the share of reference answers that are more familiar."""
        if not hasattr(self, "reference_"):
            raise ValueError("this AnswerNovelty has no reference yet; call set_reference()")
        u = self._unfamiliar(familiarity)
        ref = self.reference_mean_
        # The reference's quantiles may repeat (ties): read the middle of a flat stretch.
        lo = np.searchsorted(ref, u, side="left")
        hi = np.searchsorted(ref, u, side="right")
        return np.clip((lo + hi) / 2 / len(ref), 0.0, 1.0)

    def novelty(self, cases: Sequence[Any], dense: np.ndarray) -> np.ndarray:
        return self.novelty_from(self.familiarity(cases, dense))

    # ---- persistence: JSON-able metadata and plain arrays ----------------------------------

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta: dict[str, Any] = {
            "params": {
                "n_components": self.n_components,
                "max_features": self.max_features,
                "k": self.k,
            },
            "signals": list(SIGNALS),
        }
        arrays = {
            "dense_mean": self.dense_mean_,
            "dense_scale": self.dense_scale_,
            "reference": self.reference_,
            "reference_mean": self.reference_mean_,
        }
        for prefix, view in (("answer", self.answers_), ("prompt", self.prompts_)):
            m, a = view.state(prefix)
            meta.update(m)
            arrays.update(a)
        return meta, {f"novelty_{k}": v for k, v in arrays.items()}

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> AnswerNovelty:
        """Rebuild from `to_state`'s output; raises KeyError/ValueError when incomplete."""
        if meta.get("signals") != list(SIGNALS):
            raise ValueError(f"novelty signals {meta.get('signals')}, expected {list(SIGNALS)}")
        params = meta["params"]
        self = cls(params["n_components"], params["max_features"], params["k"])
        a = {k.removeprefix("novelty_"): v for k, v in arrays.items() if k.startswith("novelty_")}
        self.answers_ = _TextView.from_state("answer", meta, a, params)
        self.prompts_ = _TextView.from_state("prompt", meta, a, params)
        self.dense_mean_ = a["dense_mean"]
        self.dense_scale_ = a["dense_scale"]
        self.reference_ = a["reference"]
        self.reference_mean_ = a["reference_mean"]
        return self
