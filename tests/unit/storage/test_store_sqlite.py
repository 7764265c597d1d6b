"""The store's boundaries on a SQLite file: validation, URLs, engine set-up, ownership."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from semcache.exceptions import StoreError, StoreUnavailable
from semcache.storage import engine as db
from semcache.storage.store import HitDelta, NewEntry, Store

pytestmark = pytest.mark.unit


def entry(**overrides: Any) -> NewEntry:
    values: dict[str, Any] = dict(
        partition="p",
        exact_key="k",
        tenant="t",
        model="m",
        params_hash="",
        category="factual",
        prompt="What is 2 + 2?",
        prompt_norm="what is 2 + 2?",
        prompt_hash="h",
        context_hash="c",
        response={"content": "4"},
        embedding=np.ones(4, dtype=np.float32),
        embedder="fake@1",
    )
    values.update(overrides)
    return NewEntry(**values)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def store(url: str) -> Any:
    with Store(url) as s:
        yield s


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prompt": "   "}, "prompt must be a non-empty"),
        ({"embedding": np.ones((2, 2), dtype=np.float32)}, "1-D float32"),
        ({"embedding": np.ones(4, dtype=np.float64)}, "1-D float32"),
        ({"embedding": np.array([1.0, np.nan], dtype=np.float32)}, "NaN"),
        ({"embedding": [1.0, 2.0]}, "numpy array"),
        ({"history_embedding": np.ones(0, dtype=np.float32)}, "non-empty 1-D"),
        ({"response": {"x": {1, 2}}}, "JSON"),
        ({"response": float("nan")}, "JSON"),
        ({"expires_at": dt.datetime(2030, 1, 1)}, "timezone-aware"),
        ({"tokens": -1}, "tokens must be an int"),
        ({"cost": float("inf")}, "cost must be a finite"),
        ({"tenant": ""}, "tenant must be a non-empty"),
    ],
    ids=[
        "blank-prompt",
        "2d",
        "float64",
        "nan",
        "list",
        "empty-history",
        "set",
        "nan-json",
        "naive-expiry",
        "neg-tokens",
        "inf-cost",
        "no-tenant",
    ],
)
def test_add_entry_rejects_invalid(store: Store, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        store.add_entry(entry(**overrides))
    assert store.count_entries() == 0


def test_type_errors_at_the_boundary(store: Store) -> None:
    with pytest.raises(TypeError):
        store.add_entry({"prompt": "x"})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.add_entry(entry(history="not a list"))
    with pytest.raises(TypeError):
        store.delete_entries("123")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.count_entries(colour="red")
    with pytest.raises(TypeError):
        store.record_hits({1: 3})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        Store(42)  # type: ignore[arg-type]


def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.delete_expired(dt.datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        store.delete_where(older_than=dt.datetime(2030, 1, 1))


def test_times_come_back_in_utc(store: Store) -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    expires = dt.datetime(2030, 1, 1, 9, 0, tzinfo=tokyo)
    entry_id = store.add_entry(entry(expires_at=expires))
    row = store.get_entry(entry_id)
    assert row is not None and row.expires_at == expires
    assert row.expires_at is not None and row.expires_at.utcoffset() == dt.timedelta(0)
    assert row.expires_at.hour == 0
    assert not row.is_expired(expires - dt.timedelta(seconds=1))
    assert row.is_expired(expires)


def test_hit_delta() -> None:
    a = HitDelta(count=1, tokens_saved=10, at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    b = HitDelta(count=2, cost_saved=0.5, at=dt.datetime(2030, 1, 2, tzinfo=dt.UTC))
    total = a + b
    assert (total.count, total.tokens_saved, total.cost_saved) == (3, 10, 0.5)
    assert total.at == b.at
    for bad in ({"count": -1}, {"tokens_saved": 1.5}, {"latency_saved_ms": float("nan")}):
        with pytest.raises(ValueError):
            HitDelta(**bad)


def test_bad_urls_raise_store_unavailable(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    for url in (
        "not a url",
        "nosuchdialect://x/y",
        f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}",
        f"postgresql://u:secret@127.0.0.1:{closed_port}/db",
    ):
        with pytest.raises(StoreUnavailable) as info:
            db.make_engine(url)
        assert isinstance(info.value, ValueError)
        assert "secret" not in str(info.value)
    with pytest.raises(ValueError):
        Store(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")


def test_sqlite_engine_settings(url: str) -> None:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
        assert pragma == {
            "journal_mode": "wal",
            "synchronous": 1,
            "foreign_keys": 1,
            "busy_timeout": db.SQLITE_BUSY_TIMEOUT_MS,
        }
    finally:
        engine.dispose()


def test_store_closes_only_its_own_engine(url: str) -> None:
    engine = db.make_engine(url)
    try:
        with Store(engine) as store:
            store.add_entry(entry())
        assert engine.pool.checkedin() >= 1  # not disposed: still holds its connection
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM entries")).scalar() == 1
    finally:
        engine.dispose()
    owned = Store(url)
    owned.count_entries()
    owned.close()
    assert owned.engine.pool.checkedin() == 0


def test_ids_are_never_reused(store: Store) -> None:
    first = store.add_entry(entry())
    store.delete_entries([first])
    assert store.add_entry(entry()) > first


def test_missing_migrations_folder_is_a_clear_error(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "ALEMBIC_DIR", tmp_path / "nowhere")
    with pytest.raises(StoreError, match="migrations not found"):
        Store(url)
