"""The change feed on SQLite files: log rows commit with their change, followers apply them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from semcache import CacheRequest, Scope
from semcache.cache import SemanticCache
from semcache.replication.state import Tombstones
from semcache.storage.changelog import CHANGES, changes_after, position, record_change
from semcache.storage.engine import write_transaction
from semcache.storage.store import Store
from tests.fixtures.embedders import HashEmbedder

pytestmark = pytest.mark.unit
SCOPE = Scope.of(tenant="acme", model="m", params={"temperature": 0})


def _cache(url: str, **kw) -> SemanticCache:
    kw.setdefault("feed", False)
    return SemanticCache(url, embedder=HashEmbedder(), stats_interval=0, **kw)


def _settled(cache: SemanticCache) -> SemanticCache:
    """Wait for the feed thread's first pass, after which it sleeps for its poll period."""
    deadline = time.monotonic() + 30
    while not cache.feed.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.feed.connected
    return cache


def _req(text: str) -> CacheRequest:
    return CacheRequest(text, SCOPE, category="factual")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'feed.db'}"


def test_recent_ids_is_bounded() -> None:
    recent = Tombstones(maxlen=3)
    recent.update([1, 2, 3, 2, 4])
    assert 1 not in recent and all(i in recent for i in (2, 3, 4))


def test_a_change_row_commits_or_rolls_back_with_its_transaction(url: str) -> None:
    with Store(url) as store:
        entry_id = _cache_store(store)
        changes = changes_after(store.engine, 0)
        assert [(c.kind, c.payload, c.origin) for c in changes] == [
            ("entry.add", {"ids": [entry_id]}, store.origin)]
        with pytest.raises(RuntimeError), write_transaction(store.engine) as conn:
            record_change(conn, "policy", {"category": "code"}, "x")
            raise RuntimeError("roll back")
        assert position(store.engine) == changes[0].id
        with pytest.raises(ValueError, match="change kind"), write_transaction(store.engine) as conn:
            record_change(conn, "entry.moved", {}, "x")
        store.delete_entries([entry_id, 999])
        store.set_policy_override("code", threshold=0.97)
        assert store.delete_policy_override("code") and not store.delete_policy_override("code")
        kinds = [(c.kind, c.payload) for c in changes_after(store.engine, changes[0].id)]
        assert kinds == [("entry.delete", {"ids": [entry_id]}), ("policy", {"category": "code"}),
                         ("policy", {"category": "code"})]


def _cache_store(store: Store) -> int:
    cache = SemanticCache(store, embedder=HashEmbedder(), stats_interval=0, feed=False)
    try:
        entry_id = cache.store(_req("What is the capital of Peru?"), {"answer": "Lima"})
        assert entry_id is not None
        return entry_id
    finally:
        cache.close()


def test_second_process_follows_inserts_deletes_and_policies(url: str) -> None:
    writer, reader = _cache(url), _settled(_cache(url, feed=True, feed_poll_s=30.0))
    try:
        assert reader.feed is not None and reader.feed.listen is False
        question = "What is the capital of Peru?"
        assert reader.lookup(_req(question)) is None
        entry_id = writer.store(_req(question), {"answer": "Lima"})
        assert reader.lookup(_req(question)) is None  # not applied yet: the poll is 30 s away
        assert reader.feed.sync() == 1
        hit = reader.lookup(_req(question))
        assert hit is not None and hit.entry_id == entry_id and hit.response == {"answer": "Lima"}
        assert reader.feed.sync() == 0  # nothing new: applying is idempotent
        writer.invalidate([entry_id])
        reader.feed.sync()
        assert reader.lookup(_req(question)) is None and entry_id not in reader.index
        writer.db.set_policy_override("factual", threshold=0.99, updated_by="test")
        writer.reload_policies()
        reader.feed.sync()
        assert reader.policy("factual").threshold == 0.99
    finally:
        writer.close()
        reader.close()


def test_the_thread_applies_changes_without_being_asked(url: str) -> None:
    writer, reader = _cache(url), _cache(url, feed=True, feed_poll_s=0.05)
    try:
        entry_id = writer.store(_req("Who wrote Hamlet?"), {"answer": "Shakespeare"})
        deadline = time.monotonic() + 30
        while entry_id not in reader.mirror and time.monotonic() < deadline:
            time.sleep(0.02)
        assert entry_id in reader.mirror and reader.feed.status()["connected"]
    finally:
        writer.close()
        reader.close()


def test_own_changes_come_back_as_no_ops_and_quota_evictions_propagate(url: str) -> None:
    writer = _settled(_cache(url, feed=True, feed_poll_s=30.0))
    reader = _cache(url, feed=True, feed_poll_s=30.0)
    try:
        writer.db.set_policy_override("factual", max_entries=2, updated_by="test")
        writer.reload_policies()
        ids = [writer.store(_req(f"What is fact {n} about Peru?"), {"n": n}) for n in range(3)]
        assert writer.feed.sync() == 5 and len(writer.index) == 2  # own adds skipped, no error
        reader.feed.sync()
        assert reader.policy("factual").max_entries == 2
        assert reader.mirror.ids() == writer.mirror.ids() == set(ids[1:])
    finally:
        writer.close()
        reader.close()


