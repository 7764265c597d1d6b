"""Admin pages that change things: policy editor, invalidation with dry run, tenants and keys; the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from semcache.adapters.admin.entries import EntryFilters
from semcache.adapters.admin.pages import Ctx, Reader, Writer, render, see_other

router = APIRouter(prefix="/admin", include_in_schema=False)
OptStr = Annotated[str, Form()]


@router.get("/policies")
def policies(ctx: Ctx, actor: Reader, flash: str = "", error: str = "") -> HTMLResponse:
    return render("policies.html", actor=actor, policies=ctx.service.policies(), flash=flash or None,
                  error=error or None)


def _policy_fields(threshold: str, ttl_seconds: str, max_entries: str, enabled: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"threshold": float(threshold), "enabled": enabled == "on"}
    if ttl_seconds.strip():
        fields["ttl_seconds"] = int(ttl_seconds)
    if max_entries.strip():
        fields["max_entries"] = int(max_entries)
    return fields


@router.post("/policies/{category}")
def edit_policy(request: Request, category: str, ctx: Ctx, actor: Writer, threshold: OptStr,
                ttl_seconds: OptStr = "", max_entries: OptStr = "", enabled: OptStr = "") -> Response:
    url = request.url_for("policies")
    try:
        current = ctx.service.policy_set().get(category)
        fields = {k: v for k, v in _policy_fields(threshold, ttl_seconds, max_entries, enabled).items()
                  if getattr(current, k) != v}  # only what the form changed is overridden
        if not fields:
            return see_other(str(url.include_query_params(flash=f"Policy of {category} unchanged.")))
        ctx.service.set_policy(category, actor.name, **fields)
    except ValueError as exc:
        return see_other(str(url.include_query_params(error=f"{category}: {exc}")))
    return see_other(str(url.include_query_params(flash=f"Policy of {category} saved; it applies now.")))


@router.get("/invalidate")
def invalidate_form(ctx: Ctx, actor: Reader) -> HTMLResponse:
    return render("invalidate.html", actor=actor, form={}, result=None, error=None)


@router.post("/invalidate")
def invalidate(ctx: Ctx, actor: Writer, tenant: OptStr = "", category: OptStr = "", model: OptStr = "",
               text: OptStr = "", older_than_h: OptStr = "", entry_ids: OptStr = "",
               mode: OptStr = "dry_run", confirmed_ids: OptStr = "") -> HTMLResponse:
    form = {"tenant": tenant, "category": category, "model": model, "text": text,
            "older_than_h": older_than_h, "entry_ids": entry_ids}
    dry_run = mode != "delete"
    try:
        ids = [int(x) for x in entry_ids.replace(",", " ").split()] or None
        older = float(older_than_h) * 3600.0 if older_than_h.strip() else None
        filters = EntryFilters.of(tenant=tenant, category=category, model=model, text=text, older_than_s=older)
        if ids is not None and not filters.empty:
            raise ValueError("give entry ids or filters, not both")
        confirmed = [int(x) for x in confirmed_ids.split()] if confirmed_ids.strip() and not ids else None
        affected = ctx.service.invalidate(actor.name, ids=ids, filters=None if ids else filters, dry_run=dry_run,
                                          confirmed=confirmed)
    except (TypeError, ValueError) as exc:
        return render("invalidate.html", status=400, actor=actor, form=form, result=None, error=str(exc))
    preview: list[dict[str, Any]] = []
    if dry_run and affected:
        preview = [e for e in (ctx.service.entry(i) for i in affected[:20]) if e is not None]
    return render("invalidate.html", actor=actor, form=form, error=None,
                  result={"dry_run": dry_run, "ids": affected, "preview": preview})


@router.get("/audit")
def audit(ctx: Ctx, actor: Reader, page: int = 1, action: str = "") -> HTMLResponse:
    page = max(1, page)
    rows = ctx.service.audit.recent(limit=50, offset=(page - 1) * 50, action=action or None)
    total = ctx.service.audit.count(action or None)
    return render("audit.html", actor=actor, rows=rows, page=page, pages=max(1, -(-total // 50)),
                  action=action, total=total)


@router.get("/tenants")
def tenants(ctx: Ctx, actor: Reader, flash: str = "") -> HTMLResponse:
    return render("tenants.html", actor=actor, tenants=ctx.service.keys.tenants(), flash=flash or None,
                  new_key=None)


@router.post("/tenants")
def create_tenant(ctx: Ctx, actor: Writer, name: OptStr, retention_days: OptStr = "") -> HTMLResponse:
    try:
        days = int(retention_days) if retention_days.strip() else None
        ctx.service.keys.create_tenant(name, days)
    except ValueError as exc:
        return render("tenants.html", status=400, actor=actor, tenants=ctx.service.keys.tenants(),
                      flash=None, new_key=None, error=str(exc))
    ctx.service.audit.record(actor.name, "tenant.create", f"tenant {name}", detail={"retention_days": days})
    return render("tenants.html", actor=actor, tenants=ctx.service.keys.tenants(),
                  flash=f"Tenant {name} created.", new_key=None)


@router.post("/tenants/{tenant}/keys")
def issue_key(ctx: Ctx, actor: Writer, tenant: str, role: OptStr = "client") -> HTMLResponse:
    key = ctx.service.keys.issue_key(tenant, role)
    ctx.service.audit.record(actor.name, "key.issue", f"tenant {tenant}", detail={"prefix": key[:12]})
    # Shown in this response only, never in a URL or a log.
    return render("tenants.html", actor=actor, tenants=ctx.service.keys.tenants(), flash=None,
                  new_key={"tenant": tenant, "key": key})


@router.post("/keys/{key_id}/revoke")
def revoke_key(request: Request, ctx: Ctx, actor: Writer, key_id: int) -> Response:
    try:
        info = ctx.service.keys.revoke(key_id)
    except (KeyError, ValueError) as exc:
        return see_other(str(request.url_for("tenants").include_query_params(flash=f"Not revoked: {exc}")))
    ctx.service.audit.record(actor.name, "key.revoke", f"key {key_id}", detail={"prefix": info["prefix"]})
    return see_other(str(request.url_for("tenants").include_query_params(flash=f"Key {key_id} revoked.")))


@router.post("/keys/{key_id}/rotate")
def rotate_key(request: Request, ctx: Ctx, actor: Writer, key_id: int) -> Response:
    try:
        key, info = ctx.service.keys.rotate(key_id)
    except (KeyError, ValueError) as exc:
        return see_other(str(request.url_for("tenants").include_query_params(flash=f"Not rotated: {exc}")))
    ctx.service.audit.record(actor.name, "key.rotate", f"key {key_id}",
                             detail={"old_prefix": info["prefix"], "new_prefix": key[:12]})
    return render("tenants.html", actor=actor, tenants=ctx.service.keys.tenants(), flash=None,
                  new_key={"tenant": info["tenant"], "key": key})
