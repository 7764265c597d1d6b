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
from semcache.replication.mirror import EntryMeta

if TYPE_CHECKING:
    from semcache.cache import SemanticCache


def rebuild(cache: SemanticCache, *, progress_min: int = 5000, batch_size: int = 1000) -> int:
    """Load every live entry into ``cache.index`` and ``cache.mirror``; returns the count."""
    store = cache.db
    total = store.count_entries()
    now = cache._clock()
    current = cache.embedder_id
    expired: list[int] = []
    loaded = 0
    with tqdm(total=total, desc="semcache: loading index", unit="entry",
              disable=total < progress_min) as bar:
        for rows in store.iter_entries(batch_size=batch_size):
            stale = [r for r in rows if r.embedder != current]
            fresh_vecs = _reembed(cache, stale) if stale else {}
            added, late = index_rows(cache, rows, now, fresh_vecs)
            loaded += added
            expired += late
            bar.update(len(rows))
    if expired:
        store.delete_entries(expired)
    return loaded


def index_rows(cache: SemanticCache, rows: list[Any], now: Any,
               vectors: dict[int, tuple[np.ndarray, np.ndarray | None]] | None = None,
               skip: Any = (), with_responses: bool = False) -> tuple[int, list[int]]:
    """Add stored rows to ``cache.index`` and ``cache.mirror``; returns (added, expired ids).

    Rows whose id is in ``skip`` (deleted since they were read) are left out.
    The change feed uses this too, for entries other replicas stored, with
    ``with_responses`` (their answers go into the mirror's response LRU, so a
    hit on them needs no SQL read, even while the database is away).
    """
    vectors = vectors or {}
    expired: list[int] = []
    by_partition: dict[str, tuple[list[int], list[np.ndarray]]] = {}
    metas: list[tuple[EntryMeta, Any]] = []
    for row in rows:
        if row.expires_at is not None and row.expires_at <= now:
            expired.append(row.id)
            continue
        if row.id in skip:
            continue
        vector, history_vecs = vectors.get(row.id, (row.embedding, _turn_matrix(row)))
        ids, vecs = by_partition.setdefault(row.partition, ([], []))
        ids.append(row.id)
        vecs.append(np.asarray(vector, dtype=np.float32))
        metas.append((EntryMeta(
            row.id, row.partition, row.exact_key, row.prompt, row.category, row.tenant,
            row.expires_at, tuple(row.history or ()), history_vecs, tuple(row.doc_keys),
        ), row.response if with_responses else None))
    # the index first, then the mirror (as a local store and a deletion do): an entry the mirror
    # shows is then always searchable too
    for partition, (ids, vecs) in by_partition.items():
        cache.index.add(partition, np.asarray(ids, dtype=np.int64), np.stack(vecs))
    for meta, response in metas:
        cache.mirror.put(meta, response)
    return len(metas), expired


def _turn_matrix(row: Any) -> np.ndarray | None:
    """The stored (flattened) history embeddings as an (n_turns, dim) matrix."""
    if row.history_embedding is None or not row.history:
        return None
    return np.asarray(row.history_embedding, dtype=np.float32).reshape(len(row.history), -1)


def _reembed(cache: SemanticCache, rows: list) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
    """Re-embed rows written by another embedder and persist the new vectors."""
    vectors = cache.embedder.embed([search_text(r.prompt, r.history) for r in rows])
    out: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    for row, vector in zip(rows, vectors, strict=True):
        history_vecs = cache.context.embed(row.history or (), cache.embedder.embed)
        out[row.id] = (vector, history_vecs)
    cache.db.update_embeddings(
        {i: (v, h) for i, (v, h) in out.items()}, embedder=cache.embedder_id
    )
    return out
