"""The Redis tier against a real redis-server: shared exact hits, invalidation fan-out, chunk KV, outages."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from semcache.cache import SemanticCache
from semcache.exceptions import StoreUnavailable
from semcache.replication.redis_tier import RedisTier
from tests.fixtures.embedders import HashEmbedder
from tests.fixtures.polling import wait_for
from tests.unit.replication.test_changefeed import _req

pytestmark = pytest.mark.integration
QUESTION = "What is the capital of Peru?"


@pytest.fixture
def pair(tmp_path: Path, redis_url: str):
    """Two caches on one SQLite file, neither following the change feed: only Redis links them."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    made = [SemanticCache(url, embedder=HashEmbedder(), stats_interval=0, feed=False,
                          shared=RedisTier(redis_url, retry_s=0.2)) for _ in range(2)]
    yield made
    for cache in made:
        cache.close()


def test_exact_hit_through_redis_and_invalidation_fan_out(pair) -> None:
    writer, reader = pair
    assert reader.lookup(_req(QUESTION)) is None  # positive control: nothing there yet
    entry_id = writer.store(_req(QUESTION), {"answer": "Lima"})
    hit = reader.lookup(_req(QUESTION))
    assert hit is not None and hit.entry_id == entry_id and hit.match == "exact"
    assert entry_id in reader.mirror  # loaded from SQL on the way
    writer.invalidate([entry_id])
    assert wait_for(lambda: entry_id not in reader.mirror), "published invalidation never arrived"
    assert reader.lookup(_req(QUESTION)) is None
    assert reader.shared.status()["received"] >= 1 and writer.shared.status()["published"] >= 1


def test_a_stale_redis_key_never_serves_a_deleted_entry(pair) -> None:
    writer, reader = pair
    entry_id = writer.store(_req(QUESTION), {"answer": "Lima"})
    writer.db.delete_entries([entry_id])  # behind Redis' back: the key still names the entry
    assert writer.shared.client.get(f"semcache:exact:{writer.mirror.get(entry_id).exact_key}")
    assert reader.lookup(_req(QUESTION)) is None


def test_redis_down_degrades_to_sql_and_recovers(pair, redis_server) -> None:
    writer, reader = pair
    redis_server.stop()
    try:
        entry_id = writer.store(_req(QUESTION), {"answer": "Lima"})  # SQL commit still works
        assert writer.lookup(_req(QUESTION)).entry_id == entry_id
        assert reader.lookup(_req(QUESTION)) is None  # no shared tier, no feed: a miss, never an error
        assert not writer.shared.status()["up"]
    finally:
        redis_server.start()
    time.sleep(0.3)  # past retry_s
    other = writer.store(_req("What is the capital of Chile?"), {"answer": "Santiago"})
    assert wait_for(lambda: writer.shared.status()["up"])
    assert reader.lookup(_req("What is the capital of Chile?")).entry_id == other


def test_required_redis_that_is_down_fails_clearly() -> None:
    required = RedisTier("redis://127.0.0.1:1/0", required=True)  # the constructor does no I/O
    try:
        with pytest.raises(StoreUnavailable, match="Redis at redis://127.0.0.1:1/0 is unreachable"):
            required.check()
    finally:
        required.close()
    with pytest.raises(ValueError, match="redis://"):
        RedisTier("http://127.0.0.1:6379")
    degraded = RedisTier("redis://127.0.0.1:1/0")
    try:
        assert degraded.check() is False
        assert degraded.status()["up"] is False and degraded.status()["errors"] == 1
    finally:
        degraded.close()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_chunk_kv_is_shared_between_engines(redis_url: str, redis_server, dtype) -> None:
    from semcache.gpu.chunks.redis_tier import RedisChunkKV, decode
    from semcache.gpu.chunks.store import ChunkKV, ChunkKVStore

    layers, n, heads, dim = 3, 7, 2, 8
    record = ChunkKV(tuple(range(100, 100 + n)), torch.arange(5, 5 + n, dtype=torch.int64),
                     torch.randn(layers, n, heads, dim).to(dtype), torch.randn(layers, n, heads, dim).to(dtype))
    first = ChunkKVStore(1 << 20, shared=RedisChunkKV(redis_url, retry_s=0.2))
    second = ChunkKVStore(1 << 20, shared=RedisChunkKV(redis_url, retry_s=0.2))
    assert second.get("doc-1") is None  # positive control
    first.put("doc-1", record)
    got = second.get("doc-1")
    assert got is not None and "doc-1" in second  # kept locally once fetched
    assert got.token_ids == record.token_ids and got.keys.dtype == dtype
    assert torch.equal(got.keys, record.keys) and torch.equal(got.values, record.values)
    assert torch.equal(got.positions, record.positions)
    with pytest.raises(ValueError, match="not a chunk-KV record"):
        decode(b"garbage")
    redis_server.stop()
    try:
        third = ChunkKVStore(1 << 20, shared=RedisChunkKV(redis_url, retry_s=0.2))
        assert third.get("doc-1") is None  # Redis down: a miss, the engine computes KV itself
        third.put("doc-2", record)
        assert "doc-2" in third and third.shared.errors >= 1
    finally:
        redis_server.start()


def test_serve_with_an_unreachable_required_redis_exits_with_the_reason(tmp_path: Path) -> None:
    import subprocess
    import sys

    argv = [sys.executable, "-m", "semcache.cli", "serve", "--upstream", "http://127.0.0.1:9",
            "--db", f"sqlite:///{tmp_path / 'x.db'}", "--redis-url", "redis://127.0.0.1:1/0"]
    done = subprocess.run([*argv, "--redis-required"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Redis at redis://127.0.0.1:1/0 is unreachable" in done.stderr and "--redis-required" in done.stderr
    bad = subprocess.run([*argv[:-1], "http://127.0.0.1:1"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "redis_url must start with redis://" in bad.stderr


def test_the_gpu_package_and_the_kv_tier_import_without_redis() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['redis'] = None\n"
            "from semcache.gpu.chunks.store import ChunkKVStore\n"
            "from semcache.gpu.chunks.redis_tier import RedisChunkKV\n"
            "try:\n    RedisChunkKV('redis://127.0.0.1:1/0')\n"
            "except ImportError as exc:\n    print('ERR', exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pip install 'semcache[redis]'" in done.stdout
