"""Rebuild a trainable pair classifier from a shipped pair-model ONNX graph.

The exported graph (``export_onnx.py``) stores every large weight as int8 behind a
``DequantizeLinear`` node, and the rest as fp32 initialisers named after the torch
parameters. Reading them back gives the classifier to within int8 rounding, so training
can continue from the model that ships in ``semcache/verify/pair_model/`` on a machine
that has no other copy of the MiniLM weights (the GPU tree is size-capped).

    python training/verifier/from_onnx.py --out DIR [--onnx semcache/verify/pair_model/model.onnx]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model as pair_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "classifier."
# all-MiniLM-L6-v2's shape (BertModel).
MINILM_L6 = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                 intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2,
                 hidden_act="gelu", layer_norm_eps=1e-12, hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1)


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * q.ndim
    shape[axis] = -1
    return ((q.astype(np.float32) - zero.astype(np.float32).reshape(shape))
            * scale.astype(np.float32).reshape(shape))


def onnx_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Torch parameter name (without the wrapper's prefix) -> fp32 tensor."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    quantised = {n for node in graph.node if node.op_type == "DequantizeLinear" for n in node.input}
    dynamic = {n for n in inits if n.endswith(("_quantized", "_scale", "_zero_point"))}
    state = {k[len(PREFIX):]: v for k, v in inits.items()
             if k.startswith(PREFIX) and k not in quantised and k not in dynamic}
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        value = _dequantize(*(inits[n] for n in node.input[:3]), axis)
        name = node.output[0]
        if not name.startswith(PREFIX):
            # A MatMul weight ([in, out]); its consumer's output names the Linear.
            (matmul,) = consumers[name]
            module = matmul.output[0].strip("/").rsplit("/", 1)[0].replace("/", ".")
            name, value = module + ".weight", value.T
        state[name[len(PREFIX):] if name.startswith(PREFIX) else name] = value
    state.update(_dynamic_weights(inits, consumers))
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}


def _dynamic_weights(inits: dict[str, np.ndarray], consumers: dict[str, list]) -> dict[str, np.ndarray]:
    """The weights of a dynamic-int8 graph (``quantize_dynamic``): ``W_quantized`` with
    ``W_scale`` and ``W_zero_point`` (per output channel for a MatMul weight, else one scale)."""
    out = {}
    for qname in [n for n in inits if n.endswith("_quantized")]:
        base = qname[: -len("_quantized")]
        if base + "_scale" not in inits:
            continue
        q, scale = inits[qname], inits[base + "_scale"]
        axis = 1 if scale.ndim and q.ndim == 2 and scale.size == q.shape[1] else 0
        value = _dequantize(q, scale, inits[base + "_zero_point"], axis)
        if base.endswith("_Transposed"):  # the head's weight, stored as [in, out]
            base, value = base[: -len("_Transposed")], value.T
        if not base.startswith(PREFIX):
            # A MatMul weight ([in, out]); its MatMulInteger node's name names the Linear.
            (matmul,) = [c for c in consumers[qname] if c.op_type == "MatMulInteger"]
            base, value = matmul.name.strip("/").rsplit("/", 1)[0].replace("/", ".") + ".weight", value.T
        out[base[len(PREFIX):]] = value
    return out


def rebuild(path: Path, layers: int | None = None) -> pair_model.PairClassifier:
    """The classifier of ``path``, optionally keeping only its first ``layers`` layers."""
    from transformers import BertConfig, BertModel

    config = BertConfig(**{**MINILM_L6, "num_hidden_layers": layers or MINILM_L6["num_hidden_layers"]})
    classifier = pair_model.PairClassifier(BertModel(config, add_pooling_layer=False))
    state = onnx_state_dict(path)
    keep = {k: v for k, v in state.items()
            if not k.startswith("encoder.encoder.layer.") or int(k.split(".")[3]) < config.num_hidden_layers}
    missing, unexpected = classifier.load_state_dict(keep, strict=False)
    # position_ids is a buffer HF builds itself; anything else missing is a real mismatch.
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"ONNX weights do not fit MiniLM: missing {missing}, unexpected {unexpected}")
    return classifier.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", type=Path, default=ROOT / "semcache/verify/pair_model/model.onnx")
    ap.add_argument("--out", type=Path, required=True, help="folder for model.save (train.py --init)")
    ap.add_argument("--layers", type=int, default=None, help="keep the first N encoder layers")
    args = ap.parse_args(argv)
    classifier = rebuild(args.onnx, args.layers)
    shipped = json.loads((args.onnx.parent / "config.json").read_text())
    meta = {**shipped, "layers": classifier.encoder.config.num_hidden_layers,
            "init": f"rebuilt from {args.onnx.name}"}
    pair_model.save(classifier, args.out, meta)
    print(json.dumps({"out": str(args.out), "layers": meta["layers"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
