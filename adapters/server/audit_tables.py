"""SQLAlchemy model of the admin audit log (schema: migration ``0003_admin_audit``).

One row per admin action that changed something (or, for invalidations, that
was asked for as a dry run): who, what, on which target, when and how many
entries it touched. It shares the declarative ``Base`` of :mod:`semcache.storage.schema`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from semcache.storage.schema import Base, UTCDateTime, utcnow


class AuditRecord(Base):
    """One audited admin action."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(512))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    count: Mapped[int] = mapped_column(Integer, default=0)
