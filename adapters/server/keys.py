"""Tenants and API keys in the SQL store (tables ``tenants`` and ``api_keys``).

A key is ``sk-sc-`` followed by 43 random URL-safe characters; only its SHA-256
hash is stored. Resolving a key costs one indexed query, and the answer (also a
negative one) is remembered for ``ttl_s`` seconds, so a revoked key stops
working within that time, or at once where the change feed runs: a revocation
is logged as a ``key.revoke`` change in its own transaction, and
:meth:`KeyStore.on_change` (a change-feed listener) drops the key from memory.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache
from semcache.adapters.server.tenant_tables import ROLES, ApiKey, Tenant
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from semcache.storage.bounds import MAX_RETENTION_DAYS
from semcache.storage.changelog import record_change
from semcache.storage.schema import utcnow

KEY_PREFIX = "sk-sc-"
_MAX_CACHED = 10_000
_MISSING = object()


def log_revocation(session: Session, key_hash: str) -> None:
    """Log a key revocation in the session's transaction (after its UPDATE is flushed)."""
    session.flush()
    record_change(session.connection(), "key.revoke", {"key_hash": key_hash}, "keys")


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid key belongs to."""

    tenant: str
    role: str
    key_id: int


class KeyStore:
    """Creates tenants, issues and revokes keys, and resolves a presented key to its tenant."""

    def __init__(self, engine: Engine, *, ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.clock = clock
        # resolutions (negative ones too), least recently used evicted one at a time when full
        self._cache: TTLCache[str, Principal | None] = TTLCache(_MAX_CACHED, ttl=max(ttl_s, 1e-9), timer=clock)
        self._lock = threading.Lock()  # resolve runs in worker threads

    def create_tenant(self, name: str, *, retention_days: int | None = None) -> int:
        """Create a tenant; ValueError if the name is empty or taken."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"tenant name must be a non-empty string, got {name!r}")
        if retention_days is not None and (isinstance(retention_days, bool) or not isinstance(retention_days, int)
                                           or not 1 <= retention_days <= MAX_RETENTION_DAYS):
            raise ValueError(f"retention_days must be an integer in [1, {MAX_RETENTION_DAYS}] or None, "
                             f"got {retention_days!r}")
        with Session(self.engine) as session, session.begin():
            tenant = Tenant(name=name, retention_days=retention_days, created_at=utcnow())
            session.add(tenant)
            try:
                session.flush()
            except IntegrityError as exc:
                raise ValueError(f"tenant {name!r} already exists") from exc
            return tenant.id

    def issue_key(self, tenant: str, *, role: str = "client", create_tenant: bool = False) -> str:
        """Issue a new key for ``tenant`` and return it (the only time it is visible)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with Session(self.engine) as session, session.begin():
            tenant_id = session.scalar(select(Tenant.id).where(Tenant.name == tenant))
            if tenant_id is None:
                if not create_tenant:
                    raise ValueError(f"unknown tenant {tenant!r}")
                row = Tenant(name=tenant, created_at=utcnow())
                session.add(row)
                session.flush()
                tenant_id = row.id
            session.add(ApiKey(tenant_id=tenant_id, key_hash=hash_key(key), prefix=key[:12],
                               created_at=utcnow(), role=role))
        return key

    def revoke(self, key: str) -> bool:
        """Revoke a key; returns False if it was unknown or already revoked."""
        with Session(self.engine) as session, session.begin():
            row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            log_revocation(session, row.key_hash)
        with self._lock:
            self._cache.pop(hash_key(key), None)
        return True

    def forget(self, key_hash: str) -> None:
        """Drop one key's remembered resolution (it was revoked elsewhere)."""
        with self._lock:
            self._cache.pop(key_hash, None)

    def on_change(self, change: object) -> None:
        """Change-feed listener: forget revoked keys; forget everything after a resync."""
        kind = getattr(change, "kind", None)
        if kind == "key.revoke":
            self.forget(str(getattr(change, "payload", {}).get("key_hash", "")))
        elif kind == "resync":
            with self._lock:
                self._cache.clear()

    def is_cached(self, key: str) -> bool:
        """True when :meth:`resolve` would answer from memory (no SQL query)."""
        with self._lock:
            return hash_key(key) in self._cache

    def resolve(self, key: str) -> Principal | None:
        """The tenant and role of a valid, unrevoked key; None otherwise."""
        digest = hash_key(key)
        with self._lock:
            cached = self._cache.get(digest, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        stmt = (select(ApiKey.id, ApiKey.role, Tenant.name)
                .join(Tenant, Tenant.id == ApiKey.tenant_id)
                .where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)))
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        principal = Principal(tenant=row.name, role=row.role, key_id=row.id) if row else None
        if self.ttl_s > 0:
            with self._lock:
                self._cache[digest] = principal
        return principal
