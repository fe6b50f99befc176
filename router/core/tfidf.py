"""Word TF-IDF features of a fitted vocabulary, computed as scikit-learn's TfidfVectorizer does.

The scorer's text head is trained with scikit-learn's `TfidfVectorizer(ngram_range=(1, 2),
sublinear_tf=True)`; at prediction time only its fixed vocabulary and idf weights are needed.
Recomputing the features here, with `re` and numpy, keeps scikit-learn and SciPy (seconds to
import) off the routing path and costs a fraction of the vectorizer's per-call validation.
`tests/test_tfidf.py` checks the features against scikit-learn's own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np


def tfidf_vectorizer(max_features: int, vocabulary: dict[str, int] | None = None):
    """The scikit-learn vectorizer that `TfidfFeatures` mirrors: word 1-2 grams, sublinear tf.

    Fitted (no `vocabulary`): terms seen in at least two texts, at most `max_features` of them.
    Given a fitted `vocabulary`, it is rebuilt as it was (set its `idf_` after)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        ngram_range=(1, 2),
        sublinear_tf=True,
        min_df=1 if vocabulary is not None else 2,
        max_features=None if vocabulary is not None else max_features,
        vocabulary=vocabulary,
        dtype=np.float32,
    )


# scikit-learn's default token pattern: words of two or more word characters.
TOKEN = re.compile(r"(?u)\b\w\w+\b")


class TfidfFeatures:
    """lowercase → tokens → 1..n-grams in the vocabulary → (1 + log tf) × idf → unit L2 norm."""

    def __init__(
        self, vocabulary: dict[str, int], idf: np.ndarray, ngram_range: tuple[int, int] = (1, 2)
    ) -> None:
        self.vocabulary = vocabulary
        self.idf = np.asarray(idf, dtype=np.float64)
        self.ngram_range = ngram_range

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(vocabulary indices, weights) of one text's non-zero features."""
        tokens = TOKEN.findall(text.lower())
        vocab, counts = self.vocabulary, {}
        lo, hi = self.ngram_range
        for n in range(lo, hi + 1):
            for i in range(len(tokens) - n + 1):
                j = vocab.get(tokens[i] if n == 1 else " ".join(tokens[i : i + n]))
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
        if not counts:
            return np.zeros(0, dtype=np.intp), np.zeros(0)
        idx = np.fromiter(counts, dtype=np.intp, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        w = (1.0 + np.log(tf)) * self.idf[idx]
        return idx, w / np.sqrt(w @ w)

    def dot(self, texts: Sequence[str], weights_t: np.ndarray) -> np.ndarray:
        """(n, k): each text's feature vector times `weights_t` (vocabulary × k)."""
        out = np.zeros((len(texts), weights_t.shape[1]))
        for r, text in enumerate(texts):
            idx, w = self.row(text)
            if len(idx):
                out[r] = w @ weights_t[idx]
        return out
