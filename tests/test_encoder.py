import numpy as np
import pytest

from router.core.encoder import OnnxMiniLM, load_encoder


@pytest.fixture(scope="module")
def enc():
    return load_encoder("minilm-int8", max_tokens=64, cache_size=3)


def test_vectors_are_normalised_and_similar_texts_are_close(enc):
    v = enc.encode(
        ["How do I sort a list in Python?", "Python: sorting a list", "Capital of France?"]
    )
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_cache_avoids_reembedding_and_is_bounded(enc, monkeypatch):
    calls = []
    real = OnnxMiniLM._embed

    def counting(self, texts):
        calls.append(list(texts))
        return real(self, texts)

    monkeypatch.setattr(OnnxMiniLM, "_embed", counting)
    a = enc.encode(["cached text one"])
    b = enc.encode(["cached text one", "cached text one"])
    assert sum(len(c) for c in calls) == 1
    np.testing.assert_array_equal(a[0], b[1])
    enc.encode(["t1", "t2", "t3", "t4"])
    assert len(enc._cache) == 3


def test_batch_matches_one_by_one(enc):
    texts = ["short", "a somewhat longer sentence about chemistry and physics", "x " * 200]
    batch = load_encoder("minilm-int8", max_tokens=64, cache_size=0).encode(texts)
    single = np.stack([load_encoder("minilm-int8", 64, 0).encode([t])[0] for t in texts])
    np.testing.assert_allclose(batch, single, atol=1e-4)


def test_long_text_keeps_head_and_tail(enc):
    ids = enc._ids("start " + "filler " * 500 + "finish")
    assert len(ids) == 64
    assert enc._ids._tok.decode(ids[1:3]).startswith("start")
    assert enc._ids._tok.decode(ids[-3:-1]).endswith("finish")


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown encoder 'bert'"):
        load_encoder("bert")
    with pytest.raises(ValueError, match="unknown encoder 'minilm-l7-q8'"):
        load_encoder("minilm-l7-q8")


def test_minilm_read_at_another_layer_names_its_layer_and_how_to_build_it():
    from router.core.encoder import encoder_class

    assert encoder_class("minilm-l2-q8").layers == 2  # the shipped one
    cls = encoder_class("minilm-l3-q8")
    assert (cls.name, cls.layers) == ("minilm-l3-q8", 3)
    # Not shipped: loading it says how to build it.
    with pytest.raises(FileNotFoundError, match=r"build_encoder_q8.py --layers 3"):
        load_encoder("minilm-l3-q8", threads=1)


def test_sentence_transformers_backend_agrees_with_int8():
    st = load_encoder("minilm", max_tokens=64, cache_size=0)
    texts = ["Prove that the square root of 2 is irrational", "What is the capital of France?"]
    a = st.encode(texts)
    b = load_encoder("minilm-int8", max_tokens=64, cache_size=0).encode(texts)
    assert st.identity == "minilm/64"
    assert (a * b).sum(1).min() > 0.99


TEXTS = [
    "short",
    "Prove that the square root of 2 is irrational",
    "Write a Python function that merges two sorted lists without using sort()",
    "x " * 200,
]


def test_int8_products_agree_with_float32_products():
    q8 = load_encoder("minilm-q8", max_tokens=128, cache_size=0)
    a = q8.encode(TEXTS)
    b = load_encoder("minilm-int8", max_tokens=128, cache_size=0).encode(TEXTS)
    assert q8.identity == "minilm-q8/128"
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert (a * b).sum(1).min() > 0.98


def test_int8_products_give_a_text_the_same_vector_whatever_its_batch():
    # Activations are quantised per call: texts must not share a call, or a prompt's vector
    # (and its route) would depend on the other requests in flight.
    q8 = load_encoder("minilm-q8", max_tokens=128, cache_size=0)
    together = q8.encode(TEXTS)
    alone = np.stack([q8.encode([t])[0] for t in TEXTS])
    np.testing.assert_array_equal(together, alone)


def test_shallow_encoder_reads_layer_two_of_the_same_weights():
    # minilm-l2-q8 is the same network stopped after two of its six layers: its own vectors
    # (a scorer trained on the full model's cannot read them), one text per call as minilm-q8.
    l2 = load_encoder("minilm-l2-q8", max_tokens=128, cache_size=0)
    full = load_encoder("minilm-q8", max_tokens=128, cache_size=0)
    assert l2.identity == "minilm-l2-q8/128"
    assert l2.per_text
    a, b = l2.encode(TEXTS), full.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert (a * b).sum(1).max() < 0.9  # another layer: other vectors
    alone = np.stack([l2.encode([t])[0] for t in TEXTS])
    np.testing.assert_array_equal(a, alone)
    # Still a text encoder: a question is nearer its own rewording than an unrelated one.
    q = l2.encode(["What is the capital of France?", "what is the capital of france", "x " * 50])
    assert q[0] @ q[1] > q[0] @ q[2]


def test_a_missing_encoder_artifact_says_how_to_rebuild_it(monkeypatch, tmp_path):
    from router.core import encoder as encoder_module

    monkeypatch.setattr(encoder_module.ShallowMiniLM, "name", "minilm-l9-q8")
    monkeypatch.setattr(encoder_module.ShallowMiniLM, "layers", 9)
    with pytest.raises(FileNotFoundError, match=r"build_encoder_q8.py --layers 9"):
        encoder_module.ShallowMiniLM(cache_size=0)


def test_calls_group_texts_of_similar_length(enc):
    seqs = [[0] * n for n in (5, 6, 60, 7, 62, 120)]
    groups = enc._calls(seqs)
    assert sorted(i for g in groups for i in g) == list(range(6))
    for g in groups:  # padding stays within the bound
        width, real = max(len(seqs[i]) for i in g), sum(len(seqs[i]) for i in g)
        assert width * len(g) <= (1 + enc.max_padding) * real
    assert len(groups) == 3


def test_scorers_are_shared_only_between_interchangeable_encoders():
    from router.core.encoder import interchangeable

    assert interchangeable("minilm-int8/128", "minilm-q8/128")
    assert interchangeable("minilm-q8/128", "minilm-int8/128")
    assert not interchangeable("minilm-int8/128", "minilm-q8/64")
    assert not interchangeable("minilm/128", "minilm-q8/128")
    assert not interchangeable("minilm-q8/128", "minilm-l2-q8/128")
    assert not interchangeable("minilm-l2-q8/128", "minilm-int8/128")
