"""Engines and migrations for the SQL store.

``make_engine`` turns a database URL into a checked SQLAlchemy engine (SQLite
in WAL mode, or PostgreSQL through psycopg 3). The schema is created and
changed only by the Alembic migrations, which ship inside the package as
``semcache.migrations`` (the repository's ``alembic/`` folder, mapped in by setup.py);
``upgrade``/``downgrade`` run them in-process under a lock (``BEGIN IMMEDIATE``
on SQLite, a transaction-scoped advisory lock on PostgreSQL) so that several
processes starting at once do not race.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from semcache.exceptions import MissingExtraError, StoreError, StoreUnavailable

_PACKAGE = Path(__file__).resolve().parents[1]
# Installed from a wheel the migrations sit at semcache/migrations; in a source checkout or an
# editable install they stay in the repository's alembic/ folder beside semcache/.
ALEMBIC_DIR = next((d for d in (_PACKAGE / "migrations", _PACKAGE.parent / "alembic")
                    if (d / "env.py").is_file()), _PACKAGE / "migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10
# Arbitrary constant that identifies semcache's migration lock among advisory locks.
PG_MIGRATION_LOCK_KEY = 0x5E3C_AC4E
_WRITE_OPTION = "semcache_write"


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook issue BEGIN itself (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _set_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _set_wal(cursor: Any) -> None:
    # Switching a new database file to WAL can fail at once with "database is locked" while
    # another connection opens the same file (SQLite does not call the busy handler there), as
    # several processes or threads starting together on a fresh file do: retry within the busy
    # timeout. Once the file is in WAL mode (it persists), the switch is skipped.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 0.25)


def _sqlite_begin(conn: Connection) -> None:
    # A write transaction takes the write lock up front: a deferred transaction
    # that reads first and then writes can fail with SQLITE_BUSY without waiting.
    if conn.get_execution_options().get(_WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` and connect once to check that it works.

    ``sqlite:///path.db`` gets WAL, ``synchronous=NORMAL``, foreign keys and a
    busy timeout; ``postgresql://`` (or ``postgres://``) URLs use psycopg 3.
    Raises :class:`~semcache.exceptions.StoreUnavailable` (a ``ValueError``) if
    the URL is invalid or the database cannot be reached.
    """
    if not isinstance(url, str):
        raise TypeError(f"database URL must be a str, got {type(url).__name__}")
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreUnavailable(f"invalid database URL {url!r}: {exc}") from exc
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    backend = parsed.get_backend_name()
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend == "postgres":
        backend = "postgresql"
    if backend == "postgresql" and "connect_timeout" not in parsed.query:
        kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    try:
        engine = create_engine(parsed, **kwargs)
    except ImportError as exc:
        if backend != "postgresql":
            raise StoreUnavailable(f"unsupported database URL {_safe(url)}: {exc}") from exc
        raise MissingExtraError("psycopg", "postgres") from exc
    except (ArgumentError, NoSuchModuleError) as exc:
        raise StoreUnavailable(f"unsupported database URL {_safe(url)}: {exc}") from exc
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise StoreUnavailable(f"cannot open database {_safe(url)}: {reason}") from exc
    return engine


def _safe(url: str) -> str:
    """The URL with any password hidden, for error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection inside one write transaction, committed on success.

    On SQLite engines from :func:`make_engine` this is ``BEGIN IMMEDIATE``, so
    concurrent writers queue on the busy timeout instead of failing.
    """
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            yield conn


def alembic_config(connection: Connection | None = None) -> Any:
    """An Alembic ``Config`` for the repository's migrations (optionally bound to a connection)."""
    from alembic.config import Config

    if not (ALEMBIC_DIR / "env.py").is_file():
        raise StoreError(
            f"Alembic migrations not found at {ALEMBIC_DIR}; the semcache installation is "
            "missing its semcache/migrations folder"
        )
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def lock_for_migration(conn: Connection) -> None:
    """Serialise migrations across processes (PostgreSQL advisory lock, held until commit)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK_KEY})


def _run(url_or_engine: str | Engine, command_name: str, revision: str) -> None:
    from alembic import command

    owned = isinstance(url_or_engine, str)
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    if not isinstance(engine, Engine):
        raise TypeError(f"expected a URL or an Engine, got {type(url_or_engine).__name__}")
    try:
        with write_transaction(engine) as conn:
            lock_for_migration(conn)
            getattr(command, command_name)(alembic_config(conn), revision)
    finally:
        if owned:
            engine.dispose()


def upgrade(url_or_engine: str | Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (default: the latest) in one locked transaction."""
    _run(url_or_engine, "upgrade", revision)


def downgrade(url_or_engine: str | Engine, revision: str = "base") -> None:
    """Revert migrations down to ``revision`` (default: an empty schema)."""
    _run(url_or_engine, "downgrade", revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or ``None`` if no migration has run."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The latest revision among the repository's migrations."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
