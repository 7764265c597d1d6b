"""``semcache serve``: the caching proxy; ``semcache issue-key``: a tenant key; ``semcache config check``.

    semcache serve --upstream http://127.0.0.1:8000/v1 [--port 8080] [--db URL] [--config FILE]
                   [--redis-url redis://HOST:6379/0] [--feed auto|on|off] [--log-format json]

Replicas share one cache through one PostgreSQL ``--db`` (docs/deploy.md). Options not
given come from ``SEMCACHE_*`` variables (``ProxySettings``). Registered as a ``semcache``
sub-command through the ``semcache.commands`` entry points; FastAPI and uvicorn are
imported only when it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"semcache {version('semcache')}")
        except PackageNotFoundError:
            typer.echo("semcache (not installed)")
        raise typer.Exit()


def serve(
    upstream: Annotated[Optional[str], typer.Option("--upstream", help="base URL of the upstream, with or without /v1")] = None,  # noqa: UP045,E501
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML config file (flags > env > file)")] = None,  # noqa: UP045,E501
    port: Annotated[Optional[int], typer.Option(help="port to listen on [default: 8080]")] = None,  # noqa: UP045
    host: Annotated[Optional[str], typer.Option(help="address to bind [default: 127.0.0.1]")] = None,  # noqa: UP045
    db: Annotated[Optional[str], typer.Option("--db", help="SQLAlchemy URL of the store")] = None,  # noqa: UP045
    policies: Annotated[Optional[Path], typer.Option("--policies", help="YAML/TOML policy file")] = None,  # noqa: UP045
    require_keys: Annotated[Optional[bool], typer.Option("--require-keys/--no-require-keys",  # noqa: UP045
                                                         help="401 for requests without a valid tenant key")] = None,
    insecure_no_keys: Annotated[bool, typer.Option("--insecure-no-keys",
                                                   help="serve a non-loopback host without keys")] = False,
    log_level: Annotated[Optional[str], typer.Option(help="log level [default: info]")] = None,  # noqa: UP045
    log_format: Annotated[Optional[str], typer.Option("--log-format", help="text or json")] = None,  # noqa: UP045
    redis_url: Annotated[Optional[str], typer.Option("--redis-url", help="shared Redis tier")] = None,  # noqa: UP045
    redis_required: Annotated[Optional[bool], typer.Option("--redis-required/--redis-optional",  # noqa: UP045
                                                           help="refuse to start when Redis is unreachable")] = None,
    feed: Annotated[Optional[str], typer.Option("--feed", help="follow other replicas' writes: auto|on|off")] = None,  # noqa: UP045
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    """Serve the OpenAI-compatible caching proxy in front of UPSTREAM."""
    try:
        import uvicorn
        from semcache.adapters.proxy import create_app
        from semcache.adapters.proxy.config import ConfigError, load_settings
        from semcache.adapters.proxy.logs import configure_logging
    except ImportError as exc:
        _fail(f"{exc}; install the proxy extra: pip install 'semcache[proxy]'")
    given = {"upstream_url": upstream, "port": port, "host": host, "db_url": db, "policies": policies,
             "require_keys": require_keys, "insecure_no_keys": insecure_no_keys or None, "log_level": log_level,
             "log_format": log_format, "redis_url": redis_url, "redis_required": redis_required, "feed": feed}
    try:
        settings = load_settings(config, {k: v for k, v in given.items() if v is not None})
    except ConfigError as exc:
        _fail(str(exc))
    if settings.redis_url is not None:
        _check_redis(settings.redis_url, settings.redis_required, settings.redis_timeout_s)
    log_config = configure_logging(settings.log_format, settings.log_level)
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False,
                log_config=log_config, timeout_graceful_shutdown=int(settings.shutdown_grace_s) or None,
                loop="auto", http="auto")


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


config_app = typer.Typer(help="Check a proxy config file.", no_args_is_help=True)


@config_app.command("check")
def config_check(path: Annotated[Path, typer.Argument(help="the YAML config file")]) -> None:
    """Validate FILE as `semcache serve --config FILE` would (environment included); exit 2 on errors."""
    from semcache.adapters.proxy.config import ConfigError, load_settings

    try:
        settings = load_settings(path, {})
    except ConfigError as exc:
        _fail(str(exc))
    typer.echo(f"{path}: ok (upstream {settings.upstream_url}, listening on {settings.host}:{settings.port}, "
               f"store {settings.db_url}, keys {'required' if settings.require_keys else 'off'})")


if __name__ == "__main__":
    typer.run(serve)
