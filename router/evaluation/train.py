"""Train a scorer on routing datasets: embed every prompt (batched, with progress), fit, save."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from router.core.data import DataError, Example
from router.core.scorer import Scorer

Progress = Callable[[int], None]


def cache_dir() -> Path:
    """Where dataset embeddings are kept between runs (`ROUTER_CACHE_DIR` to move it)."""
    default = Path.home() / ".cache" / "smallfirst-router" / "embeddings"
    return Path(os.environ.get("ROUTER_CACHE_DIR", default))


class EmbeddingStore:
    """Embeddings of texts on disk, per encoder identity, so re-training and CV do not
    re-embed a dataset. Two plain arrays (text hashes, vectors): nothing executes on load."""

    def __init__(self, identity: str, root: Path | None = None) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in identity)
        self.dir = (root or cache_dir()) / safe
        self._keys: dict[bytes, int] = {}
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        hashes, vectors = self.dir / "hashes.npy", self.dir / "vectors.npy"
        if hashes.is_file() and vectors.is_file():
            try:
                h = np.load(hashes, allow_pickle=False)
                v = np.load(vectors, allow_pickle=False)
            except (ValueError, OSError):
                return  # a damaged cache is rebuilt, not trusted
            if h.ndim == 2 and h.shape[1] == 20 and len(h) == len(v):
                self._keys = {k.tobytes(): i for i, k in enumerate(h)}
                self._vectors = v

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.sha1(text.encode("utf-8")).digest()

    def get(self, keys: list[bytes]) -> list[np.ndarray | None]:
        return [self._vectors[self._keys[k]] if k in self._keys else None for k in keys]

    def add(self, keys: list[bytes], vectors: np.ndarray) -> None:
        new: dict[bytes, np.ndarray] = {}
        for k, v in zip(keys, vectors, strict=True):
            if k not in self._keys:
                new.setdefault(k, v)
        if not new:
            return
        start = len(self._keys)
        block = np.stack(list(new.values())).astype(np.float32)
        self._vectors = block if start == 0 else np.concatenate([self._vectors, block])
        for i, k in enumerate(new):
            self._keys[k] = start + i
        self.dir.mkdir(parents=True, exist_ok=True)
        hashes = np.frombuffer(b"".join(self._keys), dtype=np.uint8).reshape(-1, 20)
        for name, arr in (("hashes", hashes), ("vectors", self._vectors)):
            tmp = self.dir / f"{name}.tmp.npy"
            np.save(tmp, arr)
            tmp.replace(self.dir / f"{name}.npy")


def embed_examples(
    encoder, examples: Sequence[Example], progress: Progress | None = None, use_cache: bool = True
) -> np.ndarray:
    """One embedding per example, from its routing text; cached on disk per encoder. A row
    exported from the decision log without its text brings its own embedding (`logged_embedding`)."""
    logged = {i: v for i, ex in enumerate(examples) if (v := logged_embedding(ex, encoder))}
    if logged:
        rest = [i for i in range(len(examples)) if i not in logged]
        out = np.zeros((len(examples), len(next(iter(logged.values())))), dtype=np.float32)
        for i, v in logged.items():
            out[i] = v
        if rest:
            sub = [examples[i] for i in rest]
            out[rest] = embed_examples(encoder, sub, progress, use_cache)
        return out
    texts = [ex.text() for ex in examples]
    if not use_cache:
        return encoder.encode(texts, batch_size=64, progress=progress)
    store = EmbeddingStore(encoder.identity)
    keys = [store.key(t) for t in texts]
    found = store.get(keys)
    missing = [i for i, v in enumerate(found) if v is None]
    if progress and len(missing) < len(texts):
        progress(len(texts) - len(missing))
    if missing:
        vecs = encoder.encode([texts[i] for i in missing], batch_size=64, progress=progress)
        store.add([keys[i] for i in missing], vecs)
        for i, v in zip(missing, vecs, strict=True):
            found[i] = v
    return np.stack(found).astype(np.float32)


def logged_embedding(ex: Example, encoder) -> list[float] | None:
    """The embedding an embedding-only row carries (None for a row with text); refuses one made
    by another encoder than `encoder`, whose vectors would not be comparable."""
    if ex.prompt is not None or ex.messages is not None or "embedding" not in ex.extra:
        return None
    made_by = ex.extra.get("encoder")
    if made_by != encoder.identity:
        raise DataError(
            f"row {ex.id}: encoder: its embedding was made by {made_by!r}, but training uses "
            f"{encoder.identity!r}; export with the text (decision_log.store_text) or train "
            "with that encoder"
        )
    return ex.extra["embedding"]


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
