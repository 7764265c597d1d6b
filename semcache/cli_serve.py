"""``semcache serve``: run the OpenAI-compatible caching proxy; ``issue_key``: create a tenant key.

    semcache serve --upstream http://127.0.0.1:8000 [--port 8080] [--db URL] [--policies FILE]

Options not given here come from ``SEMCACHE_*`` environment variables (see
``semcache.adapters.proxy.settings``). Also runnable as
``python -m semcache.cli_serve --upstream URL``. FastAPI and uvicorn are
imported only when the command runs.
"""

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
    try:
        settings = ProxySettings(**overrides)
    except ValueError as exc:
        _fail(str(exc))
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=int(settings.shutdown_grace_s) or None, loop="auto", http="auto")


def issue_key(
    tenant: Annotated[str, typer.Argument(help="tenant name (created if missing)")],
    db: Annotated[str, typer.Option("--db", envvar="SEMCACHE_DB_URL", help="SQLAlchemy URL of the store")]
    = "sqlite:///semcache.db",
    role: Annotated[str, typer.Option(help="client or admin")] = "client",
) -> None:
    """Create an API key for TENANT and print it (it is stored only as a hash)."""
    from semcache.adapters.proxy.keys import KeyStore
    from semcache.store import Store

    with Store(db) as store:
        try:
            typer.echo(KeyStore(store.engine).issue_key(tenant, role=role, create_tenant=True))
        except ValueError as exc:
            _fail(str(exc))


if __name__ == "__main__":
    typer.run(serve)
