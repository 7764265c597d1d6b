"""``SemanticCache``: the facade every adapter uses.

Lookup, in order:

1. **Exact path** — the hash of partition + normalised question + normalised
   history, answered from memory, before any embedding.
2. **Semantic path** — categorise (policy), embed the question, search the HNSW
   index *inside* the request's partition, then for each candidate above the
   category's threshold: expiry, conversation context, verifier. The first
   candidate that passes all three is the hit.

Store: validate, commit to SQL, then insert into the index and the mirror.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from semcache.lookup.adaptive import AdaptiveThresholds, Adjustment
from semcache.lookup.categories import Categoriser
from semcache.lookup.context import ContextMatcher, search_text
from semcache.lookup.normalize import exact_key, normalize_text, prompt_hash
from semcache.lookup.policies import Policy, PolicySet
from semcache.replication.mirror import EntryMeta, EntryMirror
from semcache.storage.recorder import Recorder
from semcache.types import CacheRequest, Hit, LookupResult, Rejection
from semcache.verify.base import Verifier

log = logging.getLogger(__name__)


class SemanticCache:
    """A semantic response cache backed by an SQL store and an in-memory vector index."""

    def __init__(
        self,
        store: Any = "sqlite:///semcache.storage.engine",
        *,
        embedder: Any | None = None,
        index: Any | None = None,
        verifier: Verifier | None = None,
        policies: PolicySet | str | Path | None = None,
        categoriser: Categoriser | None = None,
        context: ContextMatcher | None = None,
        candidates: int = 5,
        adaptive: AdaptiveThresholds | None = None,
        clock: Callable[[], datetime] | None = None,
        stats_interval: float = 1.0,
        rebuild_progress_min: int = 5000,
        feed: bool | None = None,
        feed_poll_s: float = 1.0,
        shared: Any | None = None,
    ) -> None:
        """``feed``: follow the store's change log (other processes' writes), by
        default on PostgreSQL only; ``feed_poll_s`` is its poll period.
        ``shared``: an optional shared tier (``semcache.replication.redis_tier.RedisTier``),
        told of every local store and deletion; closed by ``close()``."""
        from semcache.replication.follower import ChangeFeed, RecentIds
        from semcache.storage.changelog import position
        from semcache.storage.store import Store

        self._owns_store = not isinstance(store, Store)
        self.db: Store = Store(store) if self._owns_store else store
        try:
            self._owns_embedder = embedder is None
            self.embedder = embedder if embedder is not None else _default_embedder()
            self.index = index if index is not None else _default_index(self.embedder.dim)
            self.verifier = verifier if verifier is not None else _default_verifier()
            self._base_policies = (policies if isinstance(policies, PolicySet)
                                   else PolicySet.from_file(policies))
            self.policies = self._base_policies
            self.reload_policies()
            self.categoriser = categoriser or Categoriser(self.embedder.embed)
            self.context = context or ContextMatcher(self.verifier)
            self.candidates = candidates
            self.adaptive = adaptive or AdaptiveThresholds(on_change=self._persist_adjustment)
            self._clock = clock or (lambda: datetime.now(UTC))
            self.mirror = EntryMirror()
            # Orders local commits against applied remote deletions (see _commit/_forget).
            self._sync_lock = threading.Lock()
            self._tombstones = RecentIds()
            self.recorder = Recorder(self.db, interval=stats_interval, clock=self._clock)
            from semcache.replication.rebuild import rebuild

            loaded_at = position(self.db.engine)  # before the load: replaying is idempotent
            rebuild(self, progress_min=rebuild_progress_min)
            self.shared = shared
            if shared is not None:
                shared.attach(self)
            self.feed: ChangeFeed | None = None
            if feed or (feed is None and self.db.engine.dialect.name == "postgresql"):
                self.feed = ChangeFeed(self, poll_s=feed_poll_s)
                self.feed.start(loaded_at)
        except BaseException:
            if self._owns_store:
                self.db.close()
            raise

    # ------------------------------------------------------------------ policy
    @property
    def embedder_id(self) -> str:
        return f"{self.embedder.name}@{self.embedder.version}"

    def reload_policies(self) -> None:
        """Re-read the DB overrides on top of the policy file."""
        self.policies = self._base_policies.with_overrides(self.db.get_policy_overrides())

    def policy(self, category: str) -> Policy:
        return self.policies.get(category)

    def categorise(self, request: CacheRequest, vector: np.ndarray | None = None) -> str:
        if request.category is not None:
            self.policies.get(request.category)  # validates the name
            return request.category
        return self.categoriser.categorise(request.prompt, vector)

    def threshold_for(self, request: CacheRequest, category: str) -> float:
        """The policy threshold, raised by learnt feedback, or the request's override within bounds."""
        policy = self.policy(category)
        if request.threshold is not None:
            return policy.clamp(request.threshold)
        return self.adaptive.threshold(category, policy.threshold, policy.max_threshold)

    def _persist_adjustment(self, adjustment: Adjustment) -> None:
        self.db.set_policy_override(adjustment.category, threshold=adjustment.new, updated_by="adaptive")
        self.reload_policies()
        log.info("threshold of %s tightened %.3f -> %.3f (%s)", adjustment.category,
                 adjustment.old, adjustment.new, adjustment.reason)

    # ------------------------------------------------------------------ lookup
    def lookup(self, request: CacheRequest) -> Hit | None:
        return self.lookup_detailed(request).hit

    def lookup_detailed(self, request: CacheRequest) -> LookupResult:
        early = self._exact(request)
        if early is not None:
            return early
        vector = self.embedder.embed_one(search_text(request.prompt, request.history))
        return self._semantic(request, vector)

    async def alookup(self, request: CacheRequest) -> Hit | None:
        return (await self.alookup_detailed(request)).hit

    async def alookup_detailed(self, request: CacheRequest) -> LookupResult:
        early = self._exact(request)
        if early is not None:
            return early
        vector = await self._aembed_one(search_text(request.prompt, request.history))
        return self._semantic(request, vector)

    def _exact(self, request: CacheRequest) -> LookupResult | None:
        meta = self.mirror.exact(exact_key(request.partition(), request.prompt, request.history))
        if meta is None or meta.expired(self._clock()):
            return None
        category = request.category or meta.category
        policy = self.policy(category)
        if not policy.enabled or (policy.personal and request.scope.user is None):
            return None
        response = self._response(meta.entry_id)
        if response is None:
            return None
        self.recorder.count(request.scope.tenant, category, lookups=1, exact_hits=1)
        self.recorder.hit(meta.entry_id)
        hit = Hit(meta.entry_id, response, "exact", 1.0, category, meta.prompt)
        return LookupResult(hit, category, policy.threshold, 1.0)

    def _semantic(self, request: CacheRequest, vector: np.ndarray) -> LookupResult:
        category = self.categorise(request, vector)
        policy = self.policy(category)
        tenant = request.scope.tenant
        if not policy.enabled:
            self.recorder.count(tenant, category, lookups=1, misses=1)
            return LookupResult(None, category, policy.threshold, bypass_reason=f"category {category} disabled")
        if policy.personal and request.scope.user is None:
            self.recorder.count(tenant, category, lookups=1, misses=1)
            return LookupResult(None, category, policy.threshold,
                                bypass_reason=f"category {category} is personal and the request has no user")
        threshold = self.threshold_for(request, category)
        now = self._clock()
        found = self.index.search(request.partition(), vector, self.candidates)
        best = found[0][1] if found else None
        rejections: list[Rejection] = []
        query_vecs: np.ndarray | None = None
        expired: list[int] = []
        for entry_id, similarity in found:
            if similarity < threshold:
                if not rejections:
                    rejections.append(Rejection(entry_id, similarity,
                                                f"similarity {similarity:.3f} below threshold {threshold:.2f}",
                                                "threshold"))
                break
            meta = self.mirror.get(entry_id)
            if meta is None:
                continue
            if meta.expired(now):
                expired.append(entry_id)
                continue
            if request.history and query_vecs is None:
                query_vecs = self.context.embed(request.history, self.embedder.embed)
            rejection = self.judge(request, query_vecs, meta.prompt, meta.history, meta.history_vecs,
                                   category=category, entry_id=entry_id, similarity=similarity)
            if rejection is not None:
                rejections.append(rejection)
                continue
            response = self._response(entry_id)
            if response is None:
                continue
            self.recorder.count(tenant, category, lookups=1, semantic_hits=1)
            self.recorder.hit(entry_id)
            self.adaptive.observe_hit(category, entry_id, similarity)
            hit = Hit(entry_id, response, "semantic", float(similarity), category, meta.prompt)
            return LookupResult(hit, category, threshold, best, tuple(rejections))
        if expired:
            self._drop(expired)
        self.recorder.count(tenant, category, lookups=1, misses=1)
        return LookupResult(None, category, threshold, best, tuple(rejections))

    def judge(self, request: CacheRequest, query_vecs: np.ndarray | None, cached_prompt: str,
              cached_history: tuple[str, ...], cached_history_vecs: np.ndarray | None, *,
              category: str, entry_id: int = 0, similarity: float = 0.0) -> Rejection | None:
        """Everything after the threshold: conversation context, then the verifier.

        Returns why the candidate is rejected, or None when it may be served.
        Calibration and evaluation call this too, so they judge exactly as lookups do.
        """
        if request.history or cached_history:
            ctx = self.context.match(request.history, query_vecs, cached_history, cached_history_vecs,
                                     category=category)
            if not ctx.ok:
                return Rejection(entry_id, similarity, str(ctx.reason), "context")
        verdict = self.verifier.verify(request.prompt, cached_prompt, category=category,
                                       in_context=bool(request.history))
        if not verdict.accepted:
            return Rejection(entry_id, similarity, str(verdict.reason), verdict.rule)
        return None

    def _response(self, entry_id: int) -> Any | None:
        response = self.mirror.response(entry_id)
        if response is None:
            response = self.db.get_response(entry_id)
            if response is not None:
                self.mirror.remember_response(entry_id, response)
        return response

    async def _aembed_one(self, text: str) -> np.ndarray:
        aembed = getattr(self.embedder, "aembed_one", None)
        if aembed is not None:
            return await aembed(text)
        return await asyncio.to_thread(self.embedder.embed_one, text)

    # ------------------------------------------------------------------- store
    def store(self, request: CacheRequest, response: Any, *, tokens: int = 0, cost: float = 0.0,
              latency_ms: float = 0.0, vector: np.ndarray | None = None,
              ttl_seconds: int | None = None) -> int | None:
        """Store an answer; returns the entry id, or None when policy says not to cache.

        ``ttl_seconds`` overrides the category's TTL for this entry (the proxy
        lengthens TTLs under load); it must be a positive integer.
        """
        if ttl_seconds is not None and (isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int)
                                        or ttl_seconds <= 0):
            raise ValueError(f"ttl_seconds must be a positive integer or None, got {ttl_seconds!r}")
        if vector is None:
            vector = self.embedder.embed_one(search_text(request.prompt, request.history))
        category = self.categorise(request, vector)
        policy = self.policy(category)
        if not policy.enabled or (policy.personal and request.scope.user is None):
            return None
        if ttl_seconds is not None:
            policy = policy.replace(ttl_seconds=ttl_seconds)
        return self._commit(request, response, vector, category, policy,
                            tokens=tokens, cost=cost, latency_ms=latency_ms)

    async def astore(self, request: CacheRequest, response: Any, **kw: Any) -> int | None:
        vector = await self._aembed_one(search_text(request.prompt, request.history))
        return await asyncio.to_thread(self.store, request, response, vector=vector, **kw)

    def _commit(self, request: CacheRequest, response: Any, vector: np.ndarray, category: str,
                policy: Policy, *, tokens: int, cost: float, latency_ms: float) -> int:
        from semcache.storage.store import NewEntry

        now = self._clock()
        expires = now + timedelta(seconds=policy.ttl_seconds) if policy.ttl_seconds else None
        turns = self.context.window(request.history)
        history_vecs = self.context.embed(turns, self.embedder.embed)
        key = exact_key(request.partition(), request.prompt, request.history)
        doc_keys = sorted({d.key for d in request.documents})
        scope = request.scope
        entry_id = self.db.add_entry(NewEntry(
            partition=request.partition(), exact_key=key, tenant=scope.tenant, model=scope.model,
            params_hash=scope.params, user_id=scope.user, category=category, prompt=request.prompt,
            prompt_norm=normalize_text(request.prompt), prompt_hash=prompt_hash(request.prompt),
            context_hash=request.context_hash(), history=list(turns),
            history_embedding=None if history_vecs is None else history_vecs.reshape(-1),
            response=response, embedding=np.asarray(vector, dtype=np.float32), embedder=self.embedder_id,
            expires_at=expires, doc_keys=doc_keys, tokens=tokens, cost=cost, latency_ms=latency_ms,
        ))
        # SQL is committed: now the entry may become visible, unless another
        # process deleted it already and the change feed applied that first.
        with self._sync_lock:
            if entry_id not in self._tombstones:
                self.index.add(request.partition(), np.array([entry_id], dtype=np.int64),
                               np.asarray(vector, dtype=np.float32)[None, :])
                self.mirror.put(EntryMeta(entry_id, request.partition(), key, request.prompt,
                                          category, scope.tenant, expires, turns, history_vecs,
                                          tuple(doc_keys)), response)
        if self.shared is not None:
            self.shared.stored(key, entry_id, policy.ttl_seconds)
        self.recorder.count(scope.tenant, category, stores=1)
        if policy.max_entries is not None:
            evicted = self.db.evict_for_quota(category, policy.max_entries)
            if evicted:
                self._forget(evicted)
        return entry_id

    # ------------------------------------------------------- invalidation etc.
    def invalidate(self, ids: Sequence[int] | None = None, *, document: str | None = None,
                   tenant: str | None = None, category: str | None = None, model: str | None = None,
                   text: str | None = None, older_than: datetime | None = None,
                   dry_run: bool = False) -> list[int]:
        """Delete entries by id, source document or filters; returns the affected ids."""
        if ids is not None:
            if dry_run:
                return sorted(i for i in ids if i in self.mirror)
            return self._drop(list(ids))
        if document is not None:
            if dry_run:
                return sorted(self.mirror.by_document(document))
            deleted = self.db.delete_by_document(document)
            self._forget(deleted)
            return deleted
        if all(v is None for v in (tenant, category, model, text, older_than)):
            raise ValueError("invalidate needs ids, a document or at least one filter")
        deleted = self.db.delete_where(tenant=tenant, category=category, model=model, text=text,
                                          older_than=older_than, dry_run=dry_run)
        if not dry_run:
            self._forget(deleted)
        return deleted

    def report_wrong(self, entry_id: int, similarity: float | None = None) -> Adjustment | None:
        """Record that a hit served from ``entry_id`` was wrong for the question it answered.

        The report is counted on the entry and feeds the category's adaptive
        threshold, which tightens when the evidence exceeds the error bound.
        Returns the threshold change, if any. Delete the entry too (``invalidate``)
        when its answer itself is wrong rather than served to the wrong question.
        """
        meta = self.mirror.get(entry_id)
        if meta is None:
            raise ValueError(f"no live entry with id {entry_id}")
        self.db.report_wrong(entry_id)
        category = self.adaptive.category_of(entry_id) or meta.category
        policy = self.policy(category)
        return self.adaptive.report_wrong(category, entry_id, similarity,
                                          base=policy.threshold, ceiling=policy.max_threshold)

    def _drop(self, ids: list[int]) -> list[int]:
        deleted = self.db.delete_entries(ids)
        self._forget(ids)
        return deleted

    def _forget(self, ids: Sequence[int], *, local: bool = True) -> None:
        """Drop ids from memory; ``local`` deletions are also announced on the shared tier."""
        keyed: list[tuple[int, str]] = []
        with self._sync_lock:
            self._tombstones.update(ids)
            if local and self.shared is not None:
                keyed = [(m.entry_id, m.exact_key) for m in map(self.mirror.get, ids) if m is not None]
            self.index.delete(ids)
            self.mirror.remove(list(ids))
        self.recorder.forget(list(ids))
        if local and self.shared is not None:
            self.shared.forgotten(list(ids), keyed, self.db.origin)

    def flush(self) -> None:
        self.recorder.flush()

    def close(self) -> None:
        feed = getattr(self, "feed", None)
        if feed is not None:
            feed.stop()
        shared = getattr(self, "shared", None)
        if shared is not None:
            shared.close()
        self.recorder.close()
        if self._owns_embedder:
            _close_chain(self.embedder)
        if self._owns_store:
            self.db.close()

    def __enter__(self) -> SemanticCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _default_embedder() -> Any:
    from semcache.embed.lru import CachedEmbedder
    from semcache.embed.microbatch import MicroBatcher
    from semcache.embed.minilm import MiniLMEmbedder

    # LRU first (a repeat costs no queueing); the batcher adds no wait of its own:
    # requests that arrive while a batch runs simply form the next batch.
    return CachedEmbedder(MicroBatcher(MiniLMEmbedder(), max_wait_ms=0.0), maxsize=8192)


def _close_chain(embedder: Any) -> None:
    """Close every closable layer of an embedder stack (LRU -> batcher -> model)."""
    seen = 0
    while embedder is not None and seen < 8:
        if callable(getattr(embedder, "close", None)):
            embedder.close()
        embedder = getattr(embedder, "inner", None) or getattr(embedder, "embedder", None)
        seen += 1


def _default_index(dim: int) -> Any:
    from semcache.index import HnswIndex

    return HnswIndex(dim=dim)


def _default_verifier() -> Verifier:
    from semcache.verify import HardNegativeVerifier

    return HardNegativeVerifier()
