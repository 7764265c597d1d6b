"""Candidates for the learned verifier: the character n-gram index, the floor, the added time.

1. ``CharGramIndex`` over every distinct question of the pair files (plus the GPTCache mock
   questions when the shared data is present): memory, build time, time per search and
   recall@5 of misspelled repeats (the corpus and queries of ``verifier_model_typo.py``).
2. The candidate floor: ``semcache eval``'s path (``evaluate``) on the training split's dev
   slice with the learned verifier at several floors, with and without the n-gram index,
   beside the rule verifier.
3. Added time per lookup, in process: ``verify_many`` with 1 and 5 candidates (no score
   LRU), the n-gram search, and whole semantic lookups over that corpus, learned vs rules.
4. Wrong answers to misspelled questions whose original is not cached (``orphan_typos``).
Writes ``benchmarks/results/verifier_candidates.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from verifier_model_typo import corpus_and_queries  # noqa: E402

FLOORS = (0.3, 0.4, 0.5, 0.6, 0.7)


def _ms(times: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(times, 50)) * 1000, 3),
            "p99_ms": round(float(np.percentile(times, 99)) * 1000, 3)}


def chargram_figures(texts: list[str], queries: dict[str, list[dict]]) -> dict:
    from semcache.index.chargram import CharGramIndex

    tracemalloc.start()
    start = time.perf_counter()
    index = CharGramIndex()
    index.add("p", list(range(len(texts))), texts)
    build_s = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    position = {t: i for i, t in enumerate(texts)}
    out: dict = {"corpus_size": len(texts), "sizes": list(index.sizes), "bits": index.bits,
                 "build_s": round(build_s, 3), "memory_mb_estimate": round(index.nbytes() / 2**20, 2),
                 "memory_mb_traced": round(traced / 2**20, 2)}
    for name, rows in queries.items():
        for r in rows[:20]:  # warm-up, not counted
            index.search("p", r["query"], 5)
        times, found = [], []
        for r in rows:
            t0 = time.perf_counter()
            top = index.search("p", r["query"], 5)
            times.append(time.perf_counter() - t0)
            found.append(position[r["cached"]] in {i for i, _ in top})
        out[name] = {"n": len(rows), "recall_at_5": round(float(np.mean(found)), 4), **_ms(times)}
    return out


def _dev_rows() -> list:
    from semcache.tools.evaluate import load_rows

    rows = [json.loads(x) for x in (ROOT / "datasets/pairs/train.jsonl").read_text().splitlines() if x.strip()]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows if r["split"] == "dev"))
    try:
        return load_rows(fh.name)
    finally:
        os.unlink(fh.name)


def floor_sweep(embedder, rows) -> dict:
    from semcache.cache import SemanticCache
    from semcache.tools.evaluate import evaluate
    from semcache.verify.learned import LearnedVerifier

    def one(chargram: bool = True, **kw) -> dict:
        with tempfile.TemporaryDirectory() as tmp, SemanticCache(
                f"sqlite:///{tmp}/e.db", embedder=embedder, stats_interval=0, **kw) as cache:
            if not chargram:
                cache.search.text_index = None
            report = evaluate(cache, rows, progress=False)
        return {"served": round(report["recall"], 4), "wrong": round(report["false_hit_rate"], 4)}

    out: dict = {"n": len(rows), "rules_verifier": one()}
    verifier = LearnedVerifier().load()
    for floor in FLOORS:
        out[f"learned_floor_{floor}"] = one(verifier=verifier, candidate_floor=floor)
    for floor in (0.5, 0.6):
        out[f"learned_floor_{floor}_no_chargram"] = one(False, verifier=verifier, candidate_floor=floor)
    return out


def verifier_times(pairs: list[tuple[str, str]], repeats: int) -> dict:
    """``verify_many`` of one query against 1 and 5 cached questions, rules on, no score LRU."""
    from semcache.verify.learned import LearnedVerifier

    verifier = LearnedVerifier(cache_size=0).load()
    out = {}
    for k in (1, 5):
        batches = [(pairs[i][1], [pairs[(i + j) % len(pairs)][0] for j in range(k)])
                   for i in range(repeats + 20)]
        for query, cached in batches[:20]:  # warm-up, not counted
            verifier.verify_many(query, cached)
        times = []
        for query, cached in batches[20:]:
            t0 = time.perf_counter()
            verifier.verify_many(query, cached)
            times.append(time.perf_counter() - t0)
        out[f"{k}_candidates"] = _ms(times)
    return out


def lookup_times(embedder, texts: list[str], queries: list[str]) -> dict:
    """Whole semantic lookups (query embeddings cached) over ``texts`` in one partition."""
    from semcache.cache import SemanticCache
    from semcache.types import CacheRequest, Scope
    from semcache.verify.learned import LearnedVerifier
    from semcache.verify.pair_model import PairModel

    class Counted(PairModel):  # the shipped model, counting the pairs it scores
        scored = 0

        def score(self, pairs):  # type: ignore[no-untyped-def]
            Counted.scored += len(pairs)
            return super().score(pairs)

    scope, out = Scope(tenant="bench", model="m"), {}
    embedder.embed(texts + queries)
    learned = LearnedVerifier(Counted.load(), cache_size=0)
    for name, verifier in (("rules", None), ("learned", learned)):
        with tempfile.TemporaryDirectory() as tmp, SemanticCache(
                f"sqlite:///{tmp}/l.db", embedder=embedder, stats_interval=0, verifier=verifier) as cache:
            for text in texts:
                cache.store(CacheRequest(text, scope, category="other"), {"a": 1})
            for q in queries[:20]:  # warm-up, not counted
                cache.lookup_detailed(CacheRequest(q, scope, category="other"))
            times, hits, Counted.scored = [], 0, 0
            for q in queries:
                t0 = time.perf_counter()
                hits += cache.lookup_detailed(CacheRequest(q, scope, category="other")).hit is not None
                times.append(time.perf_counter() - t0)
            out[name] = {"n": len(queries), "hits": hits, **_ms(times)}
        out["learned_pairs_scored_per_lookup"] = round(Counted.scored / len(queries), 2)
    out["added_p50_ms"] = round(out["learned"]["p50_ms"] - out["rules"]["p50_ms"], 3)
    out["added_p99_ms"] = round(out["learned"]["p99_ms"] - out["rules"]["p99_ms"], 3)
    return out


def orphan_typos(embedder, verifier, split: str = "heldout", floor: float = 0.4,
                 partition_size: int = 1000) -> dict:
    """Misspelled queries of ``split`` whose seed question (and the rewordings the pair files
    give) is not cached: a hit is a wrong answer unless another seed rewords the same question.
    The cache holds other questions of the pair files."""
    from semcache.cache import SemanticCache
    from semcache.types import CacheRequest, Scope

    rows = [json.loads(x) for f in ("train", "heldout")
            for x in (ROOT / f"datasets/pairs/{f}.jsonl").read_text().splitlines() if x]
    typos = [r for r in rows if r["split"] == split and r["kind"] == "typo"]
    # leave out the seeds' rows, and any row sharing a question with them (a seed's question
    # can reappear under another seed)
    gone = {t for r in rows if r["seed"] in {x["seed"] for x in typos} for t in (r["cached"], r["query"])}
    texts = sorted({t for r in rows if not r.get("typo_edits") and not {r["cached"], r["query"]} & gone
                    for t in (r["cached"], r["query"])})[:partition_size]
    scope, wrong = Scope(tenant="orphans", model="m"), 0
    with tempfile.TemporaryDirectory() as tmp, SemanticCache(
            f"sqlite:///{tmp}/o.db", embedder=embedder, stats_interval=0, verifier=verifier,
            candidate_floor=floor) as cache:
        for text in texts:
            cache.store(CacheRequest(text, scope, category="other"), {"a": 1})
        for r in typos:
            wrong += cache.lookup_detailed(CacheRequest(r["query"], scope, category="other")).hit is not None
    return {"cached": len(texts), "queries": len(typos), "wrong_hits": wrong,
            "wrong_rate": round(wrong / len(typos), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/verifier_candidates.json")
    ap.add_argument("--repeats", type=int, default=300)
    ap.add_argument("--skip-floors", action="store_true", help="leave out the floor sweep (minutes)")
    args = ap.parse_args(argv)
    from semcache.parts import default_embedder

    texts, queries = corpus_and_queries()
    result: dict = {"machine": f"{platform.machine()} {os.cpu_count()} cores",
                    "chargram": chargram_figures(texts, queries)}
    heldout = [json.loads(x) for x in (ROOT / "datasets/pairs/heldout.jsonl").read_text().splitlines() if x]
    result["verify_many_ms"] = verifier_times([(r["cached"], r["query"]) for r in heldout], args.repeats)
    embedder = default_embedder()
    result["lookup_ms"] = lookup_times(embedder, texts[:1000], [r["query"] for r in heldout][:args.repeats])
    if not args.skip_floors:
        result["floor_sweep_dev"] = floor_sweep(embedder, _dev_rows())
    from semcache.verify.learned import LearnedVerifier

    learned = LearnedVerifier().load()
    for split in ("dev", "heldout"):  # dev picks the floor; held-out is reported
        result[f"orphan_typos_{split}"] = {"rules": orphan_typos(embedder, None, split), **{
            f"learned_floor_{f}": orphan_typos(embedder, learned, split, f) for f in (0.4, 0.5, 0.6)}}
    # The cores are shared: the load says how far the timings are from an idle machine.
    result["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
