"""The in-memory mirror of the SQL store: what a lookup needs without a query.

The store is the source of truth. The mirror holds, per live entry, what the
lookup path reads on every request (the cached question, its category, expiry,
conversation turns) plus the exact-path map and a bounded LRU of response
payloads. It is rebuilt from SQL at start-up together with the vector index,
and it is only ever updated *after* the SQL commit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from semcache.lookup.turns import TurnLike


@dataclass(frozen=True, slots=True)
class EntryMeta:
    entry_id: int
    partition: str
    exact_key: str
    prompt: str
    category: str
    tenant: str
    expires_at: datetime | None
    history: tuple[TurnLike, ...]  # the stored window of earlier turns
    history_vecs: np.ndarray | None
    doc_keys: tuple[str, ...] = ()

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class EntryMirror:
    """``fallback`` (optional) answers exact keys this mirror does not hold, e.g. from
    the shared Redis tier; it returns the entry's meta once it has been loaded here."""

    def __init__(self, response_cache_size: int = 10_000) -> None:
        self.fallback: Callable[[str], EntryMeta | None] | None = None
        self._lock = threading.Lock()
        self._meta: dict[int, EntryMeta] = {}
        self._exact: dict[str, int] = {}
        self._responses: OrderedDict[int, Any] = OrderedDict()
        self._response_cache_size = response_cache_size

    def __len__(self) -> int:
        return len(self._meta)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._meta

    def ids(self) -> set[int]:
        with self._lock:
            return set(self._meta)

    def get(self, entry_id: int) -> EntryMeta | None:
        return self._meta.get(entry_id)

    def exact(self, key: str) -> EntryMeta | None:
        entry_id = self._exact.get(key)
        meta = None if entry_id is None else self._meta.get(entry_id)
        if meta is None and self.fallback is not None:
            meta = self.fallback(key)
        return meta

    def put(self, meta: EntryMeta, response: Any = None) -> None:
        with self._lock:
            self._meta[meta.entry_id] = meta
            # newest entry wins the exact path
            self._exact[meta.exact_key] = meta.entry_id
            if response is not None:
                self._remember(meta.entry_id, response)

    def remove(self, entry_ids: list[int] | set[int]) -> None:
        with self._lock:
            for entry_id in entry_ids:
                meta = self._meta.pop(entry_id, None)
                self._responses.pop(entry_id, None)
                if meta is not None and self._exact.get(meta.exact_key) == entry_id:
                    del self._exact[meta.exact_key]

    def response(self, entry_id: int) -> Any | None:
        with self._lock:
            if entry_id in self._responses:
                self._responses.move_to_end(entry_id)
                return self._responses[entry_id]
        return None

    def remember_response(self, entry_id: int, response: Any) -> None:
        with self._lock:
            if entry_id in self._meta:
                self._remember(entry_id, response)

    def _remember(self, entry_id: int, response: Any) -> None:
        self._responses[entry_id] = response
        self._responses.move_to_end(entry_id)
        while len(self._responses) > self._response_cache_size:
            self._responses.popitem(last=False)

    def by_document(self, doc_key: str) -> list[int]:
        with self._lock:
            return [m.entry_id for m in self._meta.values() if doc_key in m.doc_keys]
