"""End-to-end ``SemanticCache.lookup()`` latency and throughput, embedding included.

Measures on the real MiniLM embedder, SQLite store, HNSW index and verifier:

* single request, exact hit (p50/p99) — target p50 <= 1 ms;
* single request, semantic hit on a reworded, never-seen question — target p50 <= 10 ms;
* throughput of semantic lookups with 32 concurrent callers on distinct queries (so the
  embedding LRU cannot help) — target >= 400 lookups/s; sync threads and asyncio both.

The machine is shared, so the run also records the load average, the process CPU time
per lookup, the batch sizes the micro-batcher formed, and the model's own throughput in
batches of 32 on the same texts (the ceiling for lookups/s at this moment's CPU share).

    python benchmarks/lookup_e2e.py --out benchmarks/results/lookup_e2e.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from semcache.cache import SemanticCache
from semcache.types import CacheRequest, Scope

TOPICS = ["Python", "PostgreSQL", "the Eiffel Tower", "photosynthesis", "Kubernetes", "the French Revolution",
          "black holes", "sourdough bread", "TCP handshakes", "vitamin D", "the stock market", "jazz music",
          "electric cars", "the Roman Empire", "machine learning", "coral reefs"]
ASPECTS = ["history", "main idea", "common mistakes", "best practices", "key facts", "origin", "future",
           "pros and cons", "basic terms", "typical uses"]


def stored_questions() -> list[str]:
    return [f"What is the {a} of {t}?" for t in TOPICS for a in ASPECTS]


TEMPLATES = ["Could you tell me {l}?", "Please tell me {l}.", "I would like to know {l}.", "Do you know {l}?",
             "Can you explain {l}?", "Tell me {l}, please.", "Hey, {l}?", "I wonder {l}.",
             "Would you explain {l}?", "Can you tell me {l}?", "So, {l}?", "Explain {l} to me.",
             "Help me understand {l}.", "Any idea {l}?", "Could you explain {l}?", "Let me know {l}.",
             "Please explain {l}."]


def reworded_queries(questions: list[str]) -> list[tuple[str, str]]:
    """Distinct rewordings (never an exact repeat, never an LRU hit), each with its source."""
    out = [(t.format(l=q[0].lower() + q[1:].rstrip("?")), q) for t in TEMPLATES for q in questions]
    import random

    random.Random(0).shuffle(out)
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def timed(fn, args_list) -> list[float]:
    out = []
    for args in args_list:
        t = time.perf_counter()
        fn(*args)
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/lookup_e2e.json"))
    ap.add_argument("--n", type=int, default=300, help="single-request samples per case")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--requests", type=int, default=1200, help="requests in each throughput run")
    ap.add_argument("--note", default="", help="free text stored in the JSON")
    args = ap.parse_args()
    load_start = os.getloadavg()[0]

    tmp = tempfile.TemporaryDirectory(prefix="semcache-bench-")
    scope = Scope.of("bench", "m")
    with SemanticCache(f"sqlite:///{Path(tmp.name) / 'bench.db'}", stats_interval=1.0) as cache:
        questions = stored_questions()
        vecs = cache.embedder.embed(questions)
        for q, v in zip(questions, vecs, strict=True):
            cache.store(CacheRequest(q, scope), {"answer": q}, vector=v)
        requests = [CacheRequest(q, scope) for q in questions]
        for r in requests[:20]:  # warm-up, not counted
            cache.lookup(r)
        exact = timed(cache.lookup, [(requests[i % len(requests)],) for i in range(args.n)])

        variants = reworded_queries(questions)
        need = 10 + args.n + 2 * args.requests
        if need > len(variants):
            raise SystemExit(f"only {len(variants)} distinct rewordings; lower --n/--requests (need {need})")
        semantic_hits = 0

        def semantic(i: int) -> bool:
            text, source = variants[i]
            result = cache.lookup(CacheRequest(text, scope))
            return result is not None and result.match == "semantic" and result.response == {"answer": source}

        for i in range(10):
            semantic(i)

        def counted(i: int) -> None:
            nonlocal semantic_hits
            semantic_hits += semantic(i)

        semantic_ms = timed(counted, [(10 + i,) for i in range(args.n)])

        # throughput: 32 threads, distinct queries
        start = 10 + args.n
        counter = iter(range(start, start + args.requests))
        lock = threading.Lock()
        thread_hits = [0]

        def worker() -> None:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                if semantic(i):
                    with lock:
                        thread_hits[0] += 1

        batcher = getattr(cache.embedder, "inner", None)
        sizes = getattr(batcher, "batch_sizes", [])
        threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
        sizes.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        thread_rps = args.requests / (time.perf_counter() - t0)
        thread_cpu_ms = (time.process_time() - c0) / args.requests * 1e3
        thread_batches = list(sizes)

        async def async_run() -> float:
            sem = asyncio.Semaphore(args.concurrency)

            async def one(i: int) -> None:
                async with sem:
                    await cache.alookup(CacheRequest(variants[i][0], scope))

            t = time.perf_counter()
            await asyncio.gather(*(one(start + args.requests + i) for i in range(args.requests)))
            return args.requests / (time.perf_counter() - t)

        sizes.clear()
        c0 = time.process_time()
        async_rps = asyncio.run(async_run())
        async_cpu_ms = (time.process_time() - c0) / args.requests * 1e3
        async_batches = list(sizes)
        # The model alone, without LRU or batcher, on the very texts of the semantic-hit run.
        model = getattr(batcher, "embedder", cache.embedder)
        single_embed = timed(model.embed_one, [(variants[10 + i][0],) for i in range(100)])
        ceiling_texts = [text for text, _ in variants[10 : 10 + 1024]]
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(ceiling_texts), 32):
            model.embed(ceiling_texts[i : i + 32])
        ceiling_rps = len(ceiling_texts) / (time.perf_counter() - t0)
        ceiling_cpu_ms = (time.process_time() - c0) / len(ceiling_texts) * 1e3

    cores = os.cpu_count() or 1
    result = {
        "load_average_1m_at_start": load_start,
        "load_average_1m_at_end": os.getloadavg()[0],
        "note": args.note,
        "machine": f"{platform.node()} ({platform.processor() or platform.machine()}), CPU only",
        "entries": len(questions),
        "exact_hit_ms": {"p50": pct(exact, 50), "p99": pct(exact, 99), "target_p50": 1.0},
        "semantic_hit_ms": {"p50": pct(semantic_ms, 50), "p99": pct(semantic_ms, 99), "target_p50": 10.0,
                            "hit_rate": semantic_hits / args.n},
        "embedding_only_ms": {"p50": statistics.median(single_embed),
                              "texts": "the texts of the semantic-hit run, model alone (no LRU, no batcher)"},
        "throughput_semantic_lookups_per_s": {"threads": thread_rps, "asyncio": async_rps,
                                              "threads_hit_rate": thread_hits[0] / args.requests,
                                              "concurrency": args.concurrency, "target": 400},
        "cpu_ms_per_lookup": {"threads": thread_cpu_ms, "asyncio": async_cpu_ms},
        "batches": {"threads_mean": float(np.mean(thread_batches)) if thread_batches else None,
                    "asyncio_mean": float(np.mean(async_batches)) if async_batches else None,
                    "threads_count": len(thread_batches), "asyncio_count": len(async_batches)},
        "embedding_ceiling_batch32": {
            "sentences_per_s": ceiling_rps, "cpu_ms_per_sentence": ceiling_cpu_ms,
            "note": "the model alone in batches of 32 on the same queries, in this run: the bound on "
                    "lookups/s at this moment's share of the CPU"},
        "capacity_if_cores_were_free": {
            "lookups_per_s": cores * 1e3 / thread_cpu_ms,
            "embedding_sentences_per_s": cores * 1e3 / ceiling_cpu_ms,
            "note": f"{cores} cores divided by the CPU time per lookup (or per embedded sentence) "
                    "measured above; what this process would reach with the machine to itself"},
        "embedder": cache.embedder_id,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
