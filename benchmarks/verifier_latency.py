"""What the learned verifier adds per lookup, in process, with 1 to 5 candidates.

The workload is ``precision_proxy``'s: the held-out pairs' ``cached`` questions (200, one
scope) and the queries asked of them. Each query's candidates are its 5 nearest cached
questions by MiniLM cosine (the packaged int8 embedder), in that order, so their lengths and
likeness are those real lookups give. For each model folder (default: the shipped one):

1. ``by_candidates``: ``LearnedVerifier.verify_many`` (rules on, no score LRU) of a query
   against its first 1..5 candidates, as the verifier runs by default: p50/p99/mean ms.
2. ``five_candidates``: the same with 5 candidates for 1 and 2 intra-op threads, one padded
   run (``batch_size`` 16) against one run per pair (``batch_size`` 1), spinning off, and
   2 threads with spinning on.
3. ``lookup_path``: ``SemanticCache`` lookups of the same queries through ``CandidateSearch``
   (floor and n-gram candidates as configured by default; exact hits left out): time spent in
   the verifier per lookup, pairs the model scored, and what serving the first accepted candidate in rank
   order, instead of the best score, would change (``rank_order_exit``).

Every figure carries the 1-minute load average before and after it: other work shares the
cores. ``--model-dir`` (repeatable) times other model folders (``model.onnx``,
``tokenizer.json``, ``config.json``). Writes ``benchmarks/results/verifier_latency.json``.

    python benchmarks/verifier_latency.py [--model-dir DIR ...] [--note TEXT] [--lookups 200] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from precision_proxy import workload  # noqa: E402

SHIPPED = ROOT / "semcache/verify/pair_model"
TARGETS = {"p50_ms": 10.0, "p99_ms": 25.0}
WARMUP = 20
K = 5


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _figures(ms: list[float], load_before: float) -> dict[str, Any]:
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_ms": round(float(np.mean(ms)), 2), "n": len(ms), "load_1min": [load_before, _load()]}


def candidate_sets(embedder: Any, cached: list[str], asked: list[str]) -> list[tuple[str, list[str]]]:
    """Each query with its ``K`` nearest cached questions, nearest first."""
    sims = np.asarray(embedder.embed(asked)) @ np.asarray(embedder.embed(cached)).T
    return [(q, [cached[j] for j in np.argsort(-sims[i], kind="stable")[:K]]) for i, q in enumerate(asked)]


def time_verify_many(verifier: Any, sets: list[tuple[str, list[str]]], k: int) -> dict[str, Any]:
    for query, cands in sets[:WARMUP]:
        verifier.verify_many(query, cands[:k])
    load, ms = _load(), []
    for query, cands in sets[WARMUP:]:
        start = time.perf_counter()
        verifier.verify_many(query, cands[:k])
        ms.append((time.perf_counter() - start) * 1e3)
    return _figures(ms, load)


def lookup_path(model: Any, cached: list[str], asked: list[str], embedder: Any) -> dict[str, Any]:
    """Verifier time, pairs scored and rank-order exit per ``SemanticCache`` lookup."""
    from semcache.cache import SemanticCache
    from semcache.settings import CoreSettings
    from semcache.types import CacheRequest, Scope
    from semcache.verify.learned import LearnedVerifier

    class Timed(LearnedVerifier):
        """Adds up the time of its calls from the search (verify_many's own pre-checks once)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.ms, self.pairs, self.judged, self.depth = 0.0, 0, [], 0

        def _timed(self, call: Any, *args: Any, **kwargs: Any) -> Any:
            start, self.depth = time.perf_counter(), self.depth + 1
            try:
                return call(*args, **kwargs)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    self.ms += (time.perf_counter() - start) * 1e3

        def precheck(self, *args: Any, **kwargs: Any) -> Any:
            return self._timed(super().precheck, *args, **kwargs)

        def verify_many(self, query: str, cands: Any, **kwargs: Any) -> Any:
            out = self._timed(super().verify_many, query, cands, **kwargs)
            self.pairs += len(cands)
            self.judged.append([(score, verdict.accepted) for score, verdict in out])
            return out

    core = CoreSettings()
    verifier = Timed(model, rules=core.verifier_rules, cache_size=0)
    scope = Scope(tenant="latency", model="m")
    ms, pairs, hits, exits, without_model, exact = [], [], 0, [], 0, 0
    with tempfile.TemporaryDirectory(prefix="semcache-verifier-latency-") as tmp, \
            SemanticCache(f"sqlite:///{tmp}/c.db", embedder=embedder, stats_interval=0, verifier=verifier,
                          candidate_floor=core.candidate_floor) as cache:
        for i, text in enumerate(cached):
            cache.store(CacheRequest(text, scope), {"i": i})
        for text in asked[:WARMUP]:
            cache.lookup_detailed(CacheRequest(text, scope))
        load = _load()
        for text in asked[WARMUP:]:
            verifier.ms, verifier.pairs, verifier.judged = 0.0, 0, []
            hit = cache.lookup_detailed(CacheRequest(text, scope)).hit
            if hit is not None and hit.match == "exact":  # never reaches the verifier: left out
                exact += 1
                continue
            hits += hit is not None
            without_model += hit is not None and not verifier.judged
            ms.append(verifier.ms)
            pairs.append(verifier.pairs)
            exits.extend(verifier.judged)
    return {**_figures(ms, load), "exact_hits_left_out": exact, "semantic_hits": hits,
            "semantic_hits_without_a_model_call": without_model,
            "pairs_scored_per_lookup": {"mean": round(float(np.mean(pairs)), 2),
                                        "histogram": {str(k): v for k, v in sorted(Counter(pairs).items())}},
            "rank_order_exit": rank_order_exit(exits)}


def rank_order_exit(judged: list[list[tuple[float, bool]]]) -> dict[str, Any]:
    """Scoring candidates one at a time in rank order and serving the first accepted: the pairs
    that would score, and the lookups whose served entry would change (the search serves the
    best accepted score)."""
    accepted = [j for j in judged if any(ok for _, ok in j)]
    first = [next(i for i, (_, ok) in enumerate(j) if ok) for j in accepted]
    best = [max((i for i, (_, ok) in enumerate(j) if ok), key=lambda i: (j[i][0], -i)) for j in accepted]
    scored = [len(j) for j in judged if not any(ok for _, ok in j)] + [i + 1 for i in first]
    return {"model_calls": len(judged), "with_an_accepted_pair": len(accepted),
            "with_two_or_more_accepted": sum(sum(ok for _, ok in j) >= 2 for j in accepted),
            "served_entry_would_change": sum(f != b for f, b in zip(first, best, strict=True)),
            "pairs_scored_mean": {"all": round(float(np.mean([len(j) for j in judged])), 2) if judged else 0.0,
                                  "rank_order_exit": round(float(np.mean(scored)), 2) if scored else 0.0}}


def one_model(directory: Path, sets: list[tuple[str, list[str]]], cached: list[str], asked: list[str],
              embedder: Any) -> dict[str, Any]:
    from semcache.verify.learned import LearnedVerifier
    from semcache.verify.pair_model import PairModel
    from semcache.verify.pair_model.scorer import BATCH_SIZE

    model = PairModel.load(directory)
    verifier = LearnedVerifier(model, cache_size=0)
    out: dict[str, Any] = {"dir": str(directory), "layers": model.config.layers, "threads": model.threads,
                           "by_candidates": {str(k): time_verify_many(verifier, sets, k) for k in range(1, K + 1)}}
    five = []
    for threads, batch, spinning in ((1, 1, False), (1, BATCH_SIZE, False), (2, 1, False), (2, BATCH_SIZE, False),
                                     (2, BATCH_SIZE, True)):
        variant = PairModel(directory / "model.onnx", directory / "tokenizer.json", model.config, threads,
                            spinning=spinning, batch_size=batch)
        row = {"threads": threads, "batched": batch > 1, "spinning": spinning}
        five.append({**row, **time_verify_many(LearnedVerifier(variant, cache_size=0), sets, K)})
    out["five_candidates"] = five
    out["lookup_path"] = lookup_path(model, cached, asked, embedder)
    worst = out["by_candidates"][str(K)]
    out["targets_met_with_5"] = {k: worst[k] <= v for k, v in TARGETS.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, action="append", help="a model folder (repeatable; default: shipped)")
    ap.add_argument("--lookups", type=int, default=200, help="timed lookups per figure")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/verifier_latency.json")
    ap.add_argument("--note", default="", help="what the model folders are, kept in the results")
    args = ap.parse_args(argv)
    import onnxruntime

    from semcache.parts import close_embedder, default_embedder

    started = time.perf_counter()
    raw = [json.loads(x) for x in (ROOT / "datasets/pairs/heldout.jsonl").read_text().splitlines() if x.strip()]
    cached, asked = workload(raw, 200, args.lookups + WARMUP)
    embedder = default_embedder()
    sets = candidate_sets(embedder, cached, asked)
    result: dict[str, Any] = {
        "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
        "onnxruntime": onnxruntime.__version__, "load_1_5_15_at_start": [round(x, 2) for x in os.getloadavg()],
        "targets_added": TARGETS, "stored_questions": len(cached), "timed_lookups": len(sets) - WARMUP,
        "note": "ms per lookup in process; candidates: the query's nearest cached questions by cosine, nearest first",
        "models_note": args.note, "models": {}}
    for directory in args.model_dir or [SHIPPED]:
        name = "shipped" if directory.resolve() == SHIPPED.resolve() else str(directory)
        result["models"][name] = one_model(directory, sets, cached, asked, embedder)
        print(json.dumps({name: result["models"][name]["by_candidates"][str(K)]}), flush=True)
    close_embedder(embedder)
    result["load_1_5_15_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"out": str(args.out), "seconds": result["seconds"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
