"""Carry a trained classifier off a machine whose returned files are size-capped.

``pack`` writes the weights that training changed (every parameter except a frozen word
embedding table) as fp16 safetensors, cut into parts of at most 15 MiB; ``unpack`` rebuilds
the classifier from those parts plus the shipped ONNX graph (which holds the frozen table).

    python training/verifier/transfer.py pack RUN_DIR DEST_DIR
    python training/verifier/transfer.py unpack PARTS_DIR OUT_DIR [--onnx model.onnx]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import from_onnx  # noqa: E402
import model as pair_model  # noqa: E402

PART_BYTES = 15 * 2**20
WORDS = "encoder.embeddings.word_embeddings.weight"


def pack(run: Path, dest: Path, with_words: bool = False) -> list[Path]:
    from safetensors.torch import save

    classifier, meta = pair_model.load(run)
    state = {k: v.detach().half().contiguous() for k, v in classifier.state_dict().items()
             if (with_words or k != WORDS) and not k.endswith("position_ids")}
    blob = save(state)
    dest.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range(0, len(blob), PART_BYTES):
        parts.append(dest / f"weights.part{i // PART_BYTES}")
        parts[-1].write_bytes(blob[i:i + PART_BYTES])
    (dest / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return parts


def unpack(parts_dir: Path, out: Path, onnx_path: Path) -> None:
    from safetensors.torch import load

    blob = b"".join(p.read_bytes() for p in sorted(parts_dir.glob("weights.part*"),
                                                    key=lambda p: int(p.suffix[5:])))
    state = {k: v.float() for k, v in load(blob).items()}
    meta = json.loads((parts_dir / "meta.json").read_text())
    classifier = from_onnx.rebuild(onnx_path, meta["layers"])
    missing, unexpected = classifier.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != WORDS and not m.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"parts do not fit: missing {missing}, unexpected {unexpected}")
    pair_model.save(classifier, out, meta)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("run", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("--with-words", action="store_true", help="also the word-embedding table")
    u = sub.add_parser("unpack")
    u.add_argument("parts", type=Path)
    u.add_argument("out", type=Path)
    u.add_argument("--onnx", type=Path, default=from_onnx.ROOT / "semcache/verify/pair_model/model.onnx")
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        print("\n".join(str(p) for p in pack(args.run, args.dest, args.with_words)))
    else:
        if args.out.exists():
            shutil.rmtree(args.out)
        unpack(args.parts, args.out, args.onnx)
        print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
