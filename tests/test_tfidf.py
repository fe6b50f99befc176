"""router/core/tfidf.py computes the text head's features exactly as scikit-learn does."""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from router.core.tfidf import TfidfFeatures, tfidf_vectorizer

TRAIN = [
    "Prove that there are infinitely many primes.",
    "Write a Python function that reverses a linked list.",
    "What is the capital of France? The capital of France is Paris.",
    "Explain TCP and UDP; TCP is reliable, UDP is not.",
    "Résumé: naïve café owners prove primes, primes, primes!",
    "Summarise the causes of the French Revolution.",
] * 2
QUERIES = [
    "prove PRIMES are infinite, primes primes",
    "Ünïcode wörds and café résumé",
    "a b c",  # no token of two characters: an empty row
    "",
    "linked list in Python: reverse the linked list",
    "the capital of France",
    "x" * 50 + " tcp udp tcp",
]


def test_features_match_scikit_learn():
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, dtype=np.float32)
    vec.fit(TRAIN)
    ours = TfidfFeatures({t: int(i) for t, i in vec.vocabulary_.items()}, vec.idf_)
    W = np.random.default_rng(0).normal(size=(len(vec.vocabulary_), 5))
    expected = np.asarray(vec.transform(QUERIES) @ W)
    np.testing.assert_allclose(ours.dot(QUERIES, W), expected, rtol=1e-5, atol=1e-6)
    idx, w = ours.row(QUERIES[0])
    dense = vec.transform(QUERIES[:1]).toarray()[0]
    np.testing.assert_allclose(w, dense[idx], rtol=1e-5)
    assert set(idx) == set(np.flatnonzero(dense))


def test_the_shipped_scorer_gives_the_same_probabilities_as_with_scikit_learn():
    from router.core.scorer import Scorer, default_scorer_path

    s = Scorer.load(default_scorer_path())
    texts = ["What is 17 * 23?", "Write a haiku about autumn", "Prove Fermat's little theorem"]
    X = np.random.default_rng(1).normal(size=(3, 384))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ours = s.predict_heads(X, texts)
    vec = tfidf_vectorizer(s.max_features, s.vocabulary_)
    vec.idf_ = s.idf_
    s._tfidf.dot = lambda t, W: np.asarray(vec.transform(list(t)) @ W)  # scikit-learn's
    np.testing.assert_allclose(s.predict_heads(X, texts), ours, rtol=1e-5, atol=1e-7)