def test_a_deletion_applied_before_the_local_insert_wins(url: str) -> None:
    cache = _cache(url)
    try:
        first = cache.store(_req("What is the capital of Chile?"), {"answer": "Santiago"})
        cache.state.apply_deleted([first + 1])  # another process deleted the next id before we indexed it
        second = cache.store(_req("What is the capital of Peru?"), {"answer": "Lima"})
        assert second == first + 1 and second not in cache.mirror and second not in cache.index
    finally:
        cache.close()


def test_new_process_loads_then_catches_up_from_its_load_position(url: str) -> None:
    writer = _cache(url)
    try:
        old = writer.store(_req("What is the capital of Chile?"), {"answer": "Santiago"})
        late = _cache(url, feed=True, feed_poll_s=30.0)
        try:
            assert old in late.mirror and late.feed.position == position(writer.db.engine)
            new = writer.store(_req("What is the capital of Peru?"), {"answer": "Lima"})
            writer.invalidate([old])
            late.feed.sync()
            assert late.mirror.ids() == {new}
        finally:
            late.close()
    finally:
        writer.close()


def test_a_log_pruned_past_the_position_forces_a_resync(url: str) -> None:
    writer = _cache(url)
    reader = _cache(url, feed=True, feed_poll_s=30.0)
    try:
        kept = writer.store(_req("What is the capital of Chile?"), {"answer": "Santiago"})
        gone = writer.store(_req("What is the capital of Peru?"), {"answer": "Lima"})
        reader.feed.sync()
        assert reader.mirror.ids() == {kept, gone}
        writer.invalidate([gone])
        added = writer.store(_req("What is the capital of Bolivia?"), {"answer": "Sucre"})
        writer.store(_req("What is the capital of Ecuador?"), {"answer": "Quito"})
        writer.db.change_retention_s = 1e-6
        time.sleep(0.01)
        assert writer.db.prune_changes() == 4  # of five: the newest row stays
        with writer.db.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(CHANGES)).scalar_one() == 1
        reader.feed.sync()
        assert reader.feed.resyncs == 1
        assert reader.mirror.ids() == writer.mirror.ids() and added in reader.mirror
        assert gone not in reader.index
    finally:
        writer.close()
        reader.close()


def test_sqlite_without_feed_starts_no_thread(url: str) -> None:
    cache = _cache(url, feed=None)
    try:
        assert cache.feed is None
    finally:
        cache.close()
    with pytest.raises(ValueError, match="retention"):
        Store(url, change_retention_s=0)


def test_flight_leases_admit_one_owner_until_release_or_expiry(url: str) -> None:
    from semcache.adapters.server.leases import FlightLeases

    with Store(url) as store:
        first, second = FlightLeases(store.engine), FlightLeases(store.engine)
        assert first.try_acquire("q1") and not second.try_acquire("q1") and second.held("q1")
        second.release("q1")  # not its lease: nothing happens
        assert first.held("q1") and not second.try_acquire("q1")
        first.release("q1")
        assert not first.held("q1") and second.try_acquire("q1")
        short = FlightLeases(store.engine, lease_s=0.05)
        assert short.try_acquire("q2")
        time.sleep(0.1)
        assert not short.held("q2") and first.try_acquire("q2")  # an expired lease is taken over
        with pytest.raises(ValueError, match="lease key"):
            first.try_acquire("x" * 65)


def test_an_import_through_the_store_reaches_the_own_index(url: str) -> None:
    cache = _settled(_cache(url, feed=True, feed_poll_s=30.0))
    try:
        other = SemanticCache(cache.db, embedder=HashEmbedder(), stats_interval=0, feed=False)
        try:
            entry_id = other.store(_req("What is the capital of Peru?"), {"answer": "Lima"})
        finally:
            other.close()
        assert entry_id not in cache.mirror  # written past this cache, with its store's origin
        cache.feed.sync()
        assert cache.lookup(_req("What is the capital of Peru?")).entry_id == entry_id
    finally:
        cache.close()


def test_a_feed_deletion_of_an_id_not_yet_indexed_keeps_it_out(url: str) -> None:
    from semcache.storage.changelog import record_ids

    cache = _settled(_cache(url, feed=True, feed_poll_s=30.0))
    try:
        first = cache.store(_req("What is the capital of Chile?"), {"answer": "Santiago"})
        with write_transaction(cache.db.engine) as conn:  # another process deleted the next id
            record_ids(conn, "entry.delete", [first + 1], "elsewhere")
        cache.feed.sync()
        second = cache.store(_req("What is the capital of Peru?"), {"answer": "Lima"})
        assert second == first + 1 and second not in cache.index and first in cache.index
    finally:
        cache.close()


def test_a_replica_loaded_on_an_empty_log_resyncs_when_the_log_was_pruned(url: str) -> None:
    writer = _cache(url)
    reader = _settled(_cache(url, feed=True, feed_poll_s=30.0))
    try:
        assert reader.feed.position == 0
        kept = writer.store(_req("What is the capital of Chile?"), {"answer": "Santiago"})
        gone = writer.store(_req("What is the capital of Peru?"), {"answer": "Lima"})
        writer.invalidate([gone])
        last = writer.store(_req("What is the capital of Bolivia?"), {"answer": "Sucre"})
        writer.db.change_retention_s = 1e-6
        time.sleep(0.01)
        writer.db.prune_changes()
        reader.feed.sync()
        assert reader.mirror.ids() == {kept, last}
    finally:
        writer.close()
        reader.close()
