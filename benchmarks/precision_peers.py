"""Issue 23's report: the learned verifier beside its peers on every set, and its proxy latency.

``benchmarks/precision.py --issue23`` runs it. Every pair is judged in isolation. Systems
(``precision_systems``): semcache with the learned verifier as shipped and with the rule
verifier, the global threshold set on the dev rows at <= 1% wrong, GPTCache's default, and on
conversation sets the "last user message only" strategy (semcache's learned verifier on the
final user turns, history dropped). Sets (``precision_sets``): held-out and dev pairs, their
typo'd repeats with two or more edits, held-out and dev conversations, ``../shared/data``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from precision_proxy import proxy_latency
from precision_sets import all_sets, is_conversation, last_user_message_only, typo_two_plus
from precision_systems import calibrate_global, cosines, run_global, run_gptcache, run_semcache

from semcache.cache import SemanticCache
from semcache.index import FaissIndex
from semcache.parts import make_verifier
from semcache.settings import CoreSettings
from semcache.tools.evaluate import EvalRow
from semcache.verify.learned import LearnedVerifier
from semcache.verify.pair_model import PairModel

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"pairs_heldout": {"served": 0.85, "wrong": 0.01},
           "pairs_heldout_typo2plus": {"served": 0.90},
           "conversations_heldout": {"served": 0.85, "wrong": 0.03}}


def model_identity(model_dir: Path | None = None) -> dict[str, Any]:
    """Which pair model ran: the ONNX file's size and digest, and its config."""
    folder: Any = model_dir or resources.files("semcache.verify.pair_model")
    data = (folder / "model.onnx").read_bytes()
    commit = subprocess.run(["git", "log", "-1", "--format=%h %cI", "--", "semcache/verify/pair_model"],
                            cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"onnx_bytes": len(data), "onnx_sha256": hashlib.sha256(data).hexdigest()[:16],
            "last_commit": commit if model_dir is None else None,
            "folder": str(model_dir) if model_dir else "shipped", "config": (folder / "config.json").read_text()}


def _row_sets(sets: dict[str, Any]) -> dict[str, list[EvalRow]]:
    """Each set's rows, plus the typo >= 2 edits subsets."""
    out: dict[str, list[EvalRow]] = {}
    for name, labelled in sets.items():
        out[name] = labelled[0]
        subset = typo_two_plus(labelled)
        if subset:
            out[f"{name}_typo2plus"] = subset
    return out


def _one_set(rows: list[EvalRow], caches: dict[str, SemanticCache], threshold: float,
             gptcache: bool) -> dict[str, Any]:
    embedder = caches["semcache_learned"].embedder
    systems: dict[str, Any] = {name: run_semcache(cache, rows) for name, cache in caches.items()}
    systems["global_threshold"] = run_global(cosines(embedder.embed, rows), rows, threshold)
    if gptcache:
        systems["gptcache_default"] = run_gptcache(rows, embedder.embed_one)
    if is_conversation(rows):
        systems["last_user_message_only"] = run_semcache(caches["semcache_learned"], last_user_message_only(rows))
    return {"rows": len(rows), "should_hit": sum(r.should_hit for r in rows), "systems": systems}


def check_targets(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, target in TARGETS.items():
        got = result["sets"][name]["systems"]["semcache_learned"]
        out[name] = {k: {"target": v, "got": got[k], "met": got[k] >= v if k == "served" else got[k] <= v}
                     for k, v in target.items()}
    latency = result.get("proxy_latency", {}).get("learned_added")
    if latency:
        out["proxy_latency_added"] = {k: {"target": v, "got": latency[k], "met": latency[k] <= v}
                                      for k, v in (("p50_ms", 10.0), ("p99_ms", 25.0))}
    return out


def run(*, shared: bool = True, gptcache: bool = True, latency: bool = True,
        model_dir: Path | None = None) -> dict[str, Any]:
    """The whole report (see the module docstring); ``model_dir``: another pair-model folder
    for the learned system (the proxy latency always uses the shipped one)."""
    core = CoreSettings()
    learned_verifier = (make_verifier("learned", rules=core.verifier_rules) if model_dir is None
                        else LearnedVerifier(PairModel.load(model_dir), rules=core.verifier_rules).load())
    sets = all_sets(shared)
    rows = _row_sets(sets)
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]},
        "model": model_identity(model_dir), "targets": TARGETS,
        "settings": {"candidate_floor": core.candidate_floor, "verifier_rules": core.verifier_rules},
        "path": "semcache.tools.evaluate (the `semcache eval` path), each pair in its own scope; "
                "faiss index (one entry per partition: the same decisions as hnsw)"}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="semcache-issue23-") as tmp:
        # faiss, not hnsw: each pair gets its own partition, and an hnswlib graph costs about
        # 2.6 MB however small (its label locks); one entry per partition, so the same results
        learned = SemanticCache(f"sqlite:///{tmp}/l.db", stats_interval=0, candidate_floor=core.candidate_floor,
                                verifier=learned_verifier, index=FaissIndex(384))
        hardneg = SemanticCache(f"sqlite:///{tmp}/h.db", stats_interval=0, embedder=learned.embedder,
                                verifier=make_verifier("hardneg"), index=FaissIndex(384))
        caches = {"semcache_learned": learned, "semcache_hardneg": hardneg}
        with learned, hardneg:
            dev = rows["pairs_dev"]
            calibration = calibrate_global(cosines(learned.embedder.embed, dev), np.array([r.should_hit for r in dev]))
            result["global_threshold_calibration"] = {**calibration, "on": "pairs_dev (final user turns)"}
            result["sets"] = {}
            for name, subset in rows.items():
                result["sets"][name] = _one_set(subset, caches, calibration["threshold"], gptcache)
                learned_report = result["sets"][name]["systems"]["semcache_learned"]
                print(f"{name:<32} learned served {learned_report['served']:.3f} wrong {learned_report['wrong']:.3f}"
                      f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    if latency:
        result["proxy_latency"] = proxy_latency(sets["pairs_heldout"][1])
    result["targets_check"] = check_targets(result)
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result
