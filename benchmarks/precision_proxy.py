"""What the verifier adds per lookup, through the proxy: ``semcache serve`` processes with
``SEMCACHE_VERIFIER`` = none, hardneg and learned, in front of the fake upstream.

Each proxy stores the same cached questions (the held-out pairs' ``cached`` side, one scope),
then gets the same queries (their ``query`` side: paraphrases, typos, fillers, traps), sent
sequentially over one keep-alive connection per proxy, interleaved query by query so the
machine's load falls on every configuration alike. Timed requests carry ``no-store``, so the
cache never grows and every lookup sees the same candidates; a miss still calls the upstream.
Warm-up queries are not counted. The candidates the learned verifier scores per lookup are
counted in process, on a cache holding the same questions (the proxy does not report them),
with the time ``verify_many`` takes per lookup there (score LRU off).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

VERIFIERS = ("none", "hardneg", "learned")
AUTH = {"Authorization": "Bearer EMPTY"}
NO_STORE = {"x-semcache-control": "no-store", **AUTH}


def workload(raw: list[dict[str, Any]], stored: int, queries: int) -> tuple[list[str], list[str]]:
    """``stored`` distinct cached questions and up to ``queries`` distinct queries asked of them
    (none identical to a stored text, so none is an exact hit)."""
    cached = list(dict.fromkeys(r["cached"] for r in raw))[:stored]
    kept = set(cached)
    asked = list(dict.fromkeys(r["query"] for r in raw if r["cached"] in kept and r["query"] not in kept))
    return cached, asked[:queries]


def _chat(text: str) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": text}], "max_tokens": 16}


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3) if values else float("nan")


def _start(tmp: Path) -> tuple[list[Any], dict[str, str]]:
    from proxy import spawn, wait_up

    from tests.fixtures.vllm import free_port

    procs, urls = [], {}
    port = free_port()
    procs.append(spawn(["-m", "tests.fixtures.upstream", "--port", str(port)], tmp / "fake.log"))
    upstream = f"http://127.0.0.1:{port}"
    wait_up(f"{upstream}/v1/models", procs[-1])
    for kind in VERIFIERS:
        port = free_port()
        procs.append(spawn(["-m", "semcache.adapters.proxy.cli", "--upstream", upstream, "--port", str(port),
                            "--db", f"sqlite:///{tmp}/{kind}.db", "--log-level", "warning"],
                           tmp / f"proxy-{kind}.log", env={"SEMCACHE_VERIFIER": kind}))
        urls[kind] = f"http://127.0.0.1:{port}"
    for kind, proc in zip(VERIFIERS, procs[1:], strict=True):
        wait_up(f"{urls[kind]}/healthz", proc)
    return procs, urls


def _timed(clients: dict[str, Any], texts: list[str]) -> dict[str, list[tuple[float, str]]]:
    """(ms, outcome) per query and configuration, interleaved query by query."""
    out: dict[str, list[tuple[float, str]]] = {k: [] for k in clients}
    for text in texts:
        for kind, client in clients.items():
            start = time.perf_counter()
            resp = client.post("/v1/chat/completions", json=_chat(text), headers=NO_STORE)
            ms = (time.perf_counter() - start) * 1e3
            resp.raise_for_status()
            outcome = resp.headers.get("x-semcache", "?")
            match = resp.headers.get("x-semcache-match")
            out[kind].append((ms, f"{outcome}:{match}" if match else outcome))
    return out


def candidate_counts(stored: list[str], asked: list[str]) -> dict[str, Any]:
    """Candidates the learned verifier scores per lookup, counted in process."""
    from semcache.cache import SemanticCache
    from semcache.settings import CoreSettings
    from semcache.types import CacheRequest, Scope
    from semcache.verify.learned import LearnedVerifier

    class Counting(LearnedVerifier):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.calls: list[int] = []
            self.ms: list[float] = []

        def verify_many(self, query, cached, **kwargs):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            try:
                return super().verify_many(query, cached, **kwargs)
            finally:
                self.ms.append((time.perf_counter() - start) * 1e3)
                self.calls.append(len(cached))

    core = CoreSettings()
    verifier = Counting(rules=core.verifier_rules, cache_size=0).load()  # no score LRU: every pair scored
    per_lookup, verify_ms = [], []
    with tempfile.TemporaryDirectory(prefix="semcache-cands-") as tmp, \
            SemanticCache(f"sqlite:///{tmp}/c.db", stats_interval=0, verifier=verifier,
                          candidate_floor=core.candidate_floor) as cache:
        scope = Scope(tenant="latency", model="fake-model")
        for i, text in enumerate(stored):
            cache.store(CacheRequest(text, scope), {"i": i})
        for text in asked:
            before = len(verifier.calls)
            cache.lookup_detailed(CacheRequest(text, scope))
            per_lookup.append(sum(verifier.calls[before:]))
            verify_ms.append(sum(verifier.ms[before:]))
    hist = Counter(per_lookup)
    by_count = {str(k): _pct([m for m, n in zip(verify_ms, per_lookup, strict=True) if n == k], 50)
                for k in sorted(hist) if k}
    return {"mean": round(statistics.fmean(per_lookup), 3), "max": max(per_lookup),
            "histogram": {str(k): hist[k] for k in sorted(hist)},
            "in_process_verify_ms": {"p50_ms": _pct(verify_ms, 50), "p99_ms": _pct(verify_ms, 99),
                                     "p50_ms_by_candidates": by_count,
                                     "note": "verify_many time per lookup in process, score LRU off"}}


def _report(times: dict[str, list[tuple[float, str]]]) -> dict[str, Any]:
    # an exact hit in any configuration never reaches the verifier: left out of every figure
    exact = {i for rows in times.values() for i, (_, o) in enumerate(rows) if o == "hit:exact"}
    times = {k: [x for i, x in enumerate(rows) if i not in exact] for k, rows in times.items()}
    out: dict[str, Any] = {"exact_hits_left_out": len(exact)}
    for kind, rows in times.items():
        ms = [m for m, _ in rows]
        outcomes = Counter(o for _, o in rows)
        by_outcome = {o: {"n": n, "p50_ms": _pct([m for m, x in rows if x == o], 50)} for o, n in outcomes.items()}
        out[kind] = {"n": len(ms), "p50_ms": _pct(ms, 50), "p99_ms": _pct(ms, 99), "by_outcome": by_outcome}
    for kind in ("hardneg", "learned"):
        paired = [a - b for (a, _), (b, _) in zip(times[kind], times["none"], strict=True)]
        out[f"{kind}_added"] = {
            "p50_ms": round(out[kind]["p50_ms"] - out["none"]["p50_ms"], 3),
            "p99_ms": round(out[kind]["p99_ms"] - out["none"]["p99_ms"], 3),
            "paired_difference_p50_ms": _pct(paired, 50), "paired_difference_p99_ms": _pct(paired, 99)}
    return out


def proxy_latency(raw: list[dict[str, Any]], stored: int = 200, queries: int = 300, warmup: int = 20) -> dict[str, Any]:
    """Per-lookup latency with each verifier through the proxy, and what the learned one adds."""
    import httpx

    from tests.fixtures.vllm import stop_process_group

    cached, asked = workload(raw, stored, queries + warmup)
    result: dict[str, Any] = {"cpus": os.cpu_count(), "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
                              "stored_questions": len(cached), "timed_queries": len(asked) - warmup,
                              "warmup_queries": warmup, "targets_added": {"p50_ms": 10.0, "p99_ms": 25.0}}
    with tempfile.TemporaryDirectory(prefix="semcache-precision-proxy-") as tmp:
        procs, urls = _start(Path(tmp))
        try:
            clients = {k: httpx.Client(base_url=u, timeout=60) for k, u in urls.items()}
            for text in cached:  # seed: misses, stored
                for client in clients.values():
                    client.post("/v1/chat/completions", json=_chat(text), headers=AUTH).raise_for_status()
            time.sleep(1.0)
            _timed(clients, asked[:warmup])
            times = _timed(clients, asked[warmup:])
            for client in clients.values():
                client.close()
        finally:
            for proc in reversed(procs):
                stop_process_group(proc)
    result.update(_report(times))
    result["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["learned_candidates_scored_per_lookup"] = candidate_counts(cached, asked[warmup:])
    return result
