"""``SemanticCache``: the facade every adapter uses. Lookup, in order:

1. **Exact path**: the hash of partition + normalised question + what the question
   refers back to (``followup.context_key``), answered from memory, before any embedding.
2. **Semantic path**: categorise (policy), embed the question (with its referent in
   front when it refers back), search the HNSW index *inside* the request's partition,
   then judge the candidates (expiry, conversation context, verifier) as
   ``lookup.candidates`` says; the first (or best scored) that passes is the hit.

Store: validate, commit to SQL, then make the entry visible in the local state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from semcache.embed.base import Embedder, aembed_one
from semcache.index.base import VectorIndex
from semcache.lookup.adaptive import AdaptiveThresholds, Adjustment
from semcache.lookup.candidates import CandidateSearch, Outcome
from semcache.lookup.categories import Categoriser
from semcache.lookup.context import ContextMatcher, search_text, stored_history
from semcache.lookup.followup import reply_act
from semcache.lookup.normalize import exact_key, normalize_text, prompt_hash
from semcache.lookup.policies import Policy, PolicySet
from semcache.lookup.turns import TurnLike
from semcache.parts import CacheParts, build_parts, close_embedder
from semcache.replication.mirror import EntryMeta
from semcache.replication.redis_tier import RedisTier
from semcache.storage.changelog import Change, position
from semcache.storage.store import NewEntry, Store
from semcache.types import CacheRequest, Hit, LookupResult, Rejection
from semcache.verify.base import Verifier

log = logging.getLogger(__name__)


class SemanticCache:
    """A semantic response cache backed by an SQL store and an in-memory vector index.

    ``SemanticCache("sqlite:///semcache.db")`` builds every part (``build_parts``) and
    starts it, as ``semcache.build.build_cache`` does from settings; ``from_parts``
    wires parts already built, with no I/O.
    """

    def __init__(
        self,
        store: Store | str = "sqlite:///semcache.db",
        *,
        embedder: Embedder | None = None,
        index: VectorIndex | None = None,
        verifier: Verifier | None = None,
        policies: PolicySet | str | Path | None = None,
        categoriser: Categoriser | None = None,
        context: ContextMatcher | None = None,
        candidates: int = 5, candidate_floor: float = 0.6,
        adaptive: AdaptiveThresholds | None = None,
        clock: Callable[[], datetime] | None = None,
        stats_interval: float = 1.0,
        rebuild_progress_min: int = 5000,
        feed: bool | None = None,
        feed_poll_s: float = 1.0,
        shared: RedisTier | None = None,
    ) -> None:
        """``candidate_floor``: the cosine a candidate needs with a batch verifier. ``feed``: follow
        the store's change log (default: on PostgreSQL only) every ``feed_poll_s``.
        ``shared``: an optional shared tier (``RedisTier``), told of every local
        store and deletion; closed by ``close()``."""
        self._wire(build_parts(
            store, embedder=embedder, index=index, verifier=verifier, policies=policies,
            categoriser=categoriser, context=context, candidates=candidates,
            candidate_floor=candidate_floor, adaptive=adaptive,
            clock=clock, stats_interval=stats_interval, progress_min=rebuild_progress_min,
            feed=feed, feed_poll_s=feed_poll_s, shared=shared))
        self.start()

    @classmethod
    def from_parts(cls, parts: CacheParts) -> SemanticCache:
        """A cache over parts already built; nothing is loaded or started until ``start``."""
        cache = cls.__new__(cls)
        cache._wire(parts)
        return cache

    def _wire(self, parts: CacheParts) -> None:
        self.parts, self.db, self.state = parts, parts.store, parts.state
        self.embedder, self.verifier, self.context = parts.embedder, parts.verifier, parts.context
        self.index, self.mirror = parts.state.index, parts.state.mirror
        self._base_policies = self.policies = parts.policies
        self.categoriser, self.candidates = parts.categoriser, parts.candidates
        self.search = CandidateSearch(self.index, self.mirror, self.verifier, k=parts.candidates,
                                      floor=parts.candidate_floor, text_index=parts.text_index)
        self.adaptive = parts.adaptive or AdaptiveThresholds(on_change=self._persist_adjustment)
        self._clock, self.recorder = parts.clock, parts.recorder
        self.feed, self.shared = parts.feed, parts.shared
        self._started = False
        parts.state.on_deleted.append(self.recorder.forget)
        if self.feed is not None:
            self.feed.listeners.append(self._on_change)

    def start(self) -> None:
        """Read the policy overrides, load the index from the store and start the threads."""
        if self._started:
            raise RuntimeError("the cache is already started")
        self._started = True
        try:
            self.reload_policies()
            loaded_at = position(self.db.engine)  # before the load: replaying is idempotent
            self.state.load(self.db, self.embedder, self.context, embedder_id=self.embedder_id,
                            progress_min=self.parts.progress_min)
            self.recorder.start()
            if self.shared is not None:
                self.shared.start(self.state, self.db)
            if self.feed is not None:
                self.feed.start(loaded_at)
        except BaseException:
            self.close()
            raise

    def _on_change(self, change: Change) -> None:
        if change.kind in ("policy", "resync"):
            self.reload_policies()

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
        vector = await aembed_one(self.embedder, search_text(request.prompt, request.history))
        return self._semantic(request, vector)

    def _exact(self, request: CacheRequest) -> LookupResult | None:
        # an entry counts only under the document order its category's policy asks for
        found = ((self.mirror.exact(exact_key(request.partition(o), request.prompt, request.history)), o)
                 for o in self.policies.document_orders(len(request.documents)))
        meta = next((m for m, o in found if m is not None
                     and self.policy(request.category or m.category).document_order == o), None)
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
        bypass = (f"category {category} disabled" if not policy.enabled
                  else f"category {category} is personal and the request has no user"
                  if policy.personal and request.scope.user is None else None)
        if bypass is not None:
            self.recorder.count(tenant, category, lookups=1, misses=1)
            return LookupResult(None, category, policy.threshold, bypass_reason=bypass)
        threshold, out = self.threshold_for(request, category), Outcome()
        found = self.search.accepted(  # the query's turns are embedded lazily, only when needed
            request.partition(policy.document_order), vector, request.prompt, out=out, now=self._clock(),
            gate=self.context.search_gate(request.prompt, request.history, threshold),
            judge=lambda m, sim: self.judge(request, None, m.prompt, m.history, m.history_vecs,
                                            category=category, entry_id=m.entry_id, similarity=sim),
            prejudge=lambda m, sim: self.prejudge(request, None, m.prompt, m.history, m.history_vecs,
                                                  category=category, entry_id=m.entry_id, similarity=sim),
            category=category, in_context=bool(request.history), floor=request.threshold is None)
        for meta, similarity in found:
            response = self._response(meta.entry_id)
            if response is None:
                continue
            self.recorder.count(tenant, category, lookups=1, semantic_hits=1)
            self.recorder.hit(meta.entry_id)
            self.adaptive.observe_hit(category, meta.entry_id, similarity)
            hit = Hit(meta.entry_id, response, "semantic", float(similarity), category, meta.prompt)
            return LookupResult(hit, category, threshold, out.best, tuple(out.rejections))
        if out.expired:
            self._drop(out.expired)
        self.recorder.count(tenant, category, lookups=1, misses=1)
        return LookupResult(None, category, threshold, out.best, tuple(out.rejections))

    def judge(self, request: CacheRequest, query_vecs: np.ndarray | None, cached_prompt: str,
              cached_history: Sequence[TurnLike], cached_history_vecs: np.ndarray | None, *,
              category: str, entry_id: int = 0, similarity: float = 0.0) -> Rejection | None:
        """After the threshold: ``prejudge``, then the verifier; why the candidate is rejected,
        or None. Calibration and evaluation judge through this too."""
        early = self.prejudge(request, query_vecs, cached_prompt, cached_history, cached_history_vecs,
                              category=category, entry_id=entry_id, similarity=similarity)
        if early is not None:
            return early if isinstance(early, Rejection) else None
        verdict = self.verifier.verify(request.prompt, cached_prompt, category=category,
                                       in_context=bool(request.history))
        if not verdict.accepted:
            return Rejection(entry_id, similarity, str(verdict.reason), verdict.rule)
        return None

    def prejudge(self, request: CacheRequest, query_vecs: np.ndarray | None, cached_prompt: str,
                 cached_history: Sequence[TurnLike], cached_history_vecs: np.ndarray | None, *,
                 category: str, entry_id: int = 0, similarity: float = 0.0) -> Rejection | bool | None:
        """What is judged before the verifier: the conversation context (final turns that refer
        back at the category's threshold), then two bare replies by their act. A rejection,
        True when that decides the pair, None when the verifier must."""
        if request.history or cached_history:
            ctx = self.context.match(request.prompt, request.history, query_vecs, cached_prompt, cached_history,
                                     cached_history_vecs, embed=self.embedder.embed,
                                     final_threshold=self.threshold_for(request, category))
            if not ctx.ok:
                return Rejection(entry_id, similarity, str(ctx.reason), "context")
        acts = reply_act(request.prompt), reply_act(cached_prompt)
        if acts[0] is not None and acts[1] is not None:
            same = acts[0] == acts[1]
            return True if same else Rejection(entry_id, similarity, f"reply {acts[0]} vs {acts[1]}", "reply")
        return None

    def _response(self, entry_id: int) -> Any | None:
        response = self.mirror.response(entry_id)
        if response is None:
            response = self.db.get_response(entry_id)
            if response is not None:
                self.mirror.remember_response(entry_id, response)
        return response

    # ------------------------------------------------------------------- store
    def store(self, request: CacheRequest, response: Any, *, tokens: int = 0, cost: float = 0.0,
              latency_ms: float = 0.0, vector: np.ndarray | None = None,
              ttl_seconds: int | None = None) -> int | None:
        """Store an answer; returns the entry id, or None when policy says not to cache.
        ``ttl_seconds`` (a positive integer) overrides the category's TTL for this entry."""
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
        vector = await aembed_one(self.embedder, search_text(request.prompt, request.history))
        return await asyncio.to_thread(self.store, request, response, vector=vector, **kw)

    def _commit(self, request: CacheRequest, response: Any, vector: np.ndarray, category: str,
                policy: Policy, *, tokens: int, cost: float, latency_ms: float) -> int:
        now = self._clock()
        expires = now + timedelta(seconds=policy.ttl_seconds) if policy.ttl_seconds else None
        turns = self.context.window(request.history)
        history_vecs = self.context.embed(turns, self.embedder.embed)
        partition = request.partition(policy.document_order)
        key = exact_key(partition, request.prompt, request.history)
        doc_keys = sorted({d.key for d in request.documents})
        scope = request.scope
        entry_id = self.db.add_entry(NewEntry(
            partition=partition, exact_key=key, tenant=scope.tenant, model=scope.model,
            params_hash=scope.params, user_id=scope.user, category=category, prompt=request.prompt,
            prompt_norm=normalize_text(request.prompt), prompt_hash=prompt_hash(request.prompt),
            context_hash=request.context_hash(policy.document_order), history=stored_history(turns),
            history_embedding=None if history_vecs is None else history_vecs.reshape(-1),
            response=response, embedding=np.asarray(vector, dtype=np.float32), embedder=self.embedder_id,
            expires_at=expires, doc_keys=doc_keys, tokens=tokens, cost=cost, latency_ms=latency_ms,
        ))
        # SQL is committed: now the entry may become visible, unless another
        # process deleted it already and the change feed applied that first.
        self.state.add_local(EntryMeta(entry_id, partition, key, request.prompt, category,
                                       scope.tenant, expires, turns, history_vecs, tuple(doc_keys)),
                             vector, response)
        if self.shared is not None:
            self.shared.stored(key, entry_id, policy.ttl_seconds)
        self.recorder.count(scope.tenant, category, stores=1)
        if policy.max_entries is not None:
            evicted = self.db.evict_for_quota(category, policy.max_entries, tenant=scope.tenant)
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
        """Record that a hit served from ``entry_id`` was wrong for the question it answered: it
        feeds the category's adaptive threshold; returns the threshold change, if any. Delete the
        entry too (``invalidate``) when its answer itself is wrong."""
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

    def _forget(self, ids: Sequence[int]) -> None:
        """Drop ids this process deleted from memory, and announce them on the shared tier."""
        held = self.state.apply_deleted(ids)
        if self.shared is not None:
            self.shared.forgotten(list(ids), [(m.entry_id, m.exact_key) for m in held], self.db.origin)

    def flush(self) -> None:
        self.recorder.flush()

    def close(self) -> None:
        """Stop the threads; close the store and the embedder if this cache created them."""
        if self.feed is not None:
            self.feed.stop()
        if self.shared is not None:
            self.shared.close()
        self.recorder.close()
        if self.parts.owns_embedder:
            close_embedder(self.embedder)
        if self.parts.owns_store:
            self.db.close()

    def __enter__(self) -> SemanticCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
