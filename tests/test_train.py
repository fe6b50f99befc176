import numpy as np

from router.core.data import Example
from router.evaluation.train import EmbeddingStore, embed_examples


class FakeEncoder:
    identity = "fake/8"
    dim = 8

    def __init__(self):
        self.seen = []

    def encode(self, texts, batch_size=64, progress=None):
        self.seen.extend(texts)
        out = np.array([[len(t)] + [hash(t) % 97] * 7 for t in texts], dtype=np.float32)
        if progress:
            progress(len(texts))
        return out


def ex(t):
    return Example(prompt=t, scores={"a": 1.0})


def test_store_dedups_reloads_and_skips_known_texts(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTER_CACHE_DIR", str(tmp_path))
    enc = FakeEncoder()
    rows = [ex("alpha"), ex("beta"), ex("alpha")]  # a duplicate text within one batch
    X = embed_examples(enc, rows)
    assert X.shape == (3, 8) and np.array_equal(X[0], X[2])
    store = EmbeddingStore("fake/8")
    assert len(store._keys) == 2 and len(store._vectors) == 2
    enc2 = FakeEncoder()
    X2 = embed_examples(enc2, [ex("beta"), ex("gamma")])
    assert enc2.seen == ["gamma"]
    np.testing.assert_array_equal(X2[0], X[1])
    assert len(EmbeddingStore("fake/8")._keys) == 3


def test_damaged_store_is_rebuilt_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTER_CACHE_DIR", str(tmp_path))
    embed_examples(FakeEncoder(), [ex("alpha"), ex("beta")])
    d = EmbeddingStore("fake/8").dir
    np.save(d / "vectors.npy", np.zeros((5, 8), dtype=np.float32))  # lengths no longer match
    enc = FakeEncoder()
    embed_examples(enc, [ex("alpha")])
    assert enc.seen == ["alpha"]
