"""The audit log: every admin change is written with who, what, when and how many."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from semcache.adapters.server.audit_tables import AuditRecord
from sqlalchemy import Engine, Table, func, insert, select

from semcache.storage.bounds import MAX_OFFSET
from semcache.storage.engine import write_transaction
from semcache.storage.schema import utcnow

AUDIT: Table = AuditRecord.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the audit log."""

    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    count: int


class AuditLog:
    """Appends to and reads the ``audit_log`` table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, actor: str, action: str, target: str, *, detail: dict[str, Any] | None = None,
               count: int = 0) -> int:
        """Append one record; returns its id. ``detail`` must be JSON-serialisable."""
        for name, value in (("actor", actor), ("action", action)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"audit {name} must be a non-empty string, got {value!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"audit count must be an int >= 0, got {count!r}")
        clean = json.loads(json.dumps(detail or {}, default=str))
        row = {"at": utcnow(), "actor": actor, "action": action, "target": str(target)[:512],
               "detail": clean, "count": count}
        with write_transaction(self.engine) as conn:
            result = conn.execute(insert(AUDIT).values(**row))
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def recent(self, *, limit: int = 50, offset: int = 0, action: str | None = None) -> list[AuditEntry]:
        """Newest first."""
        offset = min(max(offset, 0), MAX_OFFSET)  # past any row; SQL drivers overflow on larger ints
        query = select(AUDIT).order_by(AUDIT.c.id.desc()).limit(limit).offset(offset)
        if action:
            query = query.where(AUDIT.c.action == action)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [AuditEntry(**dict(row)) for row in rows]

    def count(self, action: str | None = None) -> int:
        """How many records (of one action, if given)."""
        query = select(func.count()).select_from(AUDIT)
        if action:
            query = query.where(AUDIT.c.action == action)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
