"""``semcache serve``: run the OpenAI-compatible caching proxy; ``issue_key``: create a tenant key.

    semcache serve --upstream http://127.0.0.1:8000 [--port 8080] [--db URL] [--policies FILE]
                   [--redis-url redis://HOST:6379/0] [--feed auto|on|off]

Replicas share one cache through one PostgreSQL ``--db`` (docs/deploy.md). Options not
given come from ``SEMCACHE_*`` variables (``ProxySettings``). Registered as a ``semcache``
sub-command through the ``semcache.commands`` entry points; FastAPI and uvicorn are
imported only when it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def serve(
    upstream: Annotated[str, typer.Option("--upstream", help="base URL of the OpenAI-compatible upstream")],
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    db: Annotated[Optional[str], typer.Option("--db", help="SQLAlchemy URL of the store")] = None,  # noqa: UP045
    policies: Annotated[Optional[Path], typer.Option("--policies", help="YAML/TOML policy file")] = None,  # noqa: UP045
    require_keys: Annotated[bool, typer.Option("--require-keys/--no-require-keys",
                                               help="401 for requests without a valid tenant key")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    redis_url: Annotated[Optional[str], typer.Option("--redis-url", help="shared Redis tier")] = None,  # noqa: UP045
    redis_required: Annotated[bool, typer.Option("--redis-required/--redis-optional",
                                                 help="refuse to start when Redis is unreachable")] = False,
    feed: Annotated[Optional[str], typer.Option("--feed", help="follow other replicas' writes: auto|on|off")] = None,  # noqa: UP045
) -> None:
    """Serve the OpenAI-compatible caching proxy in front of UPSTREAM."""
    try:
        import uvicorn
        from semcache.adapters.proxy import ProxySettings, create_app
    except ImportError as exc:
        _fail(f"{exc}; install the proxy extra: pip install 'semcache[proxy]'")
    overrides: dict[str, Any] = {"upstream_url": upstream, "port": port, "host": host}
    if db is not None:
        overrides["db_url"] = db
    if policies is not None:
        overrides["policies"] = policies
    if require_keys:
        overrides["require_keys"] = True
    if redis_url is not None:
        overrides["redis_url"] = redis_url
    if redis_required:
        overrides["redis_required"] = True
    if feed is not None:
        overrides["feed"] = feed
    try:
        settings = ProxySettings(**overrides)
    except ValueError as exc:
        _fail(str(exc))
    if settings.redis_url is not None:
        _check_redis(settings.redis_url, settings.redis_required, settings.redis_timeout_s)
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=int(settings.shutdown_grace_s) or None, loop="auto", http="auto")


def _check_redis(url: str, required: bool, timeout_s: float) -> None:
    """Say at start-up whether Redis answers: fail when it is required, warn otherwise."""
    from semcache.exceptions import MissingExtraError
    from semcache.replication.redis_tier import RedisTier

    try:
        tier = RedisTier(url, timeout_s=max(timeout_s, 1.0), required=True)
        tier.check()
    except MissingExtraError as exc:
        _fail(str(exc))
    except ValueError as exc:
        if required:
            _fail(f"{exc} (--redis-required)")
        typer.secho(f"warning: {exc}; running degraded on the SQL store alone until it answers",
                    fg=typer.colors.YELLOW, err=True)
    else:
        tier.close()


def issue_key(
    tenant: Annotated[str, typer.Argument(help="tenant name (created if missing)")],
    db: Annotated[str, typer.Option("--db", envvar="SEMCACHE_DB_URL", help="SQLAlchemy URL of the store")]
    = "sqlite:///semcache.db",
    role: Annotated[str, typer.Option(help="client or admin")] = "client",
) -> None:
    """Create an API key for TENANT and print it (it is stored only as a hash)."""
    from semcache.adapters.server.keys import KeyStore

    from semcache.storage.store import Store

    with Store(db) as store:
        try:
            typer.echo(KeyStore(store.engine).issue_key(tenant, role=role, create_tenant=True))
        except ValueError as exc:
            _fail(str(exc))


if __name__ == "__main__":
    typer.run(serve)
