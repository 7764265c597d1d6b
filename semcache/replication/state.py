"""``LocalState``: what one process derives from the store, and the only way to change it.

It holds the vector index, the entry mirror and the tombstones (ids deleted
recently), behind one lock. A local store, the change feed, the Redis tier and
the start-up load all go through ``apply_added`` / ``apply_deleted``, so a
deletion applied before a racing insert always wins: ids are never reused, and
a tombstoned id is never indexed again.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from semcache.index.base import VectorIndex
from semcache.replication.mirror import EntryMeta, EntryMirror

if TYPE_CHECKING:
    from semcache.embed.base import Embedder
    from semcache.lookup.context import ContextMatcher
    from semcache.storage.store import Store

Vectors = dict[int, tuple[np.ndarray, "np.ndarray | None"]]


class Tombstones:
    """A bounded set of recently deleted entry ids (ids are never reused)."""

    def __init__(self, maxlen: int = 200_000) -> None:
        self._order: deque[int] = deque()
        self._set: set[int] = set()
        self._maxlen = maxlen

    def update(self, ids: Iterable[int]) -> None:
        for entry_id in ids:
            if entry_id in self._set:
                continue
            self._set.add(entry_id)
            self._order.append(entry_id)
            if len(self._order) > self._maxlen:
                self._set.discard(self._order.popleft())

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._set


class LocalState:
    """The index, the mirror and the tombstones of one process, changed under one lock.

    ``clock`` gives the time expiry is judged by. ``on_deleted`` callbacks run
    after every deletion, outside the lock (the statistics recorder drops its
    pending counts this way).
    """

    def __init__(self, index: VectorIndex, *, clock: Callable[[], datetime],
                 mirror: EntryMirror | None = None) -> None:
        self.index = index
        self.mirror = mirror if mirror is not None else EntryMirror()
        self.tombstones = Tombstones()
        self.clock = clock
        self.on_deleted: list[Callable[[list[int]], None]] = []
        self._lock = threading.Lock()

    def is_deleted(self, entry_id: int) -> bool:
        """True when ``entry_id`` was deleted recently (a late add must not revive it)."""
        return entry_id in self.tombstones

    def add_local(self, meta: EntryMeta, vector: np.ndarray, response: Any) -> bool:
        """Make an entry this process just committed visible; False when it was deleted already."""
        with self._lock:
            if meta.entry_id in self.tombstones:
                return False
            self.index.add(meta.partition, np.array([meta.entry_id], dtype=np.int64),
                           np.asarray(vector, dtype=np.float32)[None, :])
            self.mirror.put(meta, response)
        return True

    def apply_added(self, rows: Sequence[Any], *, vectors: Vectors | None = None,
                    with_responses: bool = False) -> tuple[int, list[int]]:
        """Index stored rows (``EntryRow``); returns (added, ids found expired).

        Tombstoned rows are skipped. ``vectors`` replaces a row's stored vectors
        (after a re-embedding); ``with_responses`` also keeps the answers in the
        mirror, so a hit on an entry another process stored needs no SQL read.
        """
        with self._lock:
            return self._index_rows(rows, vectors or {}, with_responses)

    def _index_rows(self, rows: Sequence[Any], vectors: Vectors,
                    with_responses: bool) -> tuple[int, list[int]]:
        now = self.clock()
        expired: list[int] = []
        by_partition: dict[str, tuple[list[int], list[np.ndarray]]] = {}
        metas: list[tuple[EntryMeta, Any]] = []
        for row in rows:
            if row.expires_at is not None and row.expires_at <= now:
                expired.append(row.id)
                continue
            if row.id in self.tombstones:
                continue
            vector, history_vecs = vectors.get(row.id, (row.embedding, turn_matrix(row)))
            ids, vecs = by_partition.setdefault(row.partition, ([], []))
            ids.append(row.id)
            vecs.append(np.asarray(vector, dtype=np.float32))
            metas.append((EntryMeta(
                row.id, row.partition, row.exact_key, row.prompt, row.category, row.tenant,
                row.expires_at, tuple(row.history or ()), history_vecs, tuple(row.doc_keys),
            ), row.response if with_responses else None))
        # the index first, then the mirror: an entry the mirror shows is always searchable too
        for partition, (ids, vecs) in by_partition.items():
            self.index.add(partition, np.asarray(ids, dtype=np.int64), np.stack(vecs))
        for meta, response in metas:
            self.mirror.put(meta, response)
        return len(metas), expired

    def apply_deleted(self, ids: Sequence[int]) -> list[EntryMeta]:
        """Drop ids (held or not) and tombstone them; returns the metas that were held."""
        id_list = list(ids)
        with self._lock:
            self.tombstones.update(id_list)
            held = [m for m in map(self.mirror.get, id_list) if m is not None]
            self.index.delete(id_list)
            self.mirror.remove(id_list)
        for callback in self.on_deleted:
            callback(id_list)
        return held

    def load(self, store: Store, embedder: Embedder, context: ContextMatcher, *,
             embedder_id: str, progress_min: int = 5000) -> int:
        """Load every live entry of ``store`` (re-embedding stale ones); returns the count."""
        from semcache.replication.rebuild import rebuild

        return rebuild(self, store, embedder, context, embedder_id=embedder_id,
                       progress_min=progress_min)


def turn_matrix(row: Any) -> np.ndarray | None:
    """The stored (flattened) history embeddings as an (n_turns, dim) matrix."""
    if row.history_embedding is None or not row.history:
        return None
    return np.asarray(row.history_embedding, dtype=np.float32).reshape(len(row.history), -1)
