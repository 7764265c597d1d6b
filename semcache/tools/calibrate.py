"""Calibrate per-category thresholds from labelled pairs (``semcache calibrate``).

For each row, the similarity of the two questions and whether everything after
the threshold (context, verifier) accepts the pair are computed exactly as a
lookup would (``SemanticCache.judge``). Then, per category, the smallest
threshold whose hits reach the target precision is chosen. Categories with too
few labelled hits fall back to the threshold calibrated on all rows pooled,
which is also what the ``--global`` baseline uses for every category.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import numpy as np
import typer
import yaml

from semcache.lookup.context import search_text
from semcache.lookup.policies import PolicySet
from semcache.lookup.turns import as_turns
from semcache.tools.evaluate import EvalRow, load_rows
from semcache.types import CacheRequest, Scope

if TYPE_CHECKING:
    from semcache.cache import SemanticCache


@dataclass(frozen=True, slots=True)
class Scored:
    category: str
    similarity: float
    accepted: bool  # context + verifier accept the pair
    should_hit: bool


def score_rows(cache: SemanticCache, rows: list[EvalRow], *, trust_category: bool = False) -> list[Scored]:
    """Similarity and post-threshold verdict of every row, through the cache's own components."""
    texts = sorted({t for r in rows for t in (
        r.cached, r.query, *(x.content for x in as_turns(r.history_cached + r.history_query)),
        search_text(r.cached, r.history_cached), search_text(r.query, r.history_query))})
    vectors = dict(zip(texts, cache.embedder.embed(texts), strict=True))
    out: list[Scored] = []
    for i, row in enumerate(rows):
        scope = Scope(tenant=f"calibrate-{i}")
        category = row.category if trust_category else None
        query = CacheRequest(row.query, scope, history=row.history_query, category=category)
        q_vec = vectors[search_text(row.query, row.history_query)]
        cat = cache.categorise(query, q_vec)
        q_hist = cache.context.embed(query.history, lambda ts: np.stack([vectors[t] for t in ts]))
        c_turns = cache.context.window(row.history_cached)
        c_hist = cache.context.embed(c_turns, lambda ts: np.stack([vectors[t] for t in ts]))
        sim = float(np.dot(q_vec, vectors[search_text(row.cached, row.history_cached)]))
        rejection = cache.judge(query, q_hist, row.cached, c_turns, c_hist, category=cat)
        out.append(Scored(cat, sim, rejection is None, row.should_hit))
    return out


def best_threshold(scored: list[Scored], target: float, lo: float, hi: float) -> float | None:
    """Smallest threshold in [lo, hi] whose hits reach ``target`` precision, else None."""
    candidates = sorted({lo, hi, *[s.similarity for s in scored if lo <= s.similarity <= hi]})
    for t in candidates:
        hits = [s for s in scored if s.accepted and s.similarity >= t]
        if not hits:
            return t
        precision = sum(s.should_hit for s in hits) / len(hits)
        if precision >= target:
            return t
    return None


def calibrate(cache: SemanticCache, rows: list[EvalRow], *, target_precision: float = 0.98,
              min_support: int = 8, pooled_only: bool = False,
              trust_category: bool = False) -> tuple[PolicySet, dict[str, Any]]:
    if not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target precision must be in (0, 1], got {target_precision!r}")
    scored = score_rows(cache, rows, trust_category=trust_category)
    base = cache.policies
    lo = min(p.min_threshold for _, p in base.items())
    hi = max(p.max_threshold for _, p in base.items())
    pooled = best_threshold(scored, target_precision, lo, hi) or hi
    report: dict[str, Any] = {"target_precision": target_precision, "pooled_threshold": pooled,
                              "categories": {}}
    overrides: dict[str, dict[str, float]] = {}
    for category, policy in base.items():
        rows_c = [s for s in scored if s.category == category]
        positives = sum(s.should_hit for s in rows_c)
        chosen, source = pooled, "pooled"
        if not pooled_only and positives >= min_support:
            found = best_threshold(rows_c, target_precision, lo, hi)
            if found is not None:
                chosen, source = found, "category"
        overrides[category] = {"threshold": round(chosen, 4),
                               "min_threshold": round(min(policy.min_threshold, chosen), 4),
                               "max_threshold": round(max(policy.max_threshold, chosen), 4)}
        report["categories"][category] = {"threshold": chosen, "source": source, "rows": len(rows_c),
                                          "positives": positives}
    return base.with_overrides(overrides), report


