"""Tenants and API keys for the admin: list, create, rotate and revoke by key id.

Issuing goes through the proxy's :class:`~semcache.adapters.server.keys.KeyStore`
(keys are stored only as SHA-256 hashes; a new key is shown once). A proxy
that has a key in its resolve cache stops accepting it within that cache's TTL.
"""

from __future__ import annotations

from typing import Any

from semcache.adapters.server.keys import KeyStore, log_revocation
from semcache.adapters.server.tenant_tables import ApiKey, Tenant
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from semcache.storage.bounds import is_id
from semcache.storage.schema import utcnow


class KeyAdmin:
    """Tenant and key management on the store's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.keystore = KeyStore(engine, ttl_s=0.0)

    def tenants(self) -> list[dict[str, Any]]:
        """Every tenant with its keys (prefix, role, created, revoked; never the key)."""
        with Session(self.engine) as session:
            tenants = session.scalars(select(Tenant).order_by(Tenant.name)).all()
            keys = session.scalars(select(ApiKey).order_by(ApiKey.id)).all()
            by_tenant: dict[int, list[dict[str, Any]]] = {}
            for key in keys:
                by_tenant.setdefault(key.tenant_id, []).append(
                    {"id": key.id, "prefix": key.prefix, "role": key.role, "created_at": key.created_at,
                     "revoked_at": key.revoked_at})
            return [{"id": t.id, "name": t.name, "created_at": t.created_at, "retention_days": t.retention_days,
                     "keys": by_tenant.get(t.id, [])} for t in tenants]

    def create_tenant(self, name: str, retention_days: int | None = None) -> int:
        """Create a tenant (ValueError if the name is empty or taken)."""
        return self.keystore.create_tenant(name, retention_days=retention_days)

    def issue_key(self, tenant: str, role: str = "client") -> str:
        """A new key for an existing tenant; the only time the key is visible."""
        return self.keystore.issue_key(tenant, role=role)

    def revoke(self, key_id: int) -> dict[str, Any]:
        """Revoke a key by id; returns its tenant and role. KeyError if unknown, ValueError if revoked."""
        with Session(self.engine) as session, session.begin():
            key = session.get(ApiKey, key_id) if is_id(key_id) else None
            if key is None:
                raise KeyError(key_id)
            if key.revoked_at is not None:
                raise ValueError(f"key {key_id} is already revoked")
            key.revoked_at = utcnow()
            log_revocation(session, key.key_hash)  # other proxies drop it at once
            tenant = session.get(Tenant, key.tenant_id)
            return {"tenant": tenant.name if tenant else "", "role": key.role, "prefix": key.prefix}

    def rotate(self, key_id: int) -> tuple[str, dict[str, Any]]:
        """Issue a replacement key (same tenant and role), then revoke the old one."""
        with Session(self.engine) as session:
            key = session.get(ApiKey, key_id) if is_id(key_id) else None
            if key is None:
                raise KeyError(key_id)
            if key.revoked_at is not None:
                raise ValueError(f"key {key_id} is already revoked")
            tenant = session.get(Tenant, key.tenant_id)
            tenant_name, role = (tenant.name if tenant else ""), key.role
        new_key = self.keystore.issue_key(tenant_name, role=role)
        return new_key, self.revoke(key_id)
