"""SQLAlchemy models of tenants and API keys (schema: migration ``0002_tenants_api_keys``).

Keys are stored only as SHA-256 hashes, with a short non-secret prefix so that
an operator can tell keys apart. They share the declarative ``Base`` of
:mod:`semcache.storage.schema`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from semcache.storage.schema import Base, UTCDateTime, utcnow

ROLES = ("client", "admin")


class Tenant(Base):
    """A tenant: entries of one tenant are never served to another."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    retention_days: Mapped[int | None] = mapped_column(Integer)


class ApiKey(Base):
    """One API key of a tenant, stored as a hash; revoked keys stay for the audit trail."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(Integer, ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    role: Mapped[str] = mapped_column(String(32), default="client")
