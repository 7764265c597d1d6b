"""The admin REST API under ``/admin/api`` (JSON, described in the app's OpenAPI).

Every route needs an admin token (401 without); write routes need the
``admin`` role (403 for ``viewer``). Errors use OpenAI's error envelope.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from semcache.adapters.admin.deps import ContextDep, Reader, Writer
from semcache.adapters.admin.entries import MAX_PAGE, EntryFilters
from semcache.adapters.server.errors import ProxyError

from semcache.storage.bounds import MAX_AGE_S, MAX_ID, MAX_INT32, MAX_OFFSET, MAX_RETENTION_DAYS

# Every number is bounded here (400 beyond) and again in the store (semcache.storage.bounds).
EntryId = Annotated[int, Path(ge=1, le=MAX_ID)]
KeyId = Annotated[int, Path(ge=1, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
AgeQuery = Annotated[float | None, Query(ge=0, le=MAX_AGE_S, allow_inf_nan=False)]

router = APIRouter(prefix="/admin/api", tags=["admin"])


class InvalidateIn(BaseModel):
    """Entry ids, or filters that all must match; ``dry_run`` only reports what would go."""

    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(None, max_length=100_000)
    tenant: str | None = None
    category: str | None = None
    model: str | None = None
    text: str | None = Field(None, min_length=1)
    older_than_s: float | None = Field(None, ge=0, le=MAX_AGE_S, allow_inf_nan=False, description="created more than this many seconds ago")
    dry_run: bool = False


class PolicyIn(BaseModel):
    """Fields to override; a field left out keeps its value, ``null`` TTL/quota means no limit."""

    threshold: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    ttl_seconds: int | None = Field(None, ge=1, le=MAX_INT32)
    max_entries: int | None = Field(None, ge=1, le=MAX_INT32)
    enabled: bool | None = None
    personal: bool | None = None


class TenantIn(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    retention_days: int | None = Field(None, ge=1, le=MAX_RETENTION_DAYS)


class KeyIn(BaseModel):
    role: Literal["client", "admin"] = "client"


class QuestionIn(BaseModel):
    question: str = Field(min_length=1, pattern=r"\S")  # blank questions are a 400


def _bad(exc: Exception) -> ProxyError:
    return ProxyError(400, str(exc), code="invalid_request")


def _not_found(what: str) -> ProxyError:
    return ProxyError(404, f"{what} not found", code="not_found")


@router.get("/entries", summary="List, filter and search entries")
def list_entries(ctx: ContextDep, _: Reader, text: str | None = None, tenant: str | None = None,
                 category: str | None = None, model: str | None = None,
                 older_than_s: AgeQuery = None, newer_than_s: AgeQuery = None,
                 limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50, offset: Offset = 0) -> dict[str, Any]:
    """Newest first. ``text`` is a case-insensitive substring of the prompt."""
    filters = EntryFilters.of(text=text, tenant=tenant, category=category, model=model,
                              older_than_s=older_than_s, newer_than_s=newer_than_s)
    rows, total = ctx.service.entries(filters, limit=limit, offset=offset)
    return {"total": total, "limit": limit, "offset": offset, "entries": rows}


@router.get("/entries/{entry_id}", summary="One entry with its hits, savings and policy")
def get_entry(entry_id: EntryId, ctx: ContextDep, _: Reader) -> dict[str, Any]:
    entry = ctx.service.entry(entry_id)
    if entry is None:
        raise _not_found(f"entry {entry_id}")
    return entry


@router.post("/entries/{entry_id}/check", summary="Would this question be answered from the entry?")
def check_entry(entry_id: EntryId, body: QuestionIn, ctx: ContextDep, _: Reader) -> dict[str, Any]:
    """Similarity (with a live cache) and the verifier's verdict and reason."""
    try:
        return ctx.service.check_question(entry_id, body.question)
    except KeyError:
        raise _not_found(f"entry {entry_id}") from None
    except ValueError as exc:
        raise _bad(exc) from None


@router.delete("/entries/{entry_id}", summary="Delete one entry")
def delete_entry(entry_id: EntryId, ctx: ContextDep, actor: Writer) -> dict[str, Any]:
    if not ctx.service.delete_entry(entry_id, actor.name):
        raise _not_found(f"entry {entry_id}")
    return {"deleted": [entry_id]}


@router.post("/entries/{entry_id}/wrong", summary="Report the entry as a wrong hit")
def mark_wrong(entry_id: EntryId, ctx: ContextDep, actor: Writer) -> dict[str, Any]:
    """Counts the report and feeds the category's adaptive threshold."""
    try:
        return ctx.service.mark_wrong(entry_id, actor.name)
    except (KeyError, ValueError):
        raise _not_found(f"entry {entry_id}") from None


