"""Partitioned vector indexes: scope isolation, deletes, growth, persistence, validation."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from semcache.exceptions import MissingExtraError
from semcache.index import FaissIndex, HnswIndex, VectorIndex, load_index, make_index

pytestmark = pytest.mark.unit

DIM = 16


def unit_vectors(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def ids_of(hits: list[tuple[int, float]]) -> list[int]:
    return [i for i, _ in hits]


FACTORIES: dict[str, Callable[..., HnswIndex | FaissIndex]] = {
    "hnsw": lambda **kw: HnswIndex(dim=DIM, initial_capacity=8, **kw),
    "faiss-flat": lambda **kw: FaissIndex(dim=DIM, **kw),
    "faiss-hnsw": lambda **kw: FaissIndex(dim=DIM, flat_limit=8, **kw),
}


@pytest.fixture(params=sorted(FACTORIES))
def make(request: pytest.FixtureRequest) -> Callable[..., HnswIndex | FaissIndex]:
    return FACTORIES[request.param]


def test_satisfies_protocol(make: Callable[..., HnswIndex | FaissIndex]) -> None:
    assert isinstance(make(), VectorIndex)


def test_search_never_leaves_the_partition(make: Callable[..., HnswIndex | FaissIndex]) -> None:
    index = make()
    a, b = unit_vectors(20, seed=1), unit_vectors(20, seed=2)
    index.add("tenant-a", np.arange(20), a)
    index.add("tenant-b", np.arange(100, 120), b)
    # The query is exactly one of B's vectors: B would win any unpartitioned search.
    hits = index.search("tenant-a", b[3], k=10)
    assert len(hits) == 10
    assert all(0 <= i < 20 for i in ids_of(hits))
    assert ids_of(index.search("tenant-b", b[3], k=1)) == [103]


def test_results_are_cosine_best_first(make: Callable[..., HnswIndex | FaissIndex]) -> None:
    index = make()
    vectors = unit_vectors(30, seed=3)
    index.add("p", np.arange(30), vectors * 3.0)  # scale must not matter for cosine
    query = unit_vectors(1, seed=4)[0]
    hits = index.search("p", query, k=5)
    exact = np.argsort(-(vectors @ query))[:5]
    assert ids_of(hits) == exact.tolist()
    sims = [s for _, s in hits]
    assert sims == sorted(sims, reverse=True)
    np.testing.assert_allclose(sims, (vectors @ query)[exact], atol=1e-5)


def test_k_larger_than_partition_returns_all_live(
    make: Callable[..., HnswIndex | FaissIndex],
) -> None:
    index = make()
    index.add("small", np.arange(3), unit_vectors(3))
    index.add("big", np.arange(10, 60), unit_vectors(50, seed=5))
    assert sorted(ids_of(index.search("small", unit_vectors(1, 6)[0], k=50))) == [0, 1, 2]
    assert index.search("missing", unit_vectors(1, 6)[0], k=5) == []


def test_delete_removes_and_ignores_unknown(make: Callable[..., HnswIndex | FaissIndex]) -> None:
    index = make()
    vectors = unit_vectors(12, seed=7)
    index.add("p", np.arange(12), vectors)
    index.add("q", np.array([50]), unit_vectors(1, seed=8))
    index.delete([4, 5, 999])
    assert len(index) == 11 and 4 not in index and 6 in index
    assert index.ids() == (set(range(12)) - {4, 5}) | {50}
    assert 4 not in ids_of(index.search("p", vectors[4], k=12))
    assert len(index.search("p", vectors[4], k=12)) == 10
    index.delete([50])
    assert index.partitions() == ["p"]


def test_readding_a_deleted_id_revives_it(make: Callable[..., HnswIndex | FaissIndex]) -> None:
    index = make()
    vectors = unit_vectors(10, seed=9)
    index.add("p", np.arange(10), vectors)
    index.delete([2])
    fresh = unit_vectors(1, seed=10)
    index.add("p", np.array([2]), fresh)
    assert ids_of(index.search("p", fresh[0], k=1)) == [2]
    assert len(index) == 10


def test_adding_an_existing_id_elsewhere_moves_it(
    make: Callable[..., HnswIndex | FaissIndex],
) -> None:
    index = make()
    vectors = unit_vectors(10, seed=11)
    index.add("p", np.arange(10), vectors)
    index.add("q", np.array([7]), vectors[7:8])
    assert 7 not in ids_of(index.search("p", vectors[7], k=10))
    assert ids_of(index.search("q", vectors[7], k=5)) == [7]
    assert index.partition_of(7) == "q" and len(index) == 10


def test_grows_past_initial_capacity(make: Callable[..., HnswIndex | FaissIndex]) -> None:
    index = make()
    vectors = unit_vectors(300, seed=12)
    for start in range(0, 300, 7):  # many small adds force repeated resizing
        stop = min(300, start + 7)
        index.add("p", np.arange(start, stop), vectors[start:stop])
    assert len(index) == 300
    found = sum(ids_of(index.search("p", vectors[i], k=1)) == [i] for i in range(300))
    assert found >= 297  # approximate search, but exact self-matches are easy


def test_many_deletes_keep_results_full(make: Callable[..., HnswIndex | FaissIndex]) -> None:
    index = make()
    if isinstance(index, HnswIndex):
        index.compact_min = 16
    vectors = unit_vectors(200, seed=13)
    index.add("p", np.arange(200), vectors)
    index.delete(range(0, 180))  # triggers compaction / rebuild along the way
    hits = index.search("p", vectors[0], k=10)
    assert len(hits) == 10
    assert set(ids_of(hits)) <= set(range(180, 200))


def test_save_load_round_trip(make: Callable[..., HnswIndex | FaissIndex], tmp_path) -> None:
    index = make()
    vectors = unit_vectors(40, seed=14)
    index.add("tenant a/with:odd chars", np.arange(20), vectors[:20])
    index.add("", np.arange(20, 40), vectors[20:])
    index.delete([3])
    index.save(tmp_path / "idx")
    loaded = load_index(tmp_path / "idx")
    assert type(loaded) is type(index)
    assert loaded.ids() == index.ids() and loaded.partitions() == index.partitions()
    for q in vectors[:5]:
        for partition in index.partitions():
            assert loaded.search(partition, q, 5) == index.search(partition, q, 5)
    loaded.add("", np.array([500]), unit_vectors(1, seed=15))
    assert 500 in loaded


def test_loading_the_wrong_kind_is_refused(tmp_path) -> None:
    HnswIndex(dim=DIM).save(tmp_path / "h")
    with pytest.raises(ValueError, match="hnsw"):
        FaissIndex.load(tmp_path / "h")


@pytest.mark.parametrize(
    ("ids", "vectors", "error"),
    [
        (np.array([1.0, 2.0]), unit_vectors(2), TypeError),
        (np.array([1, 1]), unit_vectors(2), ValueError),
        (np.array([-1]), unit_vectors(1), ValueError),
        (np.array([1, 2]), unit_vectors(2, dim=DIM + 1), ValueError),
        (np.array([1]), np.zeros((1, DIM), np.float32), ValueError),
        (np.array([1]), np.full((1, DIM), np.nan, np.float32), ValueError),
    ],
    ids=["float-ids", "duplicate-ids", "negative-id", "wrong-dim", "zero-vector", "nan"],
)
def test_add_rejects_bad_input(
    make: Callable[..., HnswIndex | FaissIndex], ids: np.ndarray, vectors: np.ndarray, error: type
) -> None:
    with pytest.raises(error):
        make().add("p", ids, vectors)


def test_search_rejects_bad_input(make: Callable[..., HnswIndex | FaissIndex]) -> None:
    index = make()
    index.add("p", np.arange(3), unit_vectors(3))
    with pytest.raises(ValueError, match="k must"):
        index.search("p", unit_vectors(1)[0], k=0)
    with pytest.raises(ValueError, match="shape"):
        index.search("p", np.ones(DIM + 1, np.float32), k=1)
    with pytest.raises(TypeError):
        index.search(7, unit_vectors(1)[0], k=1)  # type: ignore[arg-type]


def test_make_index() -> None:
    assert isinstance(make_index("hnsw", dim=8), HnswIndex)
    assert isinstance(make_index("faiss", dim=8), FaissIndex)
    assert make_index(dim=8, M=8).M == 8
    with pytest.raises(ValueError, match="unknown index kind"):
        make_index("annoy")


def test_faiss_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` fail
    with pytest.raises(MissingExtraError, match=r"semcache\[faiss\]"):
        FaissIndex(dim=DIM)


def test_concurrent_searches_and_adds(make: Callable[..., HnswIndex | FaissIndex]) -> None:
    index = make()
    vectors = unit_vectors(400, seed=16)
    index.add("a", np.arange(50), vectors[:50])
    index.add("b", np.arange(1000, 1050), vectors[:50])
    errors: list[BaseException] = []

    def writer() -> None:
        for start in range(50, 400, 25):
            index.add("a", np.arange(start, start + 25), vectors[start : start + 25])
        index.delete(range(60, 80))

    def reader(seed: int) -> None:
        try:
            for q in unit_vectors(100, seed=seed):
                hits = index.search("b", q, k=5)
                assert len(hits) == 5 and all(1000 <= i < 1050 for i in ids_of(hits))
        except BaseException as exc:  # surfaced below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(s,)) for s in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(index) == 400 + 50 - 20


def test_hnsw_search_breadth_scales_with_partition_size() -> None:
    rng = np.random.default_rng(7)
    index = HnswIndex(dim=8, ef_scale_entries=100)
    vectors = rng.normal(size=(250, 8)).astype(np.float32)
    index.add("big", np.arange(250), vectors)
    index.add("small", np.arange(1000, 1010), vectors[:10])
    assert index._parts["big"].graph.ef == 64 * 3  # 250 entries: three steps of 100
    assert index._parts["small"].graph.ef == 64
    index.set_ef_search(40)  # an explicit breadth is pinned, whatever the size
    assert index._parts["big"].graph.ef == index._parts["small"].graph.ef == 40
    index.set_ef_search(None)
    assert index._parts["big"].graph.ef == 192
    with pytest.raises(ValueError):
        HnswIndex(dim=8, ef_scale_entries=0)


def test_hnsw_scaled_breadth_survives_save_and_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    index = HnswIndex(dim=8, ef_scale_entries=50)
    index.add("p", np.arange(120), rng.normal(size=(120, 8)).astype(np.float32))
    index.save(tmp_path / "idx")
    loaded = load_index(tmp_path / "idx")
    assert isinstance(loaded, HnswIndex) and loaded.ef_search is None
    assert loaded._parts["p"].graph.ef == 64 * 3


def test_hnsw_frees_a_partition_left_empty() -> None:
    """Each hnswlib graph holds megabytes however small: an emptied partition is dropped,
    and adding to its name again starts a fresh graph."""
    index = HnswIndex(dim=DIM)
    for n in range(50):
        index.add(f"row-{n}", np.array([n]), unit_vectors(1, seed=n))
        index.delete([n])
    index.add("kept", np.array([100, 101]), unit_vectors(2, seed=100))
    index.delete([100])
    assert len(index._parts) == 1 and index.partitions() == ["kept"]  # noqa: SLF001
    index.add("row-3", np.array([3]), unit_vectors(1, seed=3))
    assert ids_of(index.search("row-3", unit_vectors(1, seed=3)[0], k=5)) == [3]
