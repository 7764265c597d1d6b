"""SQLAlchemy models of the store: the source of truth the vector index is rebuilt from.

The schema itself is created and changed only by the Alembic migrations in
``alembic/versions``; these classes describe it for queries. Datetimes are
timezone-aware UTC on every backend (SQLite keeps no zone, so :class:`UTCDateTime`
stores UTC and re-attaches it on the way out).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A datetime stored as UTC and always returned timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError(f"datetimes must be timezone-aware (UTC), got naive {value!r}")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    pass


class Entry(Base):
    """One cached answer with its scope, context, embedding and savings counters."""

    __tablename__ = "entries"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(255), index=True)
    model: Mapped[str] = mapped_column(String(255))
    params_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(255))
    partition: Mapped[str] = mapped_column(String(64), index=True)
    exact_key: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str] = mapped_column(String(64), index=True)
    prompt: Mapped[str] = mapped_column(Text)
    prompt_norm: Mapped[str] = mapped_column(Text)
    prompt_hash: Mapped[str] = mapped_column(String(64))
    context_hash: Mapped[str] = mapped_column(String(64))
    history: Mapped[list[str]] = mapped_column(JSON)
    history_embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    response: Mapped[Any] = mapped_column(JSON)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    embedder: Mapped[str] = mapped_column(String(255))
    # What the original answer cost upstream: what each hit on it saves.
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    hit_count: Mapped[int] = mapped_column(Integer, default=0)
    last_hit_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    tokens_saved: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_saved: Mapped[float] = mapped_column(Float, default=0.0)
    latency_saved_ms: Mapped[float] = mapped_column(Float, default=0.0)
    wrong_reports: Mapped[int] = mapped_column(Integer, default=0)


class EntryDocument(Base):
    """Links an entry to the source documents it was answered from (for invalidation)."""

    __tablename__ = "entry_documents"

    entry_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True
    )
    doc_key: Mapped[str] = mapped_column(String(512), primary_key=True, index=True)


class CategoryPolicy(Base):
    """A database override of one category's policy.

    ``set_fields`` lists the fields this row overrides; the others come from the
    policy file. That keeps ``ttl_seconds = NULL`` ("no expiry") apart from
    "not overridden".
    """

    __tablename__ = "category_policies"

    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    threshold: Mapped[float | None] = mapped_column(Float)
    ttl_seconds: Mapped[int | None] = mapped_column(Integer)
    max_entries: Mapped[int | None] = mapped_column(Integer)
    enabled: Mapped[bool | None] = mapped_column(Boolean)
    personal: Mapped[bool | None] = mapped_column(Boolean)
    set_fields: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(255))


class DailyStats(Base):
    """Per day, tenant and category counters that the admin shows."""

    __tablename__ = "stats"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(255), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    lookups: Mapped[int] = mapped_column(BigInteger, default=0)
    exact_hits: Mapped[int] = mapped_column(BigInteger, default=0)
    semantic_hits: Mapped[int] = mapped_column(BigInteger, default=0)
    misses: Mapped[int] = mapped_column(BigInteger, default=0)
    stores: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_saved: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_saved: Mapped[float] = mapped_column(Float, default=0.0)
    latency_saved_ms: Mapped[float] = mapped_column(Float, default=0.0)


class Meta(Base):
    """Key/value facts about the store, e.g. the embedder that built the index."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ChangeLog(Base):
    """One committed change that replicas apply to their in-memory state (the change feed).

    ``kind`` is ``entry.add``, ``entry.delete``, ``policy`` or ``key.revoke``;
    ``payload`` holds entry ids, a category or a key hash. ``origin`` names the
    process that made the change, so it can skip its own.
    """

    __tablename__ = "change_log"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    origin: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[Any] = mapped_column(JSON)


class FlightLease(Base):
    """A replica's lease on one question while it asks the upstream (cross-replica single-flight)."""

    __tablename__ = "flight_leases"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