def calibrate_context(cache: SemanticCache, rows: list[EvalRow], *, lo: float = 0.40, hi: float = 0.95,
                      step: float = 0.01) -> tuple[float, dict[str, Any]]:
    """The context threshold (cosine a referring turn's assistant turn and topic must reach).

    Each grid threshold is scored through ``cache.judge`` with the cache's own
    verifier, window and category thresholds; the one with the best accuracy wins,
    ties going to the higher threshold (precision first). ``cache.context`` is
    restored afterwards. Rows without history are ignored.
    """
    rows = [r for r in rows if r.history_cached or r.history_query]
    if not rows:
        raise ValueError("calibrate_context needs rows with history_cached/history_query")
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"need 0 < lo <= hi <= 1, got lo={lo!r} hi={hi!r}")
    original = cache.context
    curve: list[dict[str, float]] = []
    try:
        for t in np.round(np.arange(lo, hi + 1e-9, step), 4):
            cache.context = original.with_threshold(float(t))
            scored = score_rows(cache, rows)
            hits = [s.accepted and s.similarity >= cache.policy(s.category).threshold for s in scored]
            correct = sum(h == s.should_hit for h, s in zip(hits, scored, strict=True))
            tp = sum(h and s.should_hit for h, s in zip(hits, scored, strict=True))
            curve.append({"threshold": float(t), "accuracy": correct / len(rows),
                          "precision": tp / sum(hits) if any(hits) else 1.0,
                          "recall": tp / max(1, sum(s.should_hit for s in scored))})
    finally:
        cache.context = original
    best = max(curve, key=lambda c: (c["accuracy"], c["threshold"]))
    return best["threshold"], {"rows": len(rows), "chosen": best, "curve": curve,
                               "rule": "best accuracy, ties to the higher threshold"}


def calibrate_cmd(
    pairs: Annotated[Path, typer.Argument(help="labelled JSONL pairs (the `semcache eval` format)")],
    out: Annotated[Path, typer.Option("--out", help="policy file to write (YAML)")] = Path("policies.yaml"),
    target_precision: Annotated[float, typer.Option(help="precision each category must reach")] = 0.98,
    policies: Annotated[Optional[Path], typer.Option(help="base policy file (TTLs, quotas are kept)")] = None,  # noqa: UP045
    pooled: Annotated[bool, typer.Option("--global", help="one threshold for every category (baseline)")] = False,
    no_verifier: Annotated[bool, typer.Option("--no-verifier", help="calibrate without the verifier")] = False,
    trust_category: Annotated[bool, typer.Option("--trust-category", help="use each row's category")] = False,
) -> None:
    """Write a policy file whose per-category thresholds reach a target precision."""
    from semcache.cache import SemanticCache
    from semcache.verify.base import PassThroughVerifier

    try:
        rows = load_rows(pairs)
    except ValueError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    with tempfile.TemporaryDirectory(prefix="semcache-calibrate-") as tmp:
        url = f"sqlite:///{os.path.join(tmp, 'calibrate.db')}"
        with SemanticCache(url, policies=policies, stats_interval=0,
                           verifier=PassThroughVerifier() if no_verifier else None) as cache:
            result, report = calibrate(cache, rows, target_precision=target_precision,
                                       pooled_only=pooled, trust_category=trust_category)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(result.to_mapping(), sort_keys=False), encoding="utf-8")
    for category, info in report["categories"].items():
        typer.echo(f"{category:<16} threshold {info['threshold']:.3f} ({info['source']}, "
                   f"{info['rows']} rows, {info['positives']} positives)")
    typer.echo(f"policy file written to {out}")
