"""``ChangeFeed``: apply the changes other processes commit to one process's ``LocalState``.

A replica loads its index at a change-log position read *before* the load, then follows
every later change: woken by PostgreSQL ``LISTEN/NOTIFY`` when it can be, and polling
every ``poll_s`` seconds, it reconnects after a disconnect and catches up. Applying a
change twice is harmless, which makes that order safe; a log pruned past its position
forces a resynchronisation (docs/design/core.md)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from semcache.storage.changelog import CHANNEL, Change, changes_after, oldest, position

if TYPE_CHECKING:
    from semcache.replication.state import LocalState
    from semcache.storage.store import Store

log = logging.getLogger(__name__)

Listener = Callable[[Change], None]


class ChangeFeed:
    """Follows ``store``'s change log into ``state`` in a daemon thread (started by ``start``).

    ``listen`` (default: on PostgreSQL) waits on ``LISTEN semcache_changes``
    between polls; otherwise it polls every ``poll_s`` seconds, which also
    keeps several processes on one SQLite file in sync. ``listeners`` are
    called with every applied change and with a ``resync`` pseudo-change (the
    cache reloads its policies, the proxy drops revoked keys this way).
    """

    def __init__(self, store: Store, state: LocalState, *, listen: bool | None = None,
                 poll_s: float = 1.0, batch: int = 1000, prune_every_s: float = 60.0) -> None:
        if isinstance(poll_s, bool) or not isinstance(poll_s, int | float) or poll_s <= 0:
            raise ValueError(f"poll_s must be a positive number of seconds, got {poll_s!r}")
        self.store = store
        self.state = state
        self.engine = store.engine
        is_pg = self.engine.dialect.name == "postgresql"
        if listen and not is_pg:
            raise ValueError("listen=True needs PostgreSQL; SQLite followers poll")
        self.listen = is_pg if listen is None else bool(listen)
        self.poll_s = float(poll_s)
        self.batch = batch
        self.prune_every_s = prune_every_s
        self.position = 0
        self.listeners: list[Listener] = []
        self.connected = False
        self.last_error: str | None = None
        self.applied = 0
        self.resyncs = 0
        self.reconnects = 0
        self.lag_s = 0.0  # commit-to-apply delay of the newest applied change
        self.disconnected_since: float | None = time.monotonic()  # until the first pass
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune = time.monotonic()

    # ---------------------------------------------------------------- control
    def start(self, at: int) -> None:
        """Follow changes after position ``at`` (the position the cache was loaded at)."""
        if self._thread is not None:
            raise RuntimeError("the change feed is already running")
        self.position = int(at)
        self._thread = threading.Thread(target=self._run, name="semcache-change-feed", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop following and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def outage_s(self) -> float:
        """Seconds since the feed lost the database (0 while connected)."""
        since = self.disconnected_since
        return 0.0 if since is None or self.connected else time.monotonic() - since

    def _connected(self) -> None:
        self.connected = True
        self.disconnected_since = None

    def status(self) -> dict[str, Any]:
        """What /readyz and the metrics report."""
        return {"mode": "listen" if self.listen else "poll", "connected": self.connected,
                "outage_s": round(self.outage_s(), 3),
                "position": self.position, "lag_s": self.lag_s, "applied": self.applied,
                "resyncs": self.resyncs, "reconnects": self.reconnects, "last_error": self.last_error}

    # ---------------------------------------------------------------- applying
    def sync(self) -> int:
        """Apply every change committed after the current position; returns how many."""
        with self._sync_lock:
            done = 0
            while True:
                changes = changes_after(self.engine, self.position, self.batch)
                if not changes:
                    return done
                if changes[0].id > self.position + 1 and self._pruned_past():
                    self._resync()
                    continue
                self._apply(changes)
                done += len(changes)
                if len(changes) < self.batch:
                    return done

    def _apply(self, changes: list[Change]) -> None:
        adds: list[int] = []
        for change in changes:
            if change.kind == "entry.add":
                adds += change.payload["ids"]
            else:
                if adds:
                    self._add(adds)
                    adds = []
                if change.kind == "entry.delete":
                    # all ids, held or not: the tombstones keep a racing local insert out
                    self.state.apply_deleted(change.payload["ids"])
            self._notify(change)
        if adds:
            self._add(adds)
        newest = changes[-1]
        self.position = newest.id
        self.applied += len(changes)
        self.lag_s = max(0.0, time.time() - newest.at.timestamp())

    def _pruned_past(self) -> bool:
        """True when rows after our position were pruned (not just ids skipped by rollbacks)."""
        first = oldest(self.engine)
        return first is not None and first > self.position + 1

    def _notify(self, change: Change) -> None:
        for listener in self.listeners:
            try:
                listener(change)
            except Exception:  # one listener's failure must not stop the feed
                log.exception("change-feed listener failed on change %s (%s)", change.id, change.kind)

    def _add(self, ids: list[int]) -> None:
        missing = [i for i in ids if i not in self.state.mirror]
        if missing:
            self.state.apply_added(self.store.get_entries(missing), with_responses=True)

    def _resync(self) -> None:
        """The log no longer reaches back to our position: diff ids against the store."""
        at = position(self.engine)
        stored = self.store.all_ids()
        held = self.state.mirror.ids()
        gone = sorted(held - stored)
        if gone:
            self.state.apply_deleted(gone)
        new = sorted(stored - held)
        for start in range(0, len(new), self.batch):
            rows = self.store.get_entries(new[start : start + self.batch])
            self.state.apply_added(rows, with_responses=True)
        self._notify(Change(0, self.state.clock(), "", "resync", {}))
        self.position = at
        self.resyncs += 1
        log.warning("change log was pruned past position; resynchronised (%d removed, %d added)",
                    len(gone), len(new))

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                if self.listen:
                    self._follow_notifications()
                else:
                    self.sync()
                    self._connected()
                    self._maybe_prune()
                    self._stop.wait(self.poll_s)
                backoff = 0.2
            except Exception as exc:  # the database went away: reconnect and catch up
                if self.connected:
                    log.warning("change feed lost the database (%s); reconnecting", _reason(exc))
                    self.disconnected_since = time.monotonic()
                self.connected = False
                self.last_error = _reason(exc)
                self.reconnects += 1
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _follow_notifications(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"LISTEN {CHANNEL}")  # CHANNEL is a constant, not input
            self.sync()  # after LISTEN, so a change committed meanwhile is not missed
            self._connected()
            self.last_error = None
            while not self._stop.is_set():
                for _ in conn.notifies(timeout=self.poll_s, stop_after=1):
                    pass
                for _ in conn.notifies(timeout=0):  # a burst needs one pass, not one per change
                    pass
                self.sync()
                self._maybe_prune()

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune >= self.prune_every_s:
            self._last_prune = now
            self.store.prune_changes()


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
