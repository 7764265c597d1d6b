"""Hit precision: semcache versus a global threshold and GPTCache, in one run.

Systems, all on the same all-MiniLM-L6-v2 embeddings:

* ``global``: one cosine threshold, no verifier (how GPTCache, RedisVL, LiteLLM and
  LangChain's Redis cache decide), calibrated on the dev set the same way as
  semcache's thresholds (``semcache.tools.calibrate`` with ``--global``, no verifier);
* ``gptcache``: GPTCache 0.1.44 from PyPI, with our embedder, faiss and its
  ``SearchDistanceEvaluation`` at the same global threshold;
* ``semcache``: per-category thresholds calibrated on dev + the verifier + context,
  run through the production lookup path (``semcache.tools.evaluate``). The context
  threshold (cosine each aligned earlier turn must reach) is calibrated on the
  ``calibration`` half of the contextual rows only (``semcache.tools.calibrate.
  calibrate_context``); contextual figures are reported on the whole set and on
  each half, so the ``report`` half is measured on rows the calibration never saw.

Data: our dev and held-out hard-negative sets (held-out never used for tuning),
GPTCache's mock_data (positives only: recall), the multi-turn contextual set built
from MeanCache's data, and vLLM Semantic Router's cache cases (positives only).

    python benchmarks/precision.py --out benchmarks/results/precision.json

Every pair gets its own scope, hence its own index partition: the caches here use the faiss
index, because an hnswlib graph costs about 2.6 MB however few entries it holds.

It also times the conversation logic (``conversation_latency``): the labelled conversations of
``datasets/conversations`` looked up with their history and without it, in the same run.
``--only-conversations`` runs that part alone:

    python benchmarks/precision.py --only-conversations --out benchmarks/results/precision_conversations.json

``--issue23`` runs issue 23's report instead (``precision_peers``): the learned verifier as
shipped beside the rule verifier, a global threshold set on dev at <= 1% wrong, GPTCache's
default and "last user message only", on held-out and dev pairs and conversations and the
shared sets, plus the verifier's added latency through the proxy:

    python benchmarks/precision.py --issue23 --out benchmarks/results/precision_learned.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from semcache.cache import SemanticCache
from semcache.index import FaissIndex
from semcache.lookup.context import ContextMatcher, search_text
from semcache.lookup.followup import clear_memos, context_key
from semcache.tools.calibrate import calibrate, calibrate_context, score_rows
from semcache.tools.evaluate import EvalRow, evaluate, load_rows, metrics, parse_row
from semcache.types import CacheRequest, Scope
from semcache.verify import HardNegativeVerifier
from semcache.verify.base import PassThroughVerifier

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "benchmarks" / "data"))


def datasets(limit_mock: int) -> tuple[dict[str, list], list[dict]]:
    """The labelled sets, and the contextual rows as built (with ``split`` and the label audit)."""
    from contextual import build_rows  # type: ignore[import-not-found]

    contextual = build_rows()
    out = {"dev": load_rows(ROOT / "benchmarks/data/hardneg_dev.jsonl"),
           "heldout": load_rows(ROOT / "benchmarks/data/hardneg_heldout.jsonl"),
           "contextual": [parse_row(r, i) for i, r in enumerate(contextual, 1)]}
    mock = json.loads((SHARED / "gptcache_mock/mock_data.json").read_text())[:limit_mock]
    out["gptcache_mock"] = [parse_row({"cached": m["origin"], "query": m["similar"], "should_hit": True,
                                       "kind": "paraphrase"}, i) for i, m in enumerate(mock, 1)]
    cases = json.loads((SHARED / "semantic_router_cases/cache_cases.json").read_text())
    router = []
    for case in cases if isinstance(cases, list) else cases.values():
        original = case["original_question"]
        for para in case["similar_questions"]:
            router.append(parse_row({"cached": original, "query": para, "should_hit": True,
                                     "category": None, "kind": "paraphrase"}, len(router) + 1))
    out["semantic_router"] = router
    return out, contextual


def pr_curve(sims: np.ndarray, accepted: np.ndarray, labels: np.ndarray) -> list[dict]:
    curve = []
    for t in np.round(np.arange(0.50, 1.0001, 0.01), 2):
        hit = (sims >= t) & accepted
        tp, fp = int((hit & labels).sum()), int((hit & ~labels).sum())
        curve.append({"threshold": float(t), "precision": tp / (tp + fp) if tp + fp else 1.0,
                      "recall": tp / int(labels.sum()) if labels.sum() else 1.0})
    return curve


def global_threshold_report(sims: np.ndarray, labels: np.ndarray, threshold: float, rows) -> dict:
    report = metrics(zip(labels.tolist(), (sims >= threshold).tolist(), strict=True))
    report["per_kind"] = {}
    kinds = sorted({r.kind or "unlabelled" for r in rows})
    for kind in kinds:
        idx = [i for i, r in enumerate(rows) if (r.kind or "unlabelled") == kind]
        report["per_kind"][kind] = metrics((bool(labels[i]), bool(sims[i] >= threshold)) for i in idx)
    return report


class TimedContext(ContextMatcher):
    """The cache's context matcher, adding up the time its lookups spend in it."""

    spent = 0.0

    def search_gate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return super().search_gate(*args, **kwargs)
        finally:
            self.spent += time.perf_counter() - t0

    def match(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return super().match(*args, **kwargs)
        finally:
            self.spent += time.perf_counter() - t0


def conversation_latency(cache: SemanticCache, rows: list[EvalRow], repeats: int = 3) -> dict:
    """Per lookup of a conversation: the time spent in the conversation logic (the exact key's
    referent, the search text, the search gate, context matching), the whole lookup with the
    history, and the same question without history, in one run. A warm-up pass, not counted,
    puts every text in the embedder's LRU, so the figures are the logic, not the model; the
    logic's own memos are emptied before each lookup (cold)."""
    original, cache.context = cache.context, TimedContext(threshold=cache.context.threshold,
                                                          max_turns=cache.context.max_turns)
    timed = cache.context
    evaluate(cache, rows, progress=False)
    times: dict[str, list[float]] = {"logic": [], "with_history": [], "without_history": []}
    for rep in range(repeats):
        for i, row in enumerate(rows):
            for name, stored_history, asked_history in (("with_history", row.history_cached, row.history_query),
                                                        ("without_history", (), ())):
                scope = Scope(tenant=f"latency-{rep}-{i}-{name}")
                cache.store(CacheRequest(row.cached, scope, history=stored_history), {"i": i})
                request = CacheRequest(row.query, scope, history=asked_history)
                clear_memos()  # cold: nothing of this conversation computed before
                t0 = time.perf_counter()
                context_key(request.prompt, request.history)  # what exact_key adds
                search_text(request.prompt, request.history)
                keys, timed.spent = time.perf_counter() - t0, 0.0
                t0 = time.perf_counter()
                cache.lookup_detailed(request)
                times[name].append((time.perf_counter() - t0) * 1e3)
                if name == "with_history":
                    times["logic"].append((keys + timed.spent) * 1e3)
    cache.context = original
    out: dict = {"lookups_each": len(times["with_history"]), "rows": len(rows), "repeats": repeats}
    for name, values in times.items():
        out[name] = {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99))}
    out["added_p50_ms"] = out["logic"]["p50_ms"]
    out["whole_lookup_difference_p50_ms"] = out["with_history"]["p50_ms"] - out["without_history"]["p50_ms"]
    out["target_added_p50_ms"] = 1.0
    return out


