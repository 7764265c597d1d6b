"""The change feed on a real PostgreSQL: LISTEN/NOTIFY delivery, ordering under concurrent writers."""

from __future__ import annotations

import threading
import time

import pytest

from semcache.cache import SemanticCache
from semcache.storage.changelog import changes_after
from tests.fixtures.embedders import HashEmbedder
from tests.fixtures.polling import wait_for
from tests.unit.replication.test_changefeed import _req

pytestmark = pytest.mark.integration


def _cache(url: str, **kw) -> SemanticCache:
    return SemanticCache(url, embedder=HashEmbedder(), stats_interval=0, **kw)


def test_notify_delivers_long_before_the_poll(fresh_pg_url: str) -> None:
    # The poll is 60 s away: only a notification can deliver within the 20 s bound.
    writer, reader = _cache(fresh_pg_url, feed_poll_s=60.0), _cache(fresh_pg_url, feed_poll_s=60.0)
    try:
        assert reader.feed is not None and reader.feed.status()["mode"] == "listen"
        assert wait_for(lambda: reader.feed.connected)
        entry_id = writer.store(_req("What is the capital of Peru?"), {"answer": "Lima"})
        assert wait_for(lambda: entry_id in reader.mirror, 20.0), reader.feed.status()
        assert reader.lookup(_req("What is the capital of Peru?")).entry_id == entry_id
        writer.invalidate([entry_id])
        assert wait_for(lambda: entry_id not in reader.mirror, 20.0), reader.feed.status()
        writer.db.set_policy_override("factual", threshold=0.98, updated_by="test")
        assert wait_for(lambda: reader.policy("factual").threshold == 0.98, 20.0)
    finally:
        writer.close()
        reader.close()


def test_concurrent_writers_leave_every_replica_with_the_stored_state(fresh_pg_url: str) -> None:
    caches = [_cache(fresh_pg_url, feed_poll_s=0.5) for _ in range(3)]
    errors: list[BaseException] = []

    def write(cache: SemanticCache, worker: int) -> None:
        try:
            for n in range(15):
                entry_id = cache.store(_req(f"Tell me fact {worker}-{n} about Peru"), {"n": n})
                if n % 3 == 0:
                    cache.invalidate([entry_id])
        except BaseException as exc:  # collected and checked below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=write, args=(caches[w % 3], w)) for w in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not errors
        stored = caches[0].db.all_ids()
        assert len(stored) == 6 * 10
        for cache in caches:  # the mirror and the index converge to the stored state
            assert wait_for(lambda c=cache: c.mirror.ids() == stored and c.index.ids() == stored), (
                cache.feed.status(), stored ^ cache.mirror.ids(), stored ^ cache.index.ids())
        ids = [c.id for c in changes_after(caches[0].db.engine, 0, limit=10_000)]
        assert ids == sorted(ids) and len(ids) == 6 * 15 + 6 * 5
    finally:
        for cache in caches:
            cache.close()


async def test_readyz_reports_the_feed_and_fails_after_a_long_outage(tmp_path) -> None:
    from tests.fixtures.proxy import proxy_client
    from tests.fixtures.upstream import FakeUpstream

    cache = _cache(f"sqlite:///{tmp_path / 'ready.db'}", feed=True, feed_poll_s=0.05)
    try:
        assert wait_for(lambda: cache.feed.connected)
        async with proxy_client(cache, FakeUpstream().app, ready_max_feed_outage_s=5.0) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["feed"]["connected"] is True
            cache.feed.stop()  # no thread: the state below stays as set
            cache.feed.connected = False
            cache.feed.disconnected_since = time.monotonic() - 60
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and "change feed cut off" in ready.json()["error"]["message"]
            metrics = (await client.get("/metrics")).text
            assert "semcache_feed_connected 0.0" in metrics
    finally:
        cache.close()
