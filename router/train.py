"""Train a scorer on routing datasets: embed every prompt (batched, with progress), fit, save."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .data import Example
from .scorer import Scorer

Progress = Callable[[int], None]


def cache_dir() -> Path:
    """Where dataset embeddings are kept between runs (`ROUTER_CACHE_DIR` to move it)."""
    default = Path.home() / ".cache" / "smallfirst-router" / "embeddings"
    return Path(os.environ.get("ROUTER_CACHE_DIR", default))


def embed_examples(
    encoder, examples: Sequence[Example], progress: Progress | None = None, use_cache: bool = True
) -> np.ndarray:
    """One embedding per example, from its routing text; cached on disk per (encoder, texts)."""
    texts = [ex.text() for ex in examples]
    digest = hashlib.sha1(encoder.identity.encode())
    for t in texts:
        digest.update(hashlib.sha1(t.encode("utf-8")).digest())
    path = cache_dir() / f"{digest.hexdigest()}.npy"
    if use_cache and path.is_file():
        X = np.load(path, allow_pickle=False)
        if X.shape == (len(texts), encoder.dim):
            if progress:
                progress(len(texts))
            return X
    X = encoder.encode(texts, batch_size=64, progress=progress)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, X)
        tmp.replace(path)
    return X


def train_scorer(
    examples: Sequence[Example],
    encoder,
    out: str | Path | None = None,
    C: float = 1.0,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    sources: Sequence[str] = (),
) -> Scorer:
    """Fit a Scorer on `examples` with `encoder`, and save it to `out` if given."""
    X = embed_examples(encoder, examples, progress)
    scorer = Scorer(C=C).fit(X, examples, encoder.identity, progress=log)
    if out is not None:
        scorer.save(out, extra={"trained_on": list(sources)})
    return scorer
