"""The systems issue 23 compares, each pair judged in isolation, and their served/wrong reports.

- ``semcache_learned`` / ``semcache_hardneg``: the production lookup path
  (``semcache.tools.evaluate.evaluate``, as ``semcache eval``) with ``make_verifier`` and the
  settings' ``candidate_floor`` and ``verifier_rules``, default policies and context;
- ``global_threshold``: one cosine threshold on the final user turns, no verifier, set on the
  dev rows as the lowest one whose wrong (traps served) is at most 1%;
- ``gptcache_default``: GPTCache 0.1.44 itself with its default ``Config()`` (similarity_threshold
  0.8) and ``SearchDistanceEvaluation()`` (max_distance 4, faiss squared L2): a hit needs
  4 - (2 - 2 cos) >= 0.8 * 4, i.e. cos >= 0.6 for unit vectors. Its default ONNX embedder must
  come from the hub, so it gets our MiniLM embeddings.

"Served" is recall on should-hit pairs, "wrong" the false-hit rate on traps.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from semcache.tools.evaluate import EvalRow, evaluate, metrics

GPTCACHE_MAX_DISTANCE = 4.0  # SearchDistanceEvaluation's default


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """Served / wrong of an ``evaluate``-style report, with the served fraction of each kind."""
    out = {"n": report["n"], "served": round(report["recall"], 4), "wrong": round(report["false_hit_rate"], 4),
           "precision": round(report["precision"], 4)}
    if "per_kind" in report:
        out["served_by_kind"] = {k: {"n": m["n"], "served": round(m["hits"] / m["n"], 4)}
                                 for k, m in report["per_kind"].items()}
    return out


def _with_kinds(rows: Sequence[EvalRow], served: Sequence[bool]) -> dict[str, Any]:
    report: dict[str, Any] = metrics((r.should_hit, s) for r, s in zip(rows, served, strict=True))
    groups: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for row, hit in zip(rows, served, strict=True):
        groups[row.kind or "unlabelled"].append((row.should_hit, hit))
    report["per_kind"] = {k: metrics(v) for k, v in sorted(groups.items())}
    return summary(report)


def run_semcache(cache: Any, rows: list[EvalRow]) -> dict[str, Any]:
    """``semcache eval``'s path on ``rows``, timed."""
    start = time.perf_counter()
    report = evaluate(cache, rows, progress=False)
    return {**summary(report), "seconds": round(time.perf_counter() - start, 2)}


def cosines(embed: Callable[[list[str]], np.ndarray], rows: Sequence[EvalRow]) -> np.ndarray:
    """Cosine of each row's final user turns (unit vectors)."""
    texts = sorted({t for r in rows for t in (r.cached, r.query)})
    vec = dict(zip(texts, embed(texts), strict=True))
    return np.array([float(np.dot(vec[r.cached], vec[r.query])) for r in rows])


def calibrate_global(sims: np.ndarray, labels: np.ndarray, max_wrong: float = 0.01) -> dict[str, Any]:
    """The lowest cosine threshold that serves at most ``max_wrong`` of the traps."""
    traps = np.sort(sims[~labels])[::-1]
    allowed = int(np.floor(max_wrong * len(traps)))
    threshold = float(traps[allowed]) + 1e-6 if allowed < len(traps) else float(sims.min())
    served = sims >= threshold
    return {"threshold": round(threshold, 6), "max_wrong": max_wrong, "rows": int(len(sims)),
            "dev_served": round(float(served[labels].mean()), 4),
            "dev_wrong": round(float(served[~labels].mean()), 4)}


def run_global(sims: np.ndarray, rows: Sequence[EvalRow], threshold: float) -> dict[str, Any]:
    return _with_kinds(rows, (sims >= threshold).tolist())


def run_gptcache(rows: Sequence[EvalRow], embed_one: Callable[[str], np.ndarray]) -> dict[str, Any]:
    """GPTCache with its defaults, one fresh cache per row; the final user turns only."""
    try:
        from gptcache import Cache, Config
        from gptcache.adapter.api import get, put
        from gptcache.manager import CacheBase, VectorBase, get_data_manager
        from gptcache.processor.pre import get_prompt
        from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation
    except ImportError as exc:  # reported in the JSON
        return {"error": f"gptcache not installed: {exc}"}
    config = Config()
    served = []
    start = time.perf_counter()
    # every GPTCache Cache registers an atexit flush into its folder: remove the folder after
    # those (atexit runs last-registered first), not before
    tmp = tempfile.mkdtemp(prefix="gptcache-")
    atexit.register(shutil.rmtree, tmp, True)
    for i, row in enumerate(rows):
        cache = Cache()
        manager = get_data_manager(CacheBase("sqlite", sql_url=f"sqlite:///{tmp}/g{i}.db"),
                                   VectorBase("faiss", dimension=384, index_path=f"{tmp}/g{i}.index"))
        cache.init(pre_embedding_func=get_prompt, embedding_func=lambda text, **_: embed_one(text),
                   data_manager=manager, similarity_evaluation=SearchDistanceEvaluation(), config=config)
        put(row.cached, "placeholder", cache_obj=cache)
        served.append(get(row.query, cache_obj=cache) is not None)
        manager.close()
    cos = 2 * config.similarity_threshold - 1  # squared L2 of unit vectors is 2 - 2 cos
    return {**_with_kinds(rows, served), "similarity_threshold": config.similarity_threshold,
            "equivalent_cosine": round(cos, 4), "seconds": round(time.perf_counter() - start, 2)}
