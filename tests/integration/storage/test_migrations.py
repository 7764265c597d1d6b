"""Alembic migrations on real SQLite and PostgreSQL databases."""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from semcache.exceptions import StoreError
from semcache.storage import engine as db
from semcache.storage.schema import Base
from semcache.storage.store import Store

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
# The store's own tables; later revisions may add others.
TABLES = {"entries", "entry_documents", "category_policies", "stats", "meta"}


def _all_models() -> None:
    """Import every module that declares tables, so that ``Base.metadata`` is complete."""
    for name in ("semcache.storage.schema", "semcache.adapters.server.tenant_tables",
                 "semcache.adapters.server.audit_tables"):
        importlib.import_module(name)


def _tables(url: str) -> set[str]:
    engine = db.make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_one_linear_head() -> None:
    script = ScriptDirectory.from_config(db.alembic_config())
    heads = script.get_heads()
    assert len(heads) == 1, f"migrations have several heads {heads}: merge them"
    assert db.head_revision() == heads[0]


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    engine = db.make_engine(db_url)
    try:
        assert db.current_revision(engine) is None
        db.upgrade(engine)
        assert db.current_revision(engine) == db.head_revision()
        assert TABLES <= _tables(db_url)
        db.downgrade(engine, "base")
        assert db.current_revision(engine) is None
        assert _tables(db_url) == set()
        db.upgrade(db_url)  # by URL this time
        assert db.current_revision(engine) == db.head_revision()
        db.upgrade(engine)  # already at head: nothing to do
        assert TABLES <= _tables(db_url)
    finally:
        engine.dispose()


def test_models_match_migrations(db_url: str) -> None:
    _all_models()
    engine = db.make_engine(db_url)
    try:
        db.upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_concurrent_upgrades_do_not_race(db_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            db.upgrade(db_url)
        except BaseException as exc:  # collected and checked below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert TABLES <= _tables(db_url)


def test_alembic_command_line(db_url: str) -> None:
    alembic = Path(sys.executable).with_name("alembic")
    run = subprocess.run(
        [str(alembic), "-x", f"url={db_url}", "upgrade", "head"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert TABLES <= _tables(db_url)
    current = subprocess.run(
        [str(alembic), "-x", f"url={db_url}", "current"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert current.returncode == 0, current.stderr
    assert f"{db.head_revision()} (head)" in current.stdout


def test_store_without_auto_upgrade_needs_a_schema(db_url: str) -> None:
    with pytest.raises(StoreError, match="no semcache schema"):
        Store(db_url, auto_upgrade=False)
    db.upgrade(db_url)
    with Store(db_url, auto_upgrade=False) as store:
        assert store.count_entries() == 0
