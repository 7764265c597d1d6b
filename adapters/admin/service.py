"""``AdminService``: every admin operation in one place, shared by the REST API, the pages and the CLI.

Writes go through the running ``SemanticCache`` when there is one (so its
index, mirror and policies change at once) and straight to the SQL store
otherwise (standalone admin; a proxy in another process picks policy changes
up with :class:`~semcache.adapters.admin.watch.PolicyWatcher`). Every change
is written to the audit log.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from semcache.adapters.admin.entries import (
    EntryFilters,
    list_entries,
    savings_by_model,
    wrong_reports_by,
)
from semcache.adapters.admin.keys_admin import KeyAdmin
from semcache.adapters.admin.pricing import PriceTable
from semcache.adapters.server.audit import AuditLog
from sqlalchemy import delete, func, select

from semcache.lookup.policies import CATEGORIES, Policy, PolicySet
from semcache.storage.admin import POLICY_FIELDS, STATS
from semcache.storage.bounds import retention_age_s
from semcache.storage.engine import write_transaction
from semcache.storage.schema import utcnow
from semcache.storage.store import Store

CacheProvider = Callable[[], Any]


class AdminService:
    """Admin operations on one store, optionally through a live cache."""

    def __init__(self, store: Store, *, cache: CacheProvider | None = None, prices: PriceTable | None = None,
                 policies_file: str | Path | None = None) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"store must be a semcache Store, got {type(store).__name__}")
        self.store = store
        self._cache = cache or (lambda: None)
        self.prices = prices or PriceTable()
        self._policies_file = policies_file
        self.audit = AuditLog(store.engine)
        self.keys = KeyAdmin(store.engine)

    @property
    def cache(self) -> Any | None:
        """The live cache, if this admin runs inside a proxy."""
        return self._cache()

    # -- entries -------------------------------------------------------------------
    def entries(self, filters: EntryFilters, *, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """One page of entries matching ``filters`` (newest first) and the total."""
        return list_entries(self.store.engine, filters, limit=limit, offset=offset)

    def entry(self, entry_id: int) -> dict[str, Any] | None:
        """One entry without its vectors, with the policy that applies to it; None if absent."""
        row = self.store.get_entry(entry_id)
        if row is None:
            return None
        data = {f.name: getattr(row, f.name) for f in dataclasses.fields(row)
                if f.name not in ("embedding", "history_embedding")}
        data["doc_keys"] = list(row.doc_keys)
        data["history"] = list(row.history)
        data["expired"] = row.is_expired(utcnow())
        data["answer"] = answer_text(row.response)
        data["response_text"] = (row.response if isinstance(row.response, str)
                                 else json.dumps(row.response, indent=2, ensure_ascii=False))
        policy = self.policy_set().get(row.category)
        data["policy_threshold"] = policy.threshold
        cache = self.cache
        data["effective_threshold"] = (cache.adaptive.threshold(row.category, policy.threshold,
                                                                policy.max_threshold)
                                       if cache is not None else policy.threshold)
        data["in_index"] = bool(cache is not None and entry_id in cache.mirror)
        return data

    def check_question(self, entry_id: int, question: str) -> dict[str, Any]:
        """Would ``question`` be answered from this entry? Similarity and the verifier's verdict."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError("question must be a non-empty string")
        row = self.store.get_entry(entry_id)
        if row is None:
            raise KeyError(entry_id)
        cache = self.cache
        similarity: float | None = None
        if cache is not None:
            verifier = cache.verifier
            query = np.asarray(cache.embedder.embed_one(question), dtype=np.float32)
            similarity = float(np.dot(query, row.embedding) /
                               (np.linalg.norm(query) * np.linalg.norm(row.embedding) or 1.0))
        else:
            from semcache.verify import HardNegativeVerifier

            verifier = HardNegativeVerifier()
        verdict = verifier.verify(question, row.prompt, category=row.category)
        return {"similarity": similarity, "accepted": verdict.accepted, "reason": verdict.reason,
                "rule": verdict.rule}

    def delete_entry(self, entry_id: int, actor: str) -> bool:
        """Delete one entry; True if it existed."""
        deleted = self._delete_ids([entry_id])
        self.audit.record(actor, "entry.delete", f"entry {entry_id}", count=len(deleted))
        return bool(deleted)

    def mark_wrong(self, entry_id: int, actor: str) -> dict[str, Any]:
        """Report the entry's answer as a wrong hit: counts it and feeds the adaptive threshold."""
        cache = self.cache
        adjustment = None
        if cache is not None and entry_id in cache.mirror:
            adjustment = cache.report_wrong(entry_id)
            reports = self.store.get_entry(entry_id).wrong_reports  # type: ignore[union-attr]
        else:
            reports = self.store.report_wrong(entry_id)  # KeyError when absent
        detail: dict[str, Any] = {"wrong_reports": reports}
        if adjustment is not None:
            detail["threshold"] = {"category": adjustment.category, "old": adjustment.old, "new": adjustment.new}
        self.audit.record(actor, "entry.report_wrong", f"entry {entry_id}", detail=detail, count=1)
        return detail

    # -- invalidation ----------------------------------------------------------------
    def invalidate(self, actor: str, *, ids: Sequence[int] | None = None, filters: EntryFilters | None = None,
                   dry_run: bool = False, confirmed: Sequence[int] | None = None) -> list[int]:
        """Delete entries by id or by filters (tenant, category, model, text, older_than_s).

        With ``dry_run`` nothing is deleted and the ids that would be are returned.
        ``confirmed`` (the ids a dry run showed) limits a filtered deletion to
        those ids, so entries that arrived after the dry run stay. Both are audited.
        """
        if ids is not None:
            ids = sorted(set(int(i) for i in ids))
            if dry_run:
                present = self.store.all_ids()
                affected = [i for i in ids if i in present]
            else:
                affected = self._delete_ids(ids)
            target = f"ids {ids[:20]}" + ("..." if len(ids) > 20 else "")
            detail: dict[str, Any] = {"ids": ids[:1000]}
        else:
            if filters is None or filters.empty:
                raise ValueError("invalidation needs entry ids or at least one filter")
            if filters.newer_than_s is not None:
                raise ValueError("invalidation filters by age use older_than_s only")
            kw = dict(tenant=filters.tenant, category=filters.category, model=filters.model,
                      text=filters.text, older_than=filters.older_than(utcnow()))
            cache = self.cache
            if confirmed is not None and not dry_run:
                matching = set(self.store.delete_where(dry_run=True, **kw))
                affected = self._delete_ids(sorted(matching & {int(i) for i in confirmed}))
            elif cache is not None:
                affected = cache.invalidate(dry_run=dry_run, **kw)
            else:
                affected = self.store.delete_where(dry_run=dry_run, **kw)
            target = ", ".join(f"{k}={v!r}" for k, v in filters.as_dict().items())
            detail = {"filters": filters.as_dict(), "confirmed": confirmed is not None}
        detail["affected"] = affected[:1000]
        action = "invalidate.dry_run" if dry_run else "invalidate"
        self.audit.record(actor, action, target, detail=detail, count=len(affected))
        return affected

    def erase_tenant(self, tenant: str, actor: str) -> dict[str, int]:
        """Erase everything a tenant stored: its entries and its statistics rows."""
        if not isinstance(tenant, str) or not tenant:
            raise ValueError(f"tenant must be a non-empty string, got {tenant!r}")
        entries = self.invalidate(actor, filters=EntryFilters(tenant=tenant))
        with write_transaction(self.store.engine) as conn:
            stats = conn.execute(delete(STATS).where(STATS.c.tenant == tenant)).rowcount
        counts = {"entries": len(entries), "stats_rows": int(stats or 0)}
        self.audit.record(actor, "tenant.erase", f"tenant {tenant}", detail=counts, count=len(entries))
        return counts

    def apply_retention(self, actor: str) -> dict[str, int]:
        """Delete entries older than their tenant's retention period; returns counts per tenant."""
        done: dict[str, int] = {}
        for tenant in self.keys.tenants():
            age_s = retention_age_s(tenant["retention_days"])  # clamped: a stored 10**12 still works
            if age_s is not None:
                filters = EntryFilters(tenant=tenant["name"], older_than_s=age_s)
                done[tenant["name"]] = len(self.invalidate(actor, filters=filters))
        return done

    def _delete_ids(self, ids: list[int]) -> list[int]:
        cache = self.cache
        if cache is not None:
            return sorted(cache.invalidate(ids))
        return self.store.delete_entries(ids)

    # -- policies --------------------------------------------------------------------
    def policy_set(self) -> PolicySet:
        """The policies in effect: the running cache's, else the file's with the DB overrides."""
        cache = self.cache
        if cache is not None:
            return cache.policies  # type: ignore[no-any-return]
        return PolicySet.from_file(self._policies_file).with_overrides(self.store.get_policy_overrides())

    def policies(self) -> dict[str, dict[str, Any]]:
        """Per category: the effective policy and which fields the database overrides."""
        overrides = self.store.get_policy_overrides(with_meta=True)
        out: dict[str, dict[str, Any]] = {}
        for category, policy in self.policy_set().items():
            meta = overrides.get(category, {})
            out[category] = {**dataclasses.asdict(policy),
                             "overridden": sorted(k for k in meta if k in POLICY_FIELDS),
                             "updated_at": meta.get("updated_at"), "updated_by": meta.get("updated_by")}
        return out

    def set_policy(self, category: str, actor: str, **fields: Any) -> Policy:
        """Override some of a category's policy fields; the running cache uses them at once."""
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}; expected one of {list(CATEGORIES)}")
        unknown = sorted(set(fields) - set(POLICY_FIELDS))
        if unknown or not fields:
            raise ValueError(f"policy fields must be some of {list(POLICY_FIELDS)}, got {sorted(fields)}")
        before = self.policy_set().get(category)
        cleared = sorted(k for k in ("ttl_seconds", "max_entries")
                         if k in fields and fields[k] is None and getattr(before, k) is not None)
        if cleared:
            # The policy merge treats a null override as "not overridden", so it would not apply.
            raise ValueError(f"{cleared} cannot be cleared by an override yet; give a positive limit")
        after = before.replace(**fields)  # validates the combination (e.g. min <= threshold <= max)
        self.store.set_policy_override(category, updated_by=actor, **fields)
        self._reload()
        changed = {k: {"old": getattr(before, k), "new": getattr(after, k)} for k in fields}
        self.audit.record(actor, "policy.set", f"category {category}", detail=changed, count=0)
        return after

    def reset_policy(self, category: str, actor: str) -> bool:
        """Drop a category's database overrides (the policy file applies again)."""
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}; expected one of {list(CATEGORIES)}")
        existed = self.store.delete_policy_override(category)
        self._reload()
        self.audit.record(actor, "policy.reset", f"category {category}", detail={"existed": existed})
        return existed

    def _reload(self) -> None:
        cache = self.cache
        if cache is not None:
            cache.reload_policies()

    # -- statistics ------------------------------------------------------------------
    def stats(self, tenant: str | None = None) -> dict[str, Any]:
        """Hit rates and savings: totals, per category, per day, per tenant and per model (priced)."""
        cache = self.cache
        if cache is not None:
            cache.flush()  # counters the recorder still holds
        summary = self.store.stats_summary(tenant)
        models = savings_by_model(self.store.engine)
        for row in models:
            row["price_per_1k"] = self.prices.price(row["model"])
            row["priced_cost_saved"] = self.prices.cost(row["model"], int(row["tokens_saved"]))
        summary["by_model"] = models
        summary["priced_cost_saved"] = sum(r["priced_cost_saved"] for r in models)
        summary["wrong_reports_by_category"] = wrong_reports_by(self.store.engine, "category")
        summary["wrong_reports_by_tenant"] = wrong_reports_by(self.store.engine, "tenant")
        hits = func.sum(STATS.c.exact_hits + STATS.c.semantic_hits)
        query = (select(STATS.c.tenant, func.sum(STATS.c.lookups), hits, func.sum(STATS.c.tokens_saved),
                        func.sum(STATS.c.cost_saved), func.sum(STATS.c.latency_saved_ms))
                 .group_by(STATS.c.tenant).order_by(STATS.c.tenant))
        with self.store.engine.connect() as conn:
            summary["by_tenant"] = {
                name: {"lookups": int(lookups or 0), "hits": int(h or 0),
                       "hit_rate": (int(h or 0) / int(lookups)) if lookups else 0.0,
                       "tokens_saved": int(tok or 0), "cost_saved": float(cost or 0.0),
                       "latency_saved_ms": float(lat or 0.0)}
                for name, lookups, h, tok, cost, lat in conn.execute(query).all()}
        return summary


def answer_text(response: Any) -> str | None:
    """The answer's text in an OpenAI chat or completion response, when it has that shape."""
    if isinstance(response, str):
        return response
    try:
        choice = response["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
    except (KeyError, IndexError, TypeError):
        return None
    return text if isinstance(text, str) else None
