"""``semcache admin``: serve the admin, and script it (invalidate, export/import, policies)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from semcache.adapters.admin.service import AdminService

admin_app = typer.Typer(help="The cache admin: web page and REST API, invalidation, export/import, policies.",
                        no_args_is_help=True)
policies_app = typer.Typer(help="Read and override per-category policies.", no_args_is_help=True)
admin_app.add_typer(policies_app, name="policies")

DbOpt = Annotated[str, typer.Option("--db", envvar="SEMCACHE_DB_URL", help="SQLAlchemy URL of the store")]
ActorOpt = Annotated[str, typer.Option("--actor", help="name recorded in the audit log")]
CLI_ACTOR = "cli"


def _service(db: str) -> AdminService:
    from semcache.adapters.admin.service import AdminService

    from semcache.storage.store import Store

    return AdminService(Store(db))


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@admin_app.command("serve")
def serve(db: DbOpt = "sqlite:///semcache.db",
          token: Annotated[str, typer.Option("--token", envvar="SEMCACHE_ADMIN_TOKEN",
                                             help="admin token (>= 16 characters)")] = "",
          viewer_token: Annotated[Optional[list[str]], typer.Option("--viewer-token",  # noqa: UP045
                                                                    help="read-only token (repeatable)")] = None,
          host: str = "127.0.0.1", port: int = 8090,
          prices: Annotated[Optional[Path], typer.Option(help="YAML price table: {default, models}")] = None,  # noqa: UP045
          policies: Annotated[Optional[Path], typer.Option(help="policy file of the cache")] = None) -> None:  # noqa: UP045
    """Serve the admin pages and API on their own, against the store at --db."""
    import uvicorn
    from semcache.adapters.admin.app import create_admin_app
    from semcache.adapters.admin.pricing import PriceTable

    tokens = {token: "admin", **{t: "viewer" for t in viewer_token or []}}
    try:
        app = create_admin_app(db, tokens, prices=PriceTable.from_file(prices) if prices else None,
                               policies_file=policies)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"admin on http://{host}:{port}/admin (store {db})")
    uvicorn.run(app, host=host, port=port, log_level="info")


@admin_app.command("invalidate")
def invalidate(db: DbOpt = "sqlite:///semcache.db",
               entry_id: Annotated[Optional[list[int]], typer.Option("--id", help="entry id (repeatable)")] = None,  # noqa: UP045
               tenant: Optional[str] = None, category: Optional[str] = None,  # noqa: UP045
               model: Optional[str] = None, text: Optional[str] = None,  # noqa: UP045
               older_than_hours: Annotated[Optional[float], typer.Option(min=0)] = None,  # noqa: UP045
               dry_run: Annotated[bool, typer.Option("--dry-run", help="only list what would go")] = False,
               actor: ActorOpt = CLI_ACTOR) -> None:
    """Delete entries by id or filters (all must match); prints the affected ids as JSON."""
    from semcache.adapters.admin.entries import EntryFilters

    service = _service(db)
    filters = EntryFilters.of(tenant=tenant, category=category, model=model, text=text,
                              older_than_s=None if older_than_hours is None else older_than_hours * 3600)
    if entry_id and not filters.empty:
        _fail("give --id or filters, not both")
    try:
        ids = service.invalidate(actor, ids=entry_id or None, filters=filters, dry_run=dry_run)
    except ValueError as exc:
        _fail(str(exc))
    finally:
        service.store.close()
    typer.echo(json.dumps({"dry_run": dry_run, "count": len(ids), "ids": ids}))


@admin_app.command("retention")
def retention(db: DbOpt = "sqlite:///semcache.db", actor: ActorOpt = CLI_ACTOR) -> None:
    """Delete entries older than their tenant's retention period; prints counts per tenant as JSON."""
    service = _service(db)
    try:
        typer.echo(json.dumps(service.apply_retention(actor)))
    finally:
        service.store.close()


@admin_app.command("export")
def export(out: Annotated[Path, typer.Option("--out", help="JSONL file to write")],
           db: DbOpt = "sqlite:///semcache.db") -> None:
    """Write every entry (with its vectors) to a JSONL file."""
    from semcache.adapters.admin.transfer import export_jsonl

    from semcache.storage.store import Store

    with Store(db) as store:
        typer.echo(f"exported {export_jsonl(store, out)} entries to {out}")


@admin_app.command("import")
def import_(path: Annotated[Path, typer.Argument(help="JSONL file from `semcache admin export`")],
            db: DbOpt = "sqlite:///semcache.db", actor: ActorOpt = CLI_ACTOR) -> None:
    """Add the entries of an export to the store (new ids); a running cache sees them after a restart."""
    from semcache.adapters.admin.transfer import import_jsonl
    from semcache.adapters.server.audit import AuditLog

    from semcache.storage.store import Store

    if not path.is_file():
        _fail(f"no such file: {path}")
    with Store(db) as store:
        try:
            ids = import_jsonl(store, path)
        except ValueError as exc:
            _fail(str(exc))
        AuditLog(store.engine).record(actor, "import", str(path.name), count=len(ids))
    typer.echo(f"imported {len(ids)} entries")


@policies_app.command("get")
def policies_get(db: DbOpt = "sqlite:///semcache.db",
                 category: Annotated[Optional[str], typer.Argument()] = None,  # noqa: UP045
                 policies: Annotated[Optional[Path], typer.Option(help="policy file of the cache")] = None) -> None:  # noqa: UP045
    """Print the effective policies (file plus database overrides) as JSON."""
    from semcache.adapters.admin.service import AdminService

    from semcache.storage.store import Store

    with Store(db) as store:
        found = AdminService(store, policies_file=policies).policies()
    if category is not None:
        if category not in found:
            _fail(f"unknown category {category!r}; expected one of {sorted(found)}")
        found = {category: found[category]}
    typer.echo(json.dumps(found, indent=2, default=str))


@policies_app.command("set")
def policies_set(category: str, db: DbOpt = "sqlite:///semcache.db",
                 threshold: Annotated[Optional[float], typer.Option()] = None,  # noqa: UP045
                 ttl_seconds: Annotated[Optional[int], typer.Option(min=1)] = None,  # noqa: UP045
                 max_entries: Annotated[Optional[int], typer.Option(min=1)] = None,  # noqa: UP045
                 enabled: Annotated[Optional[bool], typer.Option("--enabled/--disabled")] = None,  # noqa: UP045
                 policies: Annotated[Optional[Path], typer.Option(help="policy file of the cache")] = None,  # noqa: UP045
                 actor: ActorOpt = CLI_ACTOR) -> None:
    """Override fields of one category's policy (audited); running proxies poll for it."""
    from semcache.adapters.admin.service import AdminService

    from semcache.storage.store import Store

    fields = {k: v for k, v in dict(threshold=threshold, ttl_seconds=ttl_seconds, max_entries=max_entries,
                                    enabled=enabled).items() if v is not None}
    with Store(db) as store:
        try:
            policy = AdminService(store, policies_file=policies).set_policy(category, actor, **fields)
        except ValueError as exc:
            _fail(str(exc))
    typer.echo(json.dumps({category: {k: getattr(policy, k) for k in ("threshold", "ttl_seconds",
                                                                      "max_entries", "enabled")}}))
