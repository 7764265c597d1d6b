"""Export a trained pair classifier to int8 ONNX for the package.

``torch.onnx.export`` writes the fp32 graph (inputs ``input_ids``,
``attention_mask``, ``token_type_ids``: int64 ``[B, T]``; output
``probability``: float32 ``[B]``), then quantised: int8 weights per channel and int8
activations with one scale per run, computed at run time (dynamic int8; the scorer runs one
pair at a time), or with ``--weights-only`` int8 weights only and fp32 compute.
The script checks int8 against fp32 on the dev rows of ``data.py``, sets the thresholds
(overall and per category) on the int8 scores, at the dev wrong level that keeps a held-back
writer's traps at <= 1% wrong (``calibrate.py``; ``--no-shift``: 1% of dev), then writes
``model.onnx``, ``tokenizer.json`` and ``config.json`` to ``--dest``
(default ``semcache/verify/pair_model``) and the agreement figures to
``training/verifier/export_report.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import calibrate  # noqa: E402
import data as pair_data  # noqa: E402
import model as pair_model  # noqa: E402
from train import MAX_WRONG, category_thresholds, threshold_at  # noqa: E402

from semcache.verify.pair_model.scorer import PairModel  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OPSET = 17
TOKENIZER = ROOT / "semcache/verify/pair_model/tokenizer.json"  # MiniLM's, as shipped


class _Probability(torch.nn.Module):
    def __init__(self, classifier: torch.nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, input_ids, attention_mask, token_type_ids):
        return torch.sigmoid(self.classifier(input_ids, attention_mask, token_type_ids))


def export_fp32(classifier: torch.nn.Module, path: Path) -> None:
    wrapper = _Probability(classifier).eval()
    example = tuple(torch.ones(2, 8, dtype=torch.int64) for _ in range(3))
    axes = {"batch": 0, "tokens": 1}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, example, str(path),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["probability"],
            dynamic_axes={**{n: {v: k for k, v in axes.items()}
                             for n in ("input_ids", "attention_mask", "token_type_ids")},
                          "probability": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    wrapper.eval()  # export restores the training flag it found


def quantize(src: Path, dst: Path, min_size: int = 100_000) -> None:
    """Weight-only int8: each large weight becomes int8 + per-channel scale + DequantizeLinear.

    The file is as small as dynamic int8's; the scorer folds the DequantizeLinear nodes at
    load and computes in fp32, so scores stay close to the fp32 graph's, at fp32 speed.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph_model = onnx.load(str(src))
    graph = graph_model.graph
    users: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, set()).add(node.op_type)
    dequantize = []
    for init in list(graph.initializer):
        w = numpy_helper.to_array(init)
        if w.dtype != np.float32 or w.ndim != 2 or w.size < min_size:
            continue
        axis = 0 if users.get(init.name) == {"Gather"} else 1  # per row of a table, per column
        scale = (np.abs(w).max(axis=1 - axis) / 127.0).astype(np.float32)
        scale[scale == 0] = 1.0
        q = np.clip(np.round(w / np.expand_dims(scale, 1 - axis)), -127, 127).astype(np.int8)
        graph.initializer.remove(init)
        graph.initializer.extend([numpy_helper.from_array(q, init.name + "_int8"),
                                  numpy_helper.from_array(scale, init.name + "_scale"),
                                  numpy_helper.from_array(np.zeros_like(q[0] if axis else q[:, 0]),
                                                          init.name + "_zero")])
        dequantize.append(helper.make_node(
            "DequantizeLinear", [init.name + "_int8", init.name + "_scale", init.name + "_zero"],
            [init.name], axis=axis))
    for node in reversed(dequantize):
        graph.node.insert(0, node)
    onnx.save(graph_model, str(dst))


def quantize_activations(src: Path, dst: Path) -> None:
    """Dynamic int8: per-channel int8 weights, and activations quantised at run time with one
    scale per run (``MatMulInteger``); about 2.5x faster than fp32 compute on this CPU. The
    scorer then runs one pair at a time (its scale must not depend on other pairs), and the
    thresholds are set on these scores."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True)


def _write_package(folder: Path, onnx_file: Path, meta: dict, threshold: float,
                   thresholds: dict[str, float] | None = None, activations: str = "fp32") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_file, folder / "model.onnx")
    if (folder / "tokenizer.json").resolve() != TOKENIZER.resolve():
        shutil.copyfile(TOKENIZER, folder / "tokenizer.json")
    config = {"max_len": meta["max_len"], "threshold": threshold, "thresholds": thresholds or {},
              "base_model": meta["base_model"], "layers": meta["layers"], "activations": activations}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "training/verifier/.cache/out")
    ap.add_argument("--dest", type=Path, default=ROOT / "semcache/verify/pair_model")
    ap.add_argument("--report", type=Path, default=ROOT / "training/verifier/export_report.json")
    ap.add_argument("--no-shift", action="store_true",
                    help="thresholds at 1%% wrong on all dev rows, with no margin for new writers")
    ap.add_argument("--weights-only", action="store_true",
                    help="int8 weights only, fp32 compute (slower; scores as the fp32 graph's)")
    ap.add_argument("--max-len", type=int, default=None,
                    help="tokens per pair the shipped scorer reads (default: the training length)")
    args = ap.parse_args(argv)
    classifier, meta = pair_model.load(args.model)
    if args.max_len is not None:
        meta = {**meta, "max_len": args.max_len}
    dev = pair_data.dev_rows()
    labels = np.array([r["should_hit"] for r in dev], dtype=np.int64)
    pairs = [(r["cached"], r["query"]) for r in dev]
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export_fp32(classifier, fp32)
        activations = "fp32" if args.weights_only else "dynamic-int8"
        (quantize if args.weights_only else quantize_activations)(fp32, int8)
        scores = {}
        for name, f, kind in (("fp32", fp32, "fp32"), ("int8", int8, activations)):
            _write_package(Path(tmp) / name, f, meta, meta["threshold"], activations=kind)
            scores[name] = PairModel.load(Path(tmp) / name, threads=2).score(pairs)
        # The int8 graph's own dev threshold: quantisation shifts scores a little.
        shift = None if args.no_shift else calibrate.shift_level(scores["int8"], dev, MAX_WRONG)
        level = MAX_WRONG if shift is None else shift["level"]
        chosen = threshold_at(scores["int8"], labels, level)
        per_category = category_thresholds(scores["int8"], dev, chosen["threshold"], max_wrong=level)
        _write_package(args.dest, int8, meta, chosen["threshold"], per_category, activations)
        report = {
            "fp32_mb": round(fp32.stat().st_size / 2**20, 2),
            "int8_mb": round(int8.stat().st_size / 2**20, 2), "activations": activations,
            "max_abs_diff": float(np.abs(scores["fp32"] - scores["int8"]).max()),
            "mean_abs_diff": float(np.abs(scores["fp32"] - scores["int8"]).mean()),
            "decision_agreement_at_threshold": float(np.mean(
                (scores["fp32"] >= chosen["threshold"]) == (scores["int8"] >= chosen["threshold"]))),
            "dev_fp32": threshold_at(scores["fp32"], labels, MAX_WRONG),
            "dev_int8": chosen, "shift": shift, "thresholds": per_category, "dev_rows": len(dev), "train_meta": {k: v for k, v in meta.items() if k != "history"},
            "history": meta.get("history"),
        }
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("fp32_mb", "int8_mb", "max_abs_diff",
                                             "decision_agreement_at_threshold", "dev_int8", "shift")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
