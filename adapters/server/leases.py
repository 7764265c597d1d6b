"""``FlightLeases``: one replica at a time asks the upstream for a given question.

A lease is a row of ``flight_leases`` (key, owner, expiry) taken with an
insert that does nothing on a key conflict, so exactly one of several
replicas that miss together gets it. The others wait until the row is gone
(the leader stored its answer and released it) or has expired (the leader
died), then read the stored entry. Expired rows are taken over. Works the
same on PostgreSQL and SQLite.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Engine, Table, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from semcache.storage.engine import write_transaction
from semcache.storage.schema import FlightLease, utcnow

LEASES: Table = FlightLease.__table__  # type: ignore[assignment]


class FlightLeases:
    """Leases on question keys (at most 64 characters, e.g. a hex digest)."""

    def __init__(self, engine: Engine, *, lease_s: float = 30.0, owner: str | None = None) -> None:
        if isinstance(lease_s, bool) or not isinstance(lease_s, int | float) or lease_s <= 0:
            raise ValueError(f"lease_s must be a positive number of seconds, got {lease_s!r}")
        self.engine = engine
        self.lease_s = float(lease_s)
        self.owner = owner or uuid.uuid4().hex

    def try_acquire(self, key: str) -> bool:
        """Take the lease on ``key``; False while another owner holds an unexpired one."""
        _check(key)
        now = utcnow()
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(LEASES).values(key=key, owner=self.owner,
                                     expires_at=now + dt.timedelta(seconds=self.lease_s))
        with write_transaction(self.engine) as conn:
            conn.execute(delete(LEASES).where(LEASES.c.key == key, LEASES.c.expires_at <= now))
            taken = stmt.on_conflict_do_nothing(index_elements=["key"]).returning(LEASES.c.key)
            return conn.execute(taken).first() is not None

    def held(self, key: str) -> bool:
        """True while someone holds an unexpired lease on ``key``."""
        query = select(LEASES.c.owner).where(LEASES.c.key == key, LEASES.c.expires_at > utcnow())
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def release(self, key: str) -> None:
        """Give our lease on ``key`` back (someone else's is left alone)."""
        with write_transaction(self.engine) as conn:
            conn.execute(delete(LEASES).where(LEASES.c.key == key, LEASES.c.owner == self.owner))


def _check(key: str) -> None:
    if not isinstance(key, str) or not 0 < len(key) <= 64:
        raise ValueError(f"lease key must be a string of 1 to 64 characters, got {key!r}")
