"""``FlightLeases``: one replica at a time asks the upstream for a given question.

A lease is a row of ``flight_leases`` (key, owner, expiry), taken with an insert that does
nothing on a conflict. Others wait until the row is gone (released after the answer's commit)
or expired, then read the stored entry; expired rows are taken over. A row lives ``ttl_s``
(1.5 s) unless its holder's heartbeat (:meth:`start`, every ``ttl_s / 4``) renews it, so a holder
killed with -9 is noticed within ``ttl_s``. ``owner`` names the holder (the replica id): a
restarted replica drops its own leftovers with :meth:`release_own`. Expiries use this host's
clock: replicas on several hosts need clocks in step to well under ``ttl_s``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid

from sqlalchemy import Engine, Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from semcache.storage.engine import write_transaction
from semcache.storage.schema import FlightLease, utcnow

LEASES: Table = FlightLease.__table__  # type: ignore[assignment]
log = logging.getLogger("semcache.proxy")


class FlightLeases:
    """Leases on question keys (at most 64 characters, e.g. a hex digest)."""

    def __init__(self, engine: Engine, *, lease_s: float = 30.0, owner: str | None = None,
                 ttl_s: float = 1.5) -> None:
        for name, value in (("lease_s", lease_s), ("ttl_s", ttl_s)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if owner is not None and (not isinstance(owner, str) or not 0 < len(owner) <= 64):
            raise ValueError(f"owner must be a string of 1 to 64 characters, got {owner!r}")
        self.engine = engine
        self.lease_s = float(lease_s)  # the longest a waiter waits for a live holder
        self.ttl_s = min(float(ttl_s), self.lease_s)  # how long a row outlives its last heartbeat
        self.owner = owner or uuid.uuid4().hex
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def try_acquire(self, key: str) -> bool:
        """Take the lease on ``key``; False while another owner holds an unexpired one."""
        _check(key)
        now = utcnow()
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(LEASES).values(key=key, owner=self.owner, expires_at=now + dt.timedelta(seconds=self.ttl_s))
        with write_transaction(self.engine) as conn:
            conn.execute(delete(LEASES).where(LEASES.c.key == key, LEASES.c.expires_at <= now))
            taken = stmt.on_conflict_do_nothing(index_elements=["key"]).returning(LEASES.c.key)
            got = conn.execute(taken).first() is not None
        if got:
            with self._lock:
                self._held.add(key)
        return got

    def held(self, key: str) -> bool:
        """True while someone holds an unexpired lease on ``key``."""
        query = select(LEASES.c.owner).where(LEASES.c.key == key, LEASES.c.expires_at > utcnow())
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def release(self, key: str) -> None:
        """Give our lease on ``key`` back (someone else's is left alone)."""
        with self._lock:
            self._held.discard(key)
        with write_transaction(self.engine) as conn:
            conn.execute(delete(LEASES).where(LEASES.c.key == key, LEASES.c.owner == self.owner))

    def release_own(self) -> int:
        """Drop every row this owner holds (left by an earlier run of the same replica)."""
        with write_transaction(self.engine) as conn:
            return int(conn.execute(delete(LEASES).where(LEASES.c.owner == self.owner)).rowcount or 0)

    def renew(self) -> int:
        """Push the expiry of our held leases ``ttl_s`` ahead; returns the rows renewed."""
        with self._lock:
            keys = sorted(self._held)
        if not keys:
            return 0
        expires = utcnow() + dt.timedelta(seconds=self.ttl_s)
        stmt = update(LEASES).where(LEASES.c.owner == self.owner, LEASES.c.key.in_(keys)).values(
            expires_at=expires)
        with write_transaction(self.engine) as conn:
            return int(conn.execute(stmt).rowcount or 0)

    def start(self) -> None:
        """Start the heartbeat thread (idempotent)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name="semcache-lease-heartbeat", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the heartbeat; leases still held then expire within ``ttl_s``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            try:
                self.renew()
            except Exception as exc:  # the database is away: the next beat tries again
                log.warning("renewing single-flight leases failed (%s)", type(exc).__name__)


def _check(key: str) -> None:
    if not isinstance(key, str) or not 0 < len(key) <= 64:
        raise ValueError(f"lease key must be a string of 1 to 64 characters, got {key!r}")
