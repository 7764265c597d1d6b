"""Calibrate the per-category thresholds for the packaged int8 embedder, beside fp32.

On the project's own labelled pairs (``datasets/pairs``): thresholds are calibrated on
the train split for each embedder (``semcache.tools.calibrate``, target precision 0.98),
then both splits are scored and the hit decisions compared with fp32 under today's
default thresholds. Writes a JSON report; the fp32 side needs the ``torch`` extra.

    python scripts/calibrate_embedder.py --out benchmarks/results/embedder_int8_calibration.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def decisions(scored: list[Any], thresholds: dict[str, float]) -> list[bool]:
    return [s.accepted and s.similarity >= thresholds[s.category] for s in scored]


def describe(row: Any, fp32: Any, other: Any, hit: bool) -> dict[str, Any]:
    return {"cached": row.cached, "query": row.query, "should_hit": row.should_hit, "now_hits": hit,
            "category": other.category, "similarity_fp32": round(fp32.similarity, 4),
            "similarity": round(other.similarity, 4)}


def quality(scored: list[Any], hits: list[bool]) -> dict[str, float]:
    tp = sum(h and s.should_hit for s, h in zip(scored, hits, strict=True))
    fp = sum(h and not s.should_hit for s, h in zip(scored, hits, strict=True))
    positives = sum(s.should_hit for s in scored)
    return {"hits": tp + fp, "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
            "recall": round(tp / positives, 4) if positives else 1.0}


def score(embedder: Any, splits: dict[str, list[Any]], target: float) -> tuple[dict[str, float], dict[str, Any]]:
    """Thresholds calibrated on train, and the scored rows of every split."""
    from semcache.cache import SemanticCache
    from semcache.embed.lru import CachedEmbedder
    from semcache.tools.calibrate import calibrate, score_rows

    with tempfile.TemporaryDirectory() as tmp, SemanticCache(
            f"sqlite:///{tmp}/c.db", embedder=CachedEmbedder(embedder, maxsize=100_000),
            stats_interval=0) as cache:
        calibrated, report = calibrate(cache, splits["train"], target_precision=target)
        thresholds = {name: policy.threshold for name, policy in calibrated.items()}
        thresholds["pooled"] = report["pooled_threshold"]
        return thresholds, {name: score_rows(cache, rows) for name, rows in splits.items()}


def support(scored: list[Any]) -> dict[str, dict[str, int]]:
    """Rows and positive rows per category: how much each calibrated threshold rests on."""
    out: dict[str, dict[str, int]] = {}
    for s in scored:
        counts = out.setdefault(s.category, {"rows": 0, "positives": 0})
        counts["rows"] += 1
        counts["positives"] += int(s.should_hit)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--target-precision", type=float, default=0.98)
    args = parser.parse_args()
    from semcache.embed.minilm import MiniLMEmbedder
    from semcache.lookup.policies import PolicySet
    from semcache.tools.evaluate import load_rows

    splits = {name: load_rows(ROOT / "datasets" / "pairs" / f"{name}.jsonl") for name in ("train", "heldout")}
    default = {name: policy.threshold for name, policy in PolicySet.from_file(None).items()}
    fp32_t, fp32_s = score(MiniLMEmbedder(precision="fp32"), splits, args.target_precision)
    int8_t, int8_s = score(MiniLMEmbedder(), splits, args.target_precision)
    # Today's defaults moved by the median change of similarity near the thresholds (train
    # pairs with an fp32 similarity in [0.75, 0.95]): per-category thresholds calibrated at a
    # target precision jump between candidate similarities where a category has few rows.
    near = [b.similarity - a.similarity for a, b in zip(fp32_s["train"], int8_s["train"], strict=True)
            if 0.75 <= a.similarity <= 0.95]
    shift = round(float(np.median(near)), 3)
    shifted = {c: round(default[c] + shift, 4) for c in default}
    report: dict[str, Any] = {"target_precision": args.target_precision, "thresholds": {
        "default_fp32": default, "calibrated_fp32": fp32_t, "calibrated_int8": int8_t,
        "default_shifted_int8": shifted}, "similarity_shift_near_thresholds": shift,
        "similarity_shift_rows": len(near), "support_train": support(fp32_s["train"]), "splits": {}}
    for split in splits:
        base = decisions(fp32_s[split], default | {"pooled": 1.0})
        runs = {"fp32 default": (fp32_s, default), "int8 default": (int8_s, default),
                "int8 shifted": (int8_s, shifted), "fp32 calibrated": (fp32_s, fp32_t),
                "int8 calibrated": (int8_s, int8_t)}
        out = {}
        for name, (scored, thresholds) in runs.items():
            hits = decisions(scored[split], thresholds)
            changed = [i for i, (a, b) in enumerate(zip(base, hits, strict=True)) if a != b]
            out[name] = {**quality(scored[split], hits), "decisions_changed_vs_fp32_default": len(changed),
                         "changed_rows": [describe(splits[split][i], fp32_s[split][i], scored[split][i], hits[i])
                                          for i in changed[:40]]}
        report["splits"][split] = {"rows": len(base), **out}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "splits"}))
    for split, runs_out in report["splits"].items():
        for name, r in runs_out.items():
            if isinstance(r, dict):
                print(split, name, {k: v for k, v in r.items() if k != "changed_rows"})


if __name__ == "__main__":
    main()
