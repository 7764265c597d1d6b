"""The durable change log: written inside the transaction of each change, read by followers.

Every store write that changes what a replica holds in memory calls
:func:`record_change` on its own connection before its commit, so the change and its
log row commit or roll back together. Log ids become visible in id order (an advisory
lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite); why: docs/design/core.md."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, text

from semcache.storage.schema import ChangeLog, utcnow

CHANGES: Table = ChangeLog.__table__  # type: ignore[assignment]
CHANNEL = "semcache_changes"
# Arbitrary constant naming the change-log ordering lock among advisory locks.
PG_FEED_LOCK_KEY = 0x5E3C_FEED
KINDS = ("entry.add", "entry.delete", "policy", "key.revoke")
IDS_PER_ROW = 5000  # large deletions are split so no payload grows without bound


@dataclass(frozen=True, slots=True)
class Change:
    """One row of the change log."""

    id: int
    at: dt.datetime
    origin: str
    kind: str
    payload: Any


def record_change(conn: Connection, kind: str, payload: Any, origin: str) -> None:
    """Append one change inside the caller's open write transaction (call it last)."""
    if kind not in KINDS:
        raise ValueError(f"change kind must be one of {KINDS}, got {kind!r}")
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_FEED_LOCK_KEY})
    change_id = conn.execute(
        insert(CHANGES).values(at=utcnow(), origin=origin, kind=kind, payload=payload)
        .returning(CHANGES.c.id)
    ).scalar_one()
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": CHANNEL, "id": str(change_id)})


def record_ids(conn: Connection, kind: str, ids: Sequence[int], origin: str) -> None:
    """Log an ``entry.add``/``entry.delete`` of ``ids`` (nothing when empty), in bounded rows."""
    ids = list(ids)
    for start in range(0, len(ids), IDS_PER_ROW):
        record_change(conn, kind, {"ids": ids[start : start + IDS_PER_ROW]}, origin)


def position(engine: Engine | Connection) -> int:
    """The id of the newest change (0 for an empty log): where a fresh load starts following."""
    return _scalar(engine, select(func.coalesce(func.max(CHANGES.c.id), 0)))


def oldest(engine: Engine | Connection) -> int | None:
    """The id of the oldest change still kept, or None for an empty log."""
    value = _scalar(engine, select(func.min(CHANGES.c.id)))
    return None if value is None else int(value)


def changes_after(engine: Engine, after: int, limit: int = 1000) -> list[Change]:
    """Changes with ids above ``after``, oldest first, at most ``limit``."""
    query = select(CHANGES).where(CHANGES.c.id > after).order_by(CHANGES.c.id).limit(limit)
    with engine.connect() as conn:
        return [Change(int(r.id), r.at, r.origin, r.kind, r.payload) for r in conn.execute(query)]


def prune(engine: Engine, older_than: dt.datetime) -> int:
    """Delete changes older than ``older_than``, always keeping the newest one; returns the count."""
    from semcache.storage.engine import write_transaction

    newest = select(func.max(CHANGES.c.id)).scalar_subquery()
    with write_transaction(engine) as conn:
        result = conn.execute(delete(CHANGES).where(CHANGES.c.at < older_than, CHANGES.c.id < newest))
        return int(result.rowcount or 0)


def _scalar(bind: Engine | Connection, query: Any) -> Any:
    if isinstance(bind, Connection):
        return bind.execute(query).scalar()
    with bind.connect() as conn:
        return conn.execute(query).scalar()
