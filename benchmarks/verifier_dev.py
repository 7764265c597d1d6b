"""Hard-negative verifier against the global-threshold baseline, on dev and held-out.

For each split, with real all-MiniLM-L6-v2 cosines as the candidate gate:
- a grid of global thresholds: precision, recall, accuracy, F1 and false-hit rate
  (overall and per kind) for the baseline (threshold only) and threshold + verifier;
- the best-accuracy threshold of each, and the best recall reachable at precision >= 0.98;
- the false-hit rate on negation, entity-swap and number-swap pairs at those thresholds;
- the verifier's latency per call (p50/p99, cold: no analysis cache; warm: default).

Usage: python benchmarks/verifier_dev.py [--out benchmarks/results/verifier_dev.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from semcache.verify import HardNegativeVerifier

HERE = Path(__file__).resolve().parent
SPLITS = {
    "dev": HERE / "data" / "hardneg_dev.jsonl",
    "heldout": HERE / "data" / "hardneg_heldout.jsonl",
}
GRID = [round(t, 2) for t in np.arange(0.50, 0.991, 0.01)]
REPORT_GRID = [round(t, 2) for t in np.arange(0.50, 0.951, 0.05)]
CRITICAL = ("negation", "entity_swap", "number_swap")
TARGET_PRECISION = 0.98
# The blind held-out measurement is the one committed with the benchmark (git history).
HELDOUT_NOTE = (
    "First (blind) held-out run: threshold+verifier P=0.989 R=0.748, false-hit rate negation "
    "0.036 (1/28: a reversed 'from monthly to annual plan'), entity 0, number 0. It exposed one "
    "bug (time words were left out of the direction check), fixed afterwards; later held-out "
    "figures are therefore no longer blind."
)


def metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float | int]:
    tp = int((pred & y).sum())
    fp = int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    negatives = int((~y).sum())
    return {
        "n": int(len(y)),
        "hits": int(pred.sum()),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "accuracy": round(float((pred == y).mean()), 4),
        "false_hit_rate": round(fp / negatives, 4) if negatives else 0.0,
    }


def per_kind(
    pred: np.ndarray, y: np.ndarray, kinds: np.ndarray
) -> dict[str, dict[str, float | int]]:
    return {k: metrics(pred[kinds == k], y[kinds == k]) for k in sorted(set(kinds))}


def summarise(pred_fn: Any, y: np.ndarray, kinds: np.ndarray) -> dict[str, Any]:
    """Grid, best-accuracy threshold and recall at the precision target for one system."""
    grid = {t: metrics(pred_fn(t), y) for t in GRID}
    best_t = max(GRID, key=lambda t: (grid[t]["accuracy"], -t))
    ok = [t for t in GRID if grid[t]["precision"] >= TARGET_PRECISION and grid[t]["hits"] > 0]
    p98_t = max(ok, key=lambda t: (grid[t]["recall"], t)) if ok else None

    def at(t: float | None) -> dict[str, Any] | None:
        if t is None:
            return None
        kinds_m = per_kind(pred_fn(t), y, kinds)
        critical = sum(kinds_m[k]["hits"] for k in CRITICAL if k in kinds_m)
        n_critical = sum(kinds_m[k]["n"] for k in CRITICAL if k in kinds_m)
        return {
            "threshold": t,
            **grid[t],
            "per_kind": kinds_m,
            "false_hit_rate_negation_entity_number": round(critical / n_critical, 4)
            if n_critical
            else 0.0,
        }

    return {
        "grid": {
            str(t): {**grid[t], "per_kind": per_kind(pred_fn(t), y, kinds)} for t in REPORT_GRID
        },
        "best_accuracy": at(best_t),
        "at_precision_0_98": at(p98_t),
        "recall_at_precision_0_98": grid[p98_t]["recall"] if p98_t is not None else 0.0,
    }


def latency(rows: list[dict[str, Any]], cache_size: int, repeats: int = 5) -> dict[str, float]:
    """Per-call verifier latency. The per-pair median over repeats shows the slowest pair
    without the scheduling noise of a shared machine (reported with the load average)."""
    verifier = HardNegativeVerifier(cache_size=cache_size)
    for r in rows:  # warm-up, not counted
        verifier.verify(r["query"], r["cached"], category=r["category"])
    times = np.zeros((repeats, len(rows)))
    for k in range(repeats):
        for i, r in enumerate(rows):
            t0 = time.perf_counter()
            verifier.verify(r["query"], r["cached"], category=r["category"])
            times[k, i] = time.perf_counter() - t0
    ms = times * 1e3
    return {
        "calls": int(ms.size),
        "p50_ms": round(float(np.median(ms)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "mean_ms": round(float(ms.mean()), 4),
        "slowest_pair_median_ms": round(float(np.median(ms, axis=0).max()), 4),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def run_split(rows: list[dict[str, Any]], embedder: Any) -> dict[str, Any]:
    y = np.array([bool(r["should_hit"]) for r in rows])
    kinds = np.array([r["kind"] for r in rows])
    sims = np.einsum(
        "ij,ij->i",
        embedder.embed([r["cached"] for r in rows]),
        embedder.embed([r["query"] for r in rows]),
    )
    verifier = HardNegativeVerifier()
    verdicts = [verifier.verify(r["query"], r["cached"], category=r["category"]) for r in rows]
    accepted = np.array([v.accepted for v in verdicts])
    baseline = summarise(lambda t: sims >= t, y, kinds)
    combined = summarise(lambda t: (sims >= t) & accepted, y, kinds)
    t_op = combined["at_precision_0_98"]["threshold"] if combined["at_precision_0_98"] else 0.75
    errors = [
        {
            "kind": r["kind"],
            "cached": r["cached"],
            "query": r["query"],
            "cosine": round(float(s), 3),
            "verdict": v.reason,
            "rule": v.rule,
        }
        for r, s, v, a in zip(rows, sims, verdicts, accepted, strict=True)
        if (s >= t_op and a) != r["should_hit"] and (not r["should_hit"] or s >= t_op)
    ]
    return {
        "n": len(rows),
        "positives": int(y.sum()),
        "baseline_threshold_only": baseline,
        "threshold_plus_verifier": combined,
        "verifier_alone": {**metrics(accepted, y), "per_kind": per_kind(accepted, y, kinds)},
        "rejections_by_rule": dict(Counter(v.rule for v in verdicts if not v.accepted)),
        "errors_at_operating_threshold": {"threshold": t_op, "rows": errors},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "verifier_dev.json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from semcache.embed.minilm import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    result: dict[str, Any] = {
        "embedder": "all-MiniLM-L6-v2",
        "target_precision": TARGET_PRECISION,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "heldout_note": HELDOUT_NOTE,
    }
    all_rows: list[dict[str, Any]] = []
    for name, path in SPLITS.items():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        all_rows += rows
        result[name] = run_split(rows, embedder)
        res = result[name]
        b, c = res["baseline_threshold_only"], res["threshold_plus_verifier"]
        print(f"{name}: n={res['n']}")
        print(
            f"  baseline best acc {b['best_accuracy']['accuracy']:.3f} @ {b['best_accuracy']['threshold']}, "
            f"recall@p>=0.98 {b['recall_at_precision_0_98']:.3f}"
        )
        print(
            f"  +verifier best acc {c['best_accuracy']['accuracy']:.3f} @ {c['best_accuracy']['threshold']}, "
            f"recall@p>=0.98 {c['recall_at_precision_0_98']:.3f}"
        )
        for label, block in (("best-acc", c["best_accuracy"]), ("p>=0.98", c["at_precision_0_98"])):
            if block:
                fhr = {k: block["per_kind"][k]["false_hit_rate"] for k in CRITICAL}
                print(
                    f"  +verifier @{block['threshold']} ({label}): P={block['precision']:.3f} "
                    f"R={block['recall']:.3f} false-hit {fhr}"
                )
    result["latency"] = {
        "cold_no_cache": latency(all_rows, 0),
        "warm_default_cache": latency(all_rows, 50_000),
    }
    print("latency", result["latency"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