def conversation_rows() -> list[EvalRow]:
    rows = []
    for split in ("dev", "heldout"):
        lines = (ROOT / "datasets/conversations" / f"{split}.jsonl").read_text().splitlines()
        rows += [parse_row(json.loads(line), i) for i, line in enumerate(lines, 1) if line]
    return rows


def gptcache_run(rows, embed, threshold: float) -> dict:
    """GPTCache itself: one fresh cache per row (rows are judged in isolation)."""
    try:
        from gptcache import Cache, Config
        from gptcache.adapter.api import get, put
        from gptcache.manager import CacheBase, VectorBase, get_data_manager
        from gptcache.processor.pre import get_prompt
        from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation
    except ImportError as exc:  # pragma: no cover - reported in the JSON
        return {"error": f"gptcache not installed: {exc}"}
    # GPTCache maps its threshold t onto the score range of SearchDistanceEvaluation
    # (max_distance 4 - squared L2); for unit vectors that is cos >= 2t - 1.
    t_gpt = (threshold + 1.0) / 2.0
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="gptcache-") as tmp:
        for i, row in enumerate(rows):
            cache = Cache()
            dm = get_data_manager(CacheBase("sqlite", sql_url=f"sqlite:///{tmp}/g{i}.db"),
                                  VectorBase("faiss", dimension=384, index_path=f"{tmp}/g{i}.index"))
            cache.init(pre_embedding_func=get_prompt, embedding_func=lambda text, **_: embed(text),
                       data_manager=dm,
                       similarity_evaluation=SearchDistanceEvaluation(),
                       config=Config(similarity_threshold=t_gpt))
            put(row.cached, "placeholder", cache_obj=cache)
            outcomes.append((row.should_hit, get(row.query, cache_obj=cache) is not None))
            dm.close()
    report = metrics(outcomes)
    report["gptcache_similarity_threshold"] = t_gpt
    return report


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in ("dev", "heldout", "contextual") if n in curves]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4.2))
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        for system, style in (("global", "--"), ("semcache_verifier", "-")):
            c = curves[name][system]
            ax.plot([p["recall"] for p in c], [p["precision"] for p in c], style, label=system)
        for system, marker in (("semcache_calibrated", "o"), ("global_calibrated", "s"), ("gptcache", "^")):
            point = curves[name].get(system)
            if point:
                ax.plot([point["recall"]], [point["precision"]], marker, label=system)
        ax.axhline(0.98, color="grey", lw=0.6)
        ax.set_title(name)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_ylim(0.4, 1.01)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None,
                    help="default: benchmarks/results/precision.json (--issue23: precision_learned.json)")
    ap.add_argument("--target-precision", type=float, default=0.98)
    ap.add_argument("--mock", type=int, default=999, help="GPTCache mock pairs to use")
    ap.add_argument("--no-gptcache", action="store_true")
    ap.add_argument("--only-conversations", action="store_true", help="only the conversation latency")
    ap.add_argument("--issue23", action="store_true", help="issue 23's report (precision_peers)")
    ap.add_argument("--no-latency", action="store_true", help="--issue23 without the proxy latency")
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="--issue23 with another pair-model folder (export_onnx.py --dest)")
    args = ap.parse_args()
    args.out = args.out or ROOT / "benchmarks/results" / ("precision_learned.json" if args.issue23 else "precision.json")
    if args.issue23:
        from precision_peers import run

        report = run(gptcache=not args.no_gptcache, latency=not args.no_latency, model_dir=args.model_dir)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report["targets_check"], indent=2))
        return
    if args.only_conversations:
        with tempfile.TemporaryDirectory(prefix="semcache-precision-") as tmp, \
                SemanticCache(f"sqlite:///{tmp}/conv.db", stats_interval=0, index=FaissIndex(384)) as cache:
            latency = {"embedder": cache.embedder_id, **conversation_latency(cache, conversation_rows())}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"conversation_latency": latency}, indent=2))
        print(json.dumps(latency, indent=2))
        return

    data, ctx_raw = datasets(args.mock)
    ctx_split = [r["split"] for r in ctx_raw]
    ctx_audit = [r.get("same_recorded_answer") for r in ctx_raw]
    ctx_calibration = [r for r, s in zip(data["contextual"], ctx_split, strict=True) if s == "calibration"]
    result: dict = {"target_precision": args.target_precision, "datasets": {k: len(v) for k, v in data.items()}}
    with tempfile.TemporaryDirectory(prefix="semcache-precision-") as tmp:
        with SemanticCache(f"sqlite:///{tmp}/a.db", stats_interval=0, index=FaissIndex(384)) as cache:
            policies, cal_report = calibrate(cache, data["dev"], target_precision=args.target_precision)
            result["calibration"] = cal_report
            embedder = cache.embedder
        with SemanticCache(f"sqlite:///{tmp}/b.db", stats_interval=0, embedder=embedder, index=FaissIndex(384),
                           verifier=PassThroughVerifier()) as plain:
            _, global_report = calibrate(plain, data["dev"], target_precision=args.target_precision,
                                         pooled_only=True)
            global_t = global_report["pooled_threshold"]
            # the best-accuracy global threshold on dev, for reference
            dev_scored = score_rows(plain, data["dev"])
            sims = np.array([s.similarity for s in dev_scored])
            labels = np.array([s.should_hit for s in dev_scored])
            grid = np.round(np.arange(0.5, 1.0, 0.005), 3)
            accs = [float(((sims >= t) == labels).mean()) for t in grid]
            best_acc_t = float(grid[int(np.argmax(accs))])
        result["global_threshold"] = {"calibrated_for_precision": global_t, "best_accuracy": best_acc_t,
                                      "best_accuracy_value": max(accs)}
        # the context threshold, on the calibration half of the contextual rows only
        with SemanticCache(f"sqlite:///{tmp}/ctx.db", stats_interval=0, embedder=embedder, index=FaissIndex(384),
                           policies=policies) as cache:
            context_t, context_report = calibrate_context(cache, ctx_calibration)
        result["context_calibration"] = {"default_threshold": ContextMatcher().threshold,
                                         "threshold": context_t, **context_report}
        curves: dict = {}
        verifier = HardNegativeVerifier()
        with SemanticCache(f"sqlite:///{tmp}/c.db", stats_interval=0, embedder=embedder, index=FaissIndex(384),
                           policies=policies, verifier=verifier,
                           context=ContextMatcher(threshold=context_t)) as cache:
            for name, rows in data.items():
                entry: dict = {}
                t0 = time.perf_counter()
                entry["semcache"] = evaluate(cache, rows, progress=False)
                entry["semcache"].pop("errors", None)
                entry["semcache"]["seconds"] = time.perf_counter() - t0
                if name == "contextual":
                    for half in ("calibration", "report"):
                        subset = [r for r, s in zip(rows, ctx_split, strict=True) if s == half]
                        split_report = evaluate(cache, subset, progress=False)
                        split_report.pop("errors", None)
                        entry[f"semcache_{half}"] = split_report
                    # label audit: same follow-up under another parent, by whether the data
                    # records the same answer under both parents (see benchmarks/data/contextual.py)
                    audit = {}
                    for same in (True, False):
                        subset = [r for r, a in zip(rows, ctx_audit, strict=True) if a is same]
                        part = evaluate(cache, subset, progress=False)
                        audit["same_recorded_answer" if same else "different_recorded_answers"] = {
                            "n": part["n"], "false_hits": part["hits"]}
                    entry["same_follow_up_audit"] = audit
                scored = score_rows(cache, rows)
                s = np.array([x.similarity for x in scored])
                acc = np.array([x.accepted for x in scored])
                lab = np.array([x.should_hit for x in scored])
                entry["global_calibrated"] = global_threshold_report(s, lab, global_t, rows)
                entry["global_best_accuracy"] = global_threshold_report(s, lab, best_acc_t, rows)
                if not args.no_gptcache:
                    entry["gptcache"] = gptcache_run(rows, embedder.embed_one, global_t)
                curves[name] = {
                    "global": pr_curve(s, np.ones_like(acc), lab),
                    "semcache_verifier": pr_curve(s, acc, lab),
                    "semcache_calibrated": entry["semcache"],
                    "global_calibrated": entry["global_calibrated"],
                    "gptcache": entry.get("gptcache"),
                }
                result[name] = entry
                if name == "contextual":
                    for half in ("calibration", "report"):
                        idx = [i for i, sp in enumerate(ctx_split) if sp == half]
                        entry[f"global_calibrated_{half}"] = global_threshold_report(
                            s[idx], lab[idx], global_t, [rows[i] for i in idx])
                print(f"{name:<16} semcache P={entry['semcache']['precision']:.3f} "
                      f"R={entry['semcache']['recall']:.3f} acc={entry['semcache']['accuracy']:.3f} | "
                      f"global@{global_t:.3f} P={entry['global_calibrated']['precision']:.3f} "
                      f"R={entry['global_calibrated']['recall']:.3f} | gptcache "
                      f"P={entry.get('gptcache', {}).get('precision', float('nan')):.3f} "
                      f"R={entry.get('gptcache', {}).get('recall', float('nan')):.3f}", flush=True)
            result["conversation_latency"] = conversation_latency(cache, conversation_rows())
            # verifier latency on real pairs
            pairs = [(r.query, r.cached) for r in data["dev"] + data["heldout"]]
            cold = HardNegativeVerifier(cache_size=0)
            times = []
            for q, c in pairs * 3:
                t = time.perf_counter()
                cold.verify(q, c)
                times.append((time.perf_counter() - t) * 1e3)
            result["verifier_ms"] = {"p50": float(np.percentile(times, 50)),
                                     "p99": float(np.percentile(times, 99)), "cache": "disabled",
                                     "target_p50": 2.0}
            # follow-ups and their earlier turns, as the context path verifies them
            ctx_pairs = [p for r in data["contextual"] for p in
                         ((r.query, r.cached), *zip([t.content for t in r.history_query],
                                                       [t.content for t in r.history_cached], strict=True))]
            times = []
            for q, c in ctx_pairs * 3:
                t = time.perf_counter()
                cold.verify(q, c, in_context=True)
                times.append((time.perf_counter() - t) * 1e3)
            result["verifier_ms_in_context"] = {"p50": float(np.percentile(times, 50)),
                                                "p99": float(np.percentile(times, 99)),
                                                "cache": "disabled", "pairs": len(ctx_pairs)}
        result["curves"] = {k: {s: v for s, v in c.items() if s in ("global", "semcache_verifier")}
                            for k, c in curves.items()}
    hard = ("negation", "entity_swap", "number_swap")
    for split in ("dev", "heldout"):
        kinds = result[split]["semcache"]["per_kind"]
        fp = sum(kinds[k]["hits"] for k in hard if k in kinds)
        n = sum(kinds[k]["n"] for k in hard if k in kinds)
        result[split]["semcache"]["false_hit_rate_hard_kinds"] = fp / n if n else 0.0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    plot(curves, args.out.with_suffix(".png"))
    print(f"written {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
