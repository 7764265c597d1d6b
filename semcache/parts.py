"""The parts of a ``SemanticCache`` and the one function that makes them.

``build_parts`` opens the store and creates the embedder, index, verifier,
policies, local state, statistics recorder and the optional replication
(change feed, Redis tier). It starts nothing: ``SemanticCache.start`` loads
the index and starts the threads. Defaults live here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from semcache.embed.base import Embedder
from semcache.index.base import VectorIndex
from semcache.index.chargram import CharGramIndex
from semcache.lookup.adaptive import AdaptiveThresholds
from semcache.lookup.candidates import TextIndexedMirror
from semcache.lookup.categories import Categoriser
from semcache.lookup.context import ContextMatcher
from semcache.lookup.policies import PolicySet
from semcache.replication.follower import ChangeFeed
from semcache.replication.redis_tier import RedisTier
from semcache.replication.state import LocalState
from semcache.storage.recorder import Recorder
from semcache.storage.store import Store
from semcache.verify.base import Verifier

Clock = Callable[[], datetime]


@dataclass(slots=True)
class CacheParts:
    """Everything a ``SemanticCache`` is made of, built but not started."""

    store: Store
    embedder: Embedder
    verifier: Verifier
    policies: PolicySet
    categoriser: Categoriser
    context: ContextMatcher
    state: LocalState
    recorder: Recorder
    clock: Clock
    candidates: int = 5
    candidate_floor: float = 0.6  # the cosine a candidate needs with a batch verifier
    text_index: CharGramIndex | None = None  # misspelled repeats, with a batch verifier
    adaptive: AdaptiveThresholds | None = None
    feed: ChangeFeed | None = None
    shared: RedisTier | None = None
    progress_min: int = 5000
    owns_store: bool = True
    owns_embedder: bool = True


def build_parts(store: Store | str = "sqlite:///semcache.db", *, embedder: Embedder | None = None,
                index: VectorIndex | None = None, verifier: Verifier | None = None,
                policies: PolicySet | str | Path | None = None, categoriser: Categoriser | None = None,
                context: ContextMatcher | None = None, candidates: int = 5,
                candidate_floor: float = 0.6, text_index: CharGramIndex | None = None,
                adaptive: AdaptiveThresholds | None = None, clock: Clock | None = None,
                stats_interval: float = 1.0, progress_min: int = 5000, feed: bool | None = None,
                feed_poll_s: float = 1.0, shared: RedisTier | None = None,
                index_kind: str = "hnsw", embedder_kind: str = "int8") -> CacheParts:
    """Open the store (a URL or a ``Store``) and create every other part; starts nothing.

    ``feed``: follow the store's change log (default: on PostgreSQL only).
    ``index_kind`` (hnsw or faiss) and ``embedder_kind`` (int8, fp32 or torch) pick the
    default index and embedder when none is given. A verifier with ``verify_many`` (learned)
    gets a character n-gram index (``text_index``) kept in step by the entry mirror.
    A store given as a URL is closed again when a later part fails.
    """
    owns_store = not isinstance(store, Store)
    db = store if isinstance(store, Store) else Store(store)
    try:
        the_clock = clock or _utcnow
        the_embedder = embedder if embedder is not None else default_embedder(embedder_kind)
        the_verifier = verifier if verifier is not None else default_verifier()
        if text_index is None and callable(getattr(the_verifier, "verify_many", None)):
            text_index = CharGramIndex()
        state = LocalState(index if index is not None else default_index(the_embedder.dim, index_kind),
                           clock=the_clock,
                           mirror=None if text_index is None else TextIndexedMirror(text_index))
        follow = feed or (feed is None and db.engine.dialect.name == "postgresql")
        return CacheParts(
            store=db, embedder=the_embedder, verifier=the_verifier,
            policies=policies if isinstance(policies, PolicySet) else PolicySet.from_file(policies),
            categoriser=categoriser or Categoriser(the_embedder.embed),
            context=context or ContextMatcher(), state=state,
            recorder=Recorder(db, interval=stats_interval, clock=the_clock), clock=the_clock,
            candidates=candidates, candidate_floor=candidate_floor, text_index=text_index,
            adaptive=adaptive, progress_min=progress_min,
            feed=ChangeFeed(db, state, poll_s=feed_poll_s) if follow else None, shared=shared,
            owns_store=owns_store, owns_embedder=embedder is None)
    except BaseException:
        if owns_store:
            db.close()
        raise


def _utcnow() -> datetime:
    return datetime.now(UTC)


def default_embedder(kind: str = "int8") -> Embedder:
    """MiniLM (``kind``: the packaged int8 graph, fp32 or torch) behind a micro-batcher and an LRU."""
    from semcache.embed.lru import CachedEmbedder
    from semcache.embed.microbatch import MicroBatcher
    from semcache.embed.minilm import MiniLMEmbedder

    options: dict[str, Any] = {"int8": {}, "fp32": {"precision": "fp32"}, "torch": {"backend": "torch"}}[kind]
    # LRU first (a repeat costs no queueing); the batcher adds no wait of its own:
    # requests that arrive while a batch runs simply form the next batch.
    return CachedEmbedder(MicroBatcher(MiniLMEmbedder(**options), max_wait_ms=0.0), maxsize=8192)


def close_embedder(embedder: Any) -> None:
    """Close every closable layer of an embedder stack (LRU -> batcher -> model)."""
    seen = 0
    while embedder is not None and seen < 8:
        if callable(getattr(embedder, "close", None)):
            embedder.close()
        embedder = getattr(embedder, "inner", None) or getattr(embedder, "embedder", None)
        seen += 1


def default_index(dim: int, kind: str = "hnsw") -> VectorIndex:
    from semcache.index import FaissIndex, HnswIndex

    if kind == "hnsw":
        return HnswIndex(dim=dim)
    if kind == "faiss":
        return FaissIndex(dim=dim)
    raise ValueError(f"unknown index kind {kind!r}; expected 'hnsw' or 'faiss'")


def default_verifier() -> Verifier:
    from semcache.verify import HardNegativeVerifier

    return HardNegativeVerifier()


def make_verifier(kind: str = "hardneg", *, rules: bool = True) -> Verifier:
    """``kind``: hardneg (rules), learned (the shipped pair model; ``rules``: principled
    vetoes) or none (similarity alone)."""
    from semcache.verify.base import PassThroughVerifier
    from semcache.verify.learned import LearnedVerifier

    if kind == "hardneg":
        return default_verifier()
    if kind == "learned":
        return LearnedVerifier(rules=rules).load()  # now, not on the first lookup
    if kind == "none":
        return PassThroughVerifier()
    raise ValueError(f"unknown verifier {kind!r}; expected 'hardneg', 'learned' or 'none'")
