"""Buffered hit counters and statistics.

A hit must not wait for an SQL write, so hit counts and per-(tenant, category)
counters are accumulated in memory and flushed in one transaction every
``interval`` seconds and at close. A crash loses at most that interval of
*counters*; entries themselves are always committed before they are used.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

_STAT_FIELDS = ("lookups", "exact_hits", "semantic_hits", "misses", "stores",
                "tokens_saved", "cost_saved", "latency_saved_ms")


class Recorder:
    """Counts hits and statistics in memory; ``flush`` (or the ``start``-ed thread) writes them."""

    def __init__(self, store: Any, *, interval: float = 1.0,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._store = store
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._hits: dict[int, list[float]] = {}
        self._stats: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Flush every ``interval`` seconds in a daemon thread (none when ``interval`` is 0)."""
        if self._interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="semcache-recorder", daemon=True)
            self._thread.start()

    def hit(self, entry_id: int, *, tokens: int = 0, cost: float = 0.0, latency_ms: float = 0.0) -> None:
        with self._lock:
            acc = self._hits.setdefault(entry_id, [0, 0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += tokens
            acc[2] += cost
            acc[3] += latency_ms

    def count(self, tenant: str, category: str, **fields: float) -> None:
        with self._lock:
            bucket = self._stats[(tenant, category)]
            for name, value in fields.items():
                if name not in _STAT_FIELDS:
                    raise ValueError(f"unknown statistic {name!r}; expected one of {_STAT_FIELDS}")
                bucket[name] = bucket.get(name, 0) + value

    def forget(self, entry_ids: set[int] | list[int]) -> None:
        with self._lock:
            for entry_id in entry_ids:
                self._hits.pop(entry_id, None)

    def flush(self) -> None:
        from semcache.storage.store import HitDelta

        with self._lock:
            hits, self._hits = self._hits, {}
            stats, self._stats = self._stats, defaultdict(dict)
        now = self._clock()
        if hits:
            self._store.record_hits({
                entry_id: HitDelta(count=int(h[0]), tokens_saved=int(h[1]), cost_saved=float(h[2]),
                                   latency_saved_ms=float(h[3]), at=now)
                for entry_id, h in hits.items()
            })
        for (tenant, category), fields in stats.items():
            self._store.bump_stats(tenant, category, **fields)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:  # keep counting; the next flush retries with fresh counters
                import logging

                logging.getLogger(__name__).exception("failed to flush cache statistics")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