@router.post("/invalidate", summary="Invalidate by ids or filters, with dry run")
def invalidate(body: InvalidateIn, ctx: ContextDep, actor: Writer) -> dict[str, Any]:
    filters = EntryFilters.of(tenant=body.tenant, category=body.category, model=body.model,
                              text=body.text, older_than_s=body.older_than_s)
    if body.ids is not None and not filters.empty:
        raise _bad(ValueError("give entry ids or filters, not both"))
    try:
        ids = ctx.service.invalidate(actor.name, ids=body.ids, filters=filters, dry_run=body.dry_run)
    except ValueError as exc:
        raise _bad(exc) from None
    return {"dry_run": body.dry_run, "count": len(ids), "ids": ids}


@router.get("/policies", summary="Effective policy of every category")
def get_policies(ctx: ContextDep, _: Reader) -> dict[str, Any]:
    return ctx.service.policies()


@router.put("/policies/{category}", summary="Override a category's policy (applies at once)")
def put_policy(category: str, body: PolicyIn, ctx: ContextDep, actor: Writer) -> dict[str, Any]:
    fields = {name: getattr(body, name) for name in body.model_fields_set}
    try:
        ctx.service.set_policy(category, actor.name, **fields)
    except ValueError as exc:
        raise _bad(exc) from None
    return ctx.service.policies()[category]


@router.delete("/policies/{category}", summary="Drop a category's overrides")
def reset_policy(category: str, ctx: ContextDep, actor: Writer) -> dict[str, Any]:
    try:
        existed = ctx.service.reset_policy(category, actor.name)
    except ValueError as exc:
        raise _bad(exc) from None
    return {"reset": existed, "policy": ctx.service.policies()[category]}


@router.get("/tenants", summary="Tenants and their keys (prefixes only)")
def list_tenants(ctx: ContextDep, _: Reader) -> list[dict[str, Any]]:
    return ctx.service.keys.tenants()


@router.post("/tenants", summary="Create a tenant", status_code=201)
def create_tenant(body: TenantIn, ctx: ContextDep, actor: Writer) -> dict[str, Any]:
    try:
        tenant_id = ctx.service.keys.create_tenant(body.name, body.retention_days)
    except ValueError as exc:
        raise ProxyError(409, str(exc), code="conflict") from None
    ctx.service.audit.record(actor.name, "tenant.create", f"tenant {body.name}",
                             detail={"retention_days": body.retention_days})
    return {"id": tenant_id, "name": body.name}


@router.post("/tenants/{tenant}/keys", summary="Issue an API key (shown once)", status_code=201)
def issue_key(tenant: str, body: KeyIn, ctx: ContextDep, actor: Writer) -> dict[str, Any]:
    try:
        key = ctx.service.keys.issue_key(tenant, body.role)
    except ValueError:
        raise _not_found(f"tenant {tenant!r}") from None
    ctx.service.audit.record(actor.name, "key.issue", f"tenant {tenant}", detail={"prefix": key[:12]})
    return {"tenant": tenant, "role": body.role, "key": key}


@router.post("/keys/{key_id}/rotate", summary="Replace a key (the old one is revoked)")
def rotate_key(key_id: KeyId, ctx: ContextDep, actor: Writer) -> dict[str, Any]:
    try:
        key, info = ctx.service.keys.rotate(key_id)
    except KeyError:
        raise _not_found(f"key {key_id}") from None
    except ValueError as exc:
        raise ProxyError(409, str(exc), code="conflict") from None
    ctx.service.audit.record(actor.name, "key.rotate", f"key {key_id}",
                             detail={"old_prefix": info["prefix"], "new_prefix": key[:12]})
    return {"tenant": info["tenant"], "role": info["role"], "key": key}


@router.post("/keys/{key_id}/revoke", summary="Revoke a key")
def revoke_key(key_id: KeyId, ctx: ContextDep, actor: Writer) -> dict[str, Any]:
    try:
        info = ctx.service.keys.revoke(key_id)
    except KeyError:
        raise _not_found(f"key {key_id}") from None
    except ValueError as exc:
        raise ProxyError(409, str(exc), code="conflict") from None
    ctx.service.audit.record(actor.name, "key.revoke", f"key {key_id}", detail={"prefix": info["prefix"]})
    return {"revoked": key_id, **info}


@router.post("/tenants/{tenant}/erase", summary="Erase a tenant's entries and statistics")
def erase_tenant(tenant: str, ctx: ContextDep, actor: Writer) -> dict[str, int]:
    return ctx.service.erase_tenant(tenant, actor.name)


@router.post("/retention/apply", summary="Delete entries older than their tenant's retention period")
def apply_retention(ctx: ContextDep, actor: Writer) -> dict[str, int]:
    return ctx.service.apply_retention(actor.name)


@router.get("/stats", summary="Hit rate, false-hit reports and savings (tokens, cost, latency)")
def stats(ctx: ContextDep, _: Reader, tenant: str | None = None) -> dict[str, Any]:
    return ctx.service.stats(tenant)


@router.get("/audit", summary="The audit log, newest first")
def audit(ctx: ContextDep, _: Reader, action: str | None = None,
          limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50, offset: Offset = 0) -> dict[str, Any]:
    rows = ctx.service.audit.recent(limit=limit, offset=offset, action=action)
    return {"total": ctx.service.audit.count(action), "records": [dataclasses.asdict(r) for r in rows]}
