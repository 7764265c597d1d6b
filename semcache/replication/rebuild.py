"""Rebuild the derived state (vector index + mirror) from the SQL store.

Runs at start-up. Expired entries are skipped (and deleted). Entries embedded
by another embedder, or another version of it, are re-embedded with the current
one and written back before they are indexed, so vector spaces never mix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from semcache.lookup.context import search_text

if TYPE_CHECKING:
    from semcache.embed.base import Embedder
    from semcache.lookup.context import ContextMatcher
    from semcache.replication.state import LocalState, Vectors
    from semcache.storage.store import Store


def rebuild(state: LocalState, store: Store, embedder: Embedder, context: ContextMatcher, *,
            embedder_id: str, progress_min: int = 5000, batch_size: int = 1000) -> int:
    """Load every live entry into ``state``; returns the count."""
    total = store.count_entries()
    expired: list[int] = []
    loaded = 0
    with tqdm(total=total, desc="semcache: loading index", unit="entry",
              disable=total < progress_min) as bar:
        for rows in store.iter_entries(batch_size=batch_size):
            stale = [r for r in rows if r.embedder != embedder_id]
            fresh = _reembed(store, embedder, context, stale, embedder_id) if stale else {}
            added, late = state.apply_added(rows, vectors=fresh)
            loaded += added
            expired += late
            bar.update(len(rows))
    if expired:
        store.delete_entries(expired)
    return loaded


def _reembed(store: Store, embedder: Embedder, context: ContextMatcher, rows: list[Any],
             embedder_id: str) -> Vectors:
    """Re-embed rows written by another embedder and persist the new vectors."""
    vectors = embedder.embed([search_text(r.prompt, r.history) for r in rows])
    out: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    for row, vector in zip(rows, vectors, strict=True):
        out[row.id] = (vector, context.embed(row.history or (), embedder.embed))
    store.update_embeddings(dict(out), embedder=embedder_id)
    return out
