"""``PolicyWatcher``: a proxy in another process picks up policy edits by polling the database.

    watcher = PolicyWatcher(cache, interval_s=2.0)
    watcher.start()   # ... watcher.stop()

Every ``interval_s`` it reads the category overrides and, when they differ
from the last ones seen, calls ``cache.reload_policies()``. A cache that
follows the change feed (``SemanticCache(feed=True)``, the default on
PostgreSQL) reloads on every logged policy change by itself and needs no
watcher; this one remains for caches that do not follow the feed.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from semcache.cache import SemanticCache

log = logging.getLogger(__name__)


class PolicyWatcher:
    """Reloads a cache's policies when the database's overrides change."""

    def __init__(self, cache: SemanticCache, *, interval_s: float = 2.0) -> None:
        if isinstance(interval_s, bool) or not isinstance(interval_s, int | float) or interval_s <= 0:
            raise ValueError(f"interval_s must be a positive number of seconds, got {interval_s!r}")
        self.cache = cache
        self.interval_s = float(interval_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, dict[str, Any]] | None = None
        self.reloads = 0

    def check(self) -> bool:
        """Poll once; True when the overrides changed and the policies were reloaded."""
        current = self.cache.db.get_policy_overrides()
        if self._seen is not None and current == self._seen:
            return False
        first = self._seen is None
        self._seen = current
        if first:
            return False
        self.cache.reload_policies()
        self.reloads += 1
        log.info("policy overrides changed in the database; reloaded")
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # a database hiccup must not end the watcher
                log.exception("polling policy overrides failed; retrying in %.1f s", self.interval_s)

    def start(self) -> None:
        """Start polling in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("the watcher is already running")
        self.check()
        self._thread = threading.Thread(target=self._run, name="semcache-policy-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
