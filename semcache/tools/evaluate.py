"""Evaluate the cache's hit/miss decisions on labelled pairs (``semcache eval``).

Each row is judged in isolation, through the production lookup path
(categoriser, policies, context, verifier): the cached question (with its
history) is stored in a fresh scope with a placeholder answer, then the query
(with its history) is looked up in the same scope. ``history_cached`` and
``history_query`` are lists of ``{"role", "content"}`` turns (user, assistant,
tool) or of strings (user turns); any other field of a row is ignored.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from semcache.lookup.context import search_text
from semcache.lookup.turns import ROLES, Turn, as_turns
from semcache.types import CacheRequest, Scope

if TYPE_CHECKING:
    from semcache.cache import SemanticCache


@dataclass(frozen=True, slots=True)
class EvalRow:
    cached: str
    query: str
    should_hit: bool
    category: str | None = None
    kind: str | None = None
    history_cached: tuple[Turn, ...] = ()
    history_query: tuple[Turn, ...] = ()


def _turns(value: Any, where: str) -> tuple[Turn, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list of strings or {{role, content}} objects")
    turns: list[Turn] = []
    for item in value:
        if isinstance(item, str):
            turns.append(Turn("user", item))
        elif (isinstance(item, Mapping) and isinstance(item.get("content"), str)
              and item.get("role", "user") in ROLES):
            turns.append(Turn(item.get("role", "user"), item["content"]))
        else:
            raise ValueError(f"{where}: bad history item {item!r}; expected a string or "
                             f"{{role, content}} with role one of {ROLES}")
    return tuple(turns)


def parse_row(obj: Any, line_no: int) -> EvalRow:
    where = f"line {line_no}"
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for name in ("cached", "query"):
        if not isinstance(obj.get(name), str) or not obj[name].strip():
            raise ValueError(f"{where}: field {name!r} must be a non-empty string")
    if not isinstance(obj.get("should_hit"), bool):
        raise ValueError(f"{where}: field 'should_hit' must be true or false")
    for name in ("category", "kind"):
        if obj.get(name) is not None and not isinstance(obj[name], str):
            raise ValueError(f"{where}: field {name!r} must be a string")
    return EvalRow(obj["cached"], obj["query"], obj["should_hit"], obj.get("category"), obj.get("kind"),
                   _turns(obj.get("history_cached"), f"{where} history_cached"),
                   _turns(obj.get("history_query"), f"{where} history_query"))


def load_rows(path: str | Path) -> list[EvalRow]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"pairs file not found: {path}")
    rows: list[EvalRow] = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: invalid JSON: {exc.msg}") from exc
            rows.append(parse_row(obj, line_no))
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def metrics(outcomes: Iterable[tuple[bool, bool]]) -> dict[str, float | int]:
    """Metrics over (should_hit, did_hit) pairs."""
    tp = fp = tn = fn = 0
    for should, did in outcomes:
        if did and should:
            tp += 1
        elif did:
            fp += 1
        elif should:
            fn += 1
        else:
            tn += 1
    n = tp + fp + tn + fn
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": n, "hits": tp + fp, "precision": precision, "recall": recall, "f1": f1,
        "accuracy": (tp + tn) / n if n else 0.0, "false_hit_rate": fp / (fp + tn) if fp + tn else 0.0,
    }


def evaluate(cache: SemanticCache, rows: list[EvalRow], *, trust_category: bool = False,
             progress: bool = True) -> dict[str, Any]:
    """Run every row through ``cache`` and return the report (see module docstring)."""
    texts = sorted({t for r in rows for t in (
        r.cached, r.query, *(x.content for x in as_turns(r.history_cached + r.history_query)),
        search_text(r.cached, r.history_cached), search_text(r.query, r.history_query))})
    cache.embedder.embed(texts)  # one batched pass; the LRU then serves the lookups
    # a fresh tenant per row *and per call*: rows stored by an earlier call on the same cache
    # must not answer (or shadow) this call's lookups
    run = uuid.uuid4().hex[:12]
    results: list[tuple[EvalRow, bool, Any]] = []
    for i, row in enumerate(tqdm(rows, desc="semcache eval", unit="pair", disable=not progress)):
        scope = Scope(tenant=f"eval-{run}-{i}", model="eval")
        category = row.category if trust_category else None
        stored = CacheRequest(row.cached, scope, history=row.history_cached, category=category)
        query = CacheRequest(row.query, scope, history=row.history_query, category=category)
        entry_id = cache.store(stored, {"placeholder": i})
        result = cache.lookup_detailed(query)
        did_hit = result.hit is not None and result.hit.entry_id == entry_id
        results.append((row, did_hit, result))
        if entry_id is not None:
            cache.invalidate([entry_id])  # a scope per row: its index partition is freed
    report: dict[str, Any] = metrics((r.should_hit, hit) for r, hit, _ in results)
    for key, attr in (("per_category", "category"), ("per_kind", "kind")):
        groups: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
        for row, hit, result in results:
            label = getattr(row, attr) if attr == "kind" else (row.category or result.category)
            groups[label or "unlabelled"].append((row.should_hit, hit))
        report[key] = {name: metrics(v) for name, v in sorted(groups.items())}
    report["errors"] = [
        {"cached": r.cached, "query": r.query, "should_hit": r.should_hit, "kind": r.kind,
         "category": res.category, "similarity": res.best_similarity, "reason": res.reason}
        for r, hit, res in results if hit != r.should_hit
    ][:200]
    return report


def format_table(report: Mapping[str, Any]) -> str:
    head = f"{'group':<24}{'n':>6}{'hits':>6}{'prec':>8}{'recall':>8}{'f1':>8}{'acc':>8}{'FHR':>8}"
    lines = [head, "-" * len(head)]

    def line(name: str, m: Mapping[str, Any]) -> str:
        return (f"{name:<24}{m['n']:>6}{m['hits']:>6}{m['precision']:>8.3f}{m['recall']:>8.3f}"
                f"{m['f1']:>8.3f}{m['accuracy']:>8.3f}{m['false_hit_rate']:>8.3f}")

    lines.append(line("ALL", report))
    for key in ("per_category", "per_kind"):
        for name, m in report[key].items():
            lines.append(line(f"{key[4:]}:{name}", m))
    return "\n".join(lines)
