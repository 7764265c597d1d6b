"""Embedding wrappers without the model: LRU cache, micro-batcher, input checks.

``RecordingEmbedder`` is an injected fake: deterministic vectors derived from the
text, and a log of the batch sizes it was called with.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from semcache.embed.base import Embedder, check_texts
from semcache.embed.lru import CachedEmbedder
from semcache.embed.microbatch import MicroBatcher

pytestmark = pytest.mark.unit

DIM = 8


def vector_for(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


class RecordingEmbedder:
    name = "fake"
    version = "1"
    dim = DIM

    def __init__(self, delay_s: float = 0.0, fail_with: BaseException | None = None) -> None:
        self.delay_s = delay_s
        self.fail_with = fail_with
        self.batches: list[list[str]] = []
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        items = check_texts(texts)
        with self._lock:
            self.batches.append(items)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_with is not None:
            raise self.fail_with
        out = np.empty((len(items), DIM), dtype=np.float32)
        for row, text in enumerate(items):
            out[row] = vector_for(text)
        return out

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


def test_wrappers_satisfy_the_protocol() -> None:
    inner = RecordingEmbedder()
    assert isinstance(inner, Embedder)
    assert isinstance(CachedEmbedder(inner), Embedder)
    with MicroBatcher(inner) as batcher:
        assert isinstance(batcher, Embedder)
        assert (batcher.name, batcher.version, batcher.dim) == ("fake", "1", DIM)


@pytest.mark.parametrize("bad", [["ok", 3], [None], [b"bytes"]], ids=["int", "none", "bytes"])
def test_non_str_input_raises_type_error(bad: list[object]) -> None:
    with pytest.raises(TypeError, match=r"texts\[\d\] must be a str"):
        CachedEmbedder(RecordingEmbedder()).embed(bad)  # type: ignore[arg-type]


def test_a_bare_string_is_not_a_batch() -> None:
    with pytest.raises(TypeError, match="single str"):
        CachedEmbedder(RecordingEmbedder()).embed("hello")


def test_cache_serves_repeats_and_computes_each_miss_once() -> None:
    inner = RecordingEmbedder()
    cache = CachedEmbedder(inner, maxsize=10)
    first = cache.embed(["a", "b", "a"])
    np.testing.assert_array_equal(first[0], first[2])
    assert inner.batches == [["a", "b"]]
    second = cache.embed(["b", "c"])
    assert inner.batches[-1] == ["c"]
    np.testing.assert_array_equal(second[0], vector_for("b"))
    np.testing.assert_array_equal(cache.embed_one("a"), vector_for("a"))
    assert len(inner.batches) == 2
    assert cache.embed([]).shape == (0, DIM)


def test_cache_evicts_least_recently_used() -> None:
    inner = RecordingEmbedder()
    cache = CachedEmbedder(inner, maxsize=2)
    cache.embed_one("a")
    cache.embed_one("b")
    cache.embed_one("a")  # "b" is now the least recently used
    cache.embed_one("c")
    calls = len(inner.batches)
    cache.embed_one("a")
    assert len(inner.batches) == calls
    cache.embed_one("b")
    assert len(inner.batches) == calls + 1
    assert len(cache) == 2


def test_cached_vectors_cannot_be_corrupted_by_callers() -> None:
    cache = CachedEmbedder(RecordingEmbedder())
    cache.embed_one("a")[:] = 0.0
    cache.embed(["a"])[0, :] = 0.0
    np.testing.assert_array_equal(cache.embed_one("a"), vector_for("a"))


def test_cache_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        CachedEmbedder(RecordingEmbedder(), maxsize=0)


def test_concurrent_threads_share_batches() -> None:
    inner = RecordingEmbedder(delay_s=0.05)
    callers = 24
    barrier = threading.Barrier(callers)
    results: dict[str, np.ndarray] = {}

    def call(i: int) -> None:
        barrier.wait()
        results[f"q{i}"] = batcher.embed_one(f"q{i}")

    with MicroBatcher(inner, max_batch=64, max_wait_ms=20.0) as batcher:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sum(map(len, inner.batches)) == callers
    assert len(inner.batches) <= 4, f"{callers} callers took {len(inner.batches)} batches"
    for text, vector in results.items():
        np.testing.assert_array_equal(vector, vector_for(text))


def test_batches_never_exceed_max_batch() -> None:
    inner = RecordingEmbedder(delay_s=0.01)
    with MicroBatcher(inner, max_batch=5, max_wait_ms=5.0) as batcher:
        futures = [batcher.submit(f"t{i}") for i in range(23)]
        vectors = [f.result() for f in futures]
    assert max(len(b) for b in inner.batches) <= 5
    assert sum(map(len, inner.batches)) == 23
    np.testing.assert_array_equal(vectors[7], vector_for("t7"))


def test_identical_concurrent_texts_are_embedded_once() -> None:
    inner = RecordingEmbedder(delay_s=0.01)
    with MicroBatcher(inner, max_wait_ms=20.0) as batcher:
        futures = [batcher.submit("same") for _ in range(10)]
        vectors = [f.result() for f in futures]
    assert sum(map(len, inner.batches)) < 10
    for vector in vectors:
        np.testing.assert_array_equal(vector, vector_for("same"))


async def test_asyncio_callers_share_batches() -> None:
    inner = RecordingEmbedder(delay_s=0.02)
    with MicroBatcher(inner, max_wait_ms=20.0) as batcher:
        vectors = await asyncio.gather(*(batcher.aembed_one(f"a{i}") for i in range(16)))
    assert len(inner.batches) <= 2
    np.testing.assert_array_equal(vectors[3], vector_for("a3"))


async def test_cached_async_path_uses_the_batcher() -> None:
    inner = RecordingEmbedder(delay_s=0.02)
    with MicroBatcher(inner, max_wait_ms=20.0) as batcher:
        cache = CachedEmbedder(batcher)
        await asyncio.gather(*(cache.aembed_one(f"b{i}") for i in range(8)))
        await cache.aembed_one("b1")
    assert sum(map(len, inner.batches)) == 8
    assert cache.hits == 1


def test_a_failing_batch_raises_in_every_caller() -> None:
    inner = RecordingEmbedder(delay_s=0.01, fail_with=RuntimeError("model exploded"))
    with MicroBatcher(inner, max_wait_ms=20.0) as batcher:
        futures = [batcher.submit(f"x{i}") for i in range(6)]
        for future in futures:
            with pytest.raises(RuntimeError, match="model exploded"):
                future.result()
        inner.fail_with = None  # the worker survives a failed batch
        np.testing.assert_array_equal(batcher.embed_one("after"), vector_for("after"))


def test_close_drains_then_refuses() -> None:
    inner = RecordingEmbedder(delay_s=0.01)
    batcher = MicroBatcher(inner, max_wait_ms=0.0)
    futures = [batcher.submit(f"d{i}") for i in range(5)]
    batcher.close()
    assert all(f.done() for f in futures)
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit("late")
    with MicroBatcher(inner) as other, pytest.raises(TypeError):
        other.submit(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"max_batch": 0}, "max_batch"), ({"max_wait_ms": -1.0}, "max_wait_ms")]
)
def test_batcher_rejects_bad_settings(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MicroBatcher(RecordingEmbedder(), **kwargs)  # type: ignore[arg-type]


class SlowEmbedder(RecordingEmbedder):
    """A fake whose batches can run side by side (``parallelism`` 2), recording overlap."""

    parallelism = 2

    def __init__(self, delay_s: float) -> None:
        super().__init__(delay_s=delay_s)
        self.running = 0
        self.max_running = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            return super().embed(texts)
        finally:
            with self._lock:
                self.running -= 1


def test_workers_default_to_the_embedders_parallelism() -> None:
    with MicroBatcher(RecordingEmbedder()) as one, MicroBatcher(SlowEmbedder(0.0)) as two:
        assert len(one._workers) == 1
        assert len(two._workers) == 2


def test_two_workers_run_batches_side_by_side_under_concurrency() -> None:
    inner = SlowEmbedder(delay_s=0.03)
    callers = 32
    results: dict[str, np.ndarray] = {}

    def call(i: int) -> None:
        for round_ in range(3):  # closed loop: each caller asks again when answered
            text = f"c{i}-{round_}"
            results[text] = batcher.embed_one(text)

    with MicroBatcher(inner, max_batch=64, max_wait_ms=0.0, min_batch=4, busy_wait_ms=5.0) as batcher:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sizes = list(batcher.batch_sizes)
    assert sum(sizes) == callers * 3 == sum(map(len, inner.batches))
    assert inner.max_running == 2, "the second worker never ran beside the first"
    # 96 requests from 32 closed-loop callers coalesce into a few batches, not 96
    assert len(sizes) <= 24, sizes
    for text, vector in results.items():
        np.testing.assert_array_equal(vector, vector_for(text))


def test_a_lone_caller_is_not_held_back() -> None:
    inner = SlowEmbedder(delay_s=0.0)
    with MicroBatcher(inner, max_wait_ms=0.0, min_batch=8, busy_wait_ms=200.0) as batcher:
        batcher.embed_one("warm")
        start = time.perf_counter()
        batcher.embed_one("alone")
        elapsed = time.perf_counter() - start
    assert elapsed < 0.1, f"a lone request waited {elapsed:.3f}s for a batch to fill"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"workers": 0}, "workers"), ({"min_batch": 0}, "min_batch"), ({"busy_wait_ms": -1.0}, "busy_wait_ms")],
)
def test_batcher_rejects_bad_worker_settings(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MicroBatcher(RecordingEmbedder(), **kwargs)  # type: ignore[arg-type]
