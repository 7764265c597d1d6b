"""Alembic environment for semcache's store.

Two ways in:
- in-process (``semcache.storage.engine.upgrade``): the caller passes an open connection,
  already inside a locked transaction, as ``config.attributes["connection"]``;
- the ``alembic`` command line: the URL comes from ``-x url=...`` or the
  ``SEMCACHE_DB_URL`` environment variable, and the lock is taken here.

SQLite gets ``render_as_batch`` so that later ALTERs work there too.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from semcache.storage.engine import lock_for_migration, make_engine, write_transaction

config = context.config


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("SEMCACHE_DB_URL")
    if not url:
        raise SystemExit("no database URL: pass `alembic -x url=...` or set SEMCACHE_DB_URL")
    return url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=None,
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    url = _url()
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    context.configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    try:
        with write_transaction(engine) as conn:
            lock_for_migration(conn)
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
