"""Partitioned vector indexes for cosine search: hnswlib (default) and faiss.

Every partition (a scope key such as ``Scope.key()``) has its own sub-index, so a
search only ever sees entries of the partition it names: the scope is part of the
search, never a filter applied after top-k. Ids are int64 and unique across the
whole index; adding an id that exists moves or updates it.

Thread safety: searches share a read lock and run concurrently (hnswlib allows
parallel ``knn_query``; it does not allow ``knn_query`` beside ``add_items`` or
``resize_index``), while every mutation takes the write lock.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

INDEX_FORMAT = 1
AUTO_EF_STEP, AUTO_EF_MAX = 64, 1024  # HnswIndex's size-scaled search breadth


@runtime_checkable
class VectorIndex(Protocol):
    """Cosine top-k search over int64 ids, split into named partitions."""

    dim: int

    def add(self, partition: str, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def delete(self, ids: Iterable[int]) -> None: ...
    def search(self, partition: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]: ...
    def __len__(self) -> int: ...
    def __contains__(self, id_: object) -> bool: ...
    def ids(self) -> set[int]: ...
    def partitions(self) -> list[str]: ...
    def save(self, path: str | Path) -> None: ...


class RWLock:
    """Many readers or one writer; a waiting writer blocks new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class PartitionedIndex:
    """Validation, the id -> partition map and locking shared by the backends."""

    kind = "base"

    def __init__(self, dim: int) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        self.dim = dim
        self._where: dict[int, str] = {}
        self._lock = RWLock()

    # -- validation ------------------------------------------------------------
    def _check_add(
        self, partition: str, ids: np.ndarray, vectors: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(partition, str):
            raise TypeError(f"partition must be a str, got {type(partition).__name__}")
        id_array = np.asarray(ids)
        if id_array.ndim != 1 or not np.issubdtype(id_array.dtype, np.integer):
            raise TypeError(
                f"ids must be a 1-D integer array, got {id_array.dtype} {id_array.shape}"
            )
        if id_array.size and id_array.min() < 0:
            raise ValueError("ids must be non-negative")
        vec = np.ascontiguousarray(vectors, dtype=np.float32)
        if vec.ndim != 2 or vec.shape != (id_array.size, self.dim):
            raise ValueError(
                f"vectors must have shape ({id_array.size}, {self.dim}), got {vec.shape}"
            )
        if len(np.unique(id_array)) != id_array.size:
            raise ValueError("ids passed to add() must be distinct")
        if not np.isfinite(vec).all():
            raise ValueError("vectors contain NaN or infinity")
        if (np.linalg.norm(vec, axis=1) == 0).any():
            raise ValueError("zero vectors have no direction and cannot be searched by cosine")
        return id_array.astype(np.int64), vec

    def _check_query(self, partition: str, vector: np.ndarray, k: int) -> np.ndarray:
        if not isinstance(partition, str):
            raise TypeError(f"partition must be a str, got {type(partition).__name__}")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        query = np.asarray(vector, dtype=np.float32)
        if query.shape not in ((self.dim,), (1, self.dim)):
            raise ValueError(f"query must have shape ({self.dim},), got {query.shape}")
        return query.reshape(1, self.dim)

    # -- id bookkeeping --------------------------------------------------------
    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._where

    def ids(self) -> set[int]:
        """All live ids."""
        with self._lock.read():
            return set(self._where)

    def partition_of(self, id_: int) -> str | None:
        """The partition holding ``id_``, or None."""
        return self._where.get(int(id_))

    def _group_by_partition(self, ids: Iterable[int]) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        for raw in ids:
            id_ = int(raw)
            partition = self._where.get(id_)
            if partition is not None:
                groups.setdefault(partition, []).append(id_)
        return groups

    # -- persistence helpers ---------------------------------------------------
    @staticmethod
    def _write_meta(path: Path, meta: dict[str, Any]) -> None:
        tmp = path / "meta.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, path / "meta.json")

    @staticmethod
    def _read_meta(path: Path, kind: str) -> dict[str, Any]:
        meta: dict[str, Any] = json.loads((Path(path) / "meta.json").read_text())
        if meta.get("kind") != kind or meta.get("format") != INDEX_FORMAT:
            raise ValueError(
                f"{path} holds a {meta.get('kind')!r} index (format {meta.get('format')}), "
                f"expected {kind!r} format {INDEX_FORMAT}"
            )
        return meta


class _HnswPartition:
    """One hnswlib graph plus the labels marked deleted in it."""

    def __init__(self, graph: Any, dead: set[int] | None = None) -> None:
        self.graph = graph
        self.dead: set[int] = dead or set()

    @property
    def live(self) -> int:
        return int(self.graph.element_count) - len(self.dead)


class HnswIndex(PartitionedIndex):
    """hnswlib, one cosine-space graph per partition, created lazily and grown by doubling.

    Deletes mark elements deleted; a partition whose deleted elements outnumber its
    live ones (and exceed ``compact_min``) is rebuilt from the live vectors.
    """

    kind = "hnsw"

    def __init__(
        self,
        dim: int = 384,
        M: int = 16,
        # 400 rather than 200: at 1M entries in one partition recall@1 at ef_search 256 rose
        # from 0.960 to 0.982 (0.985 -> 0.995 at 512) for 2.5x the build time; M=32/48 did not
        # help (benchmarks/results/lookup_latency*.json).
        ef_construction: int = 400,
        ef_search: int | None = None,
        initial_capacity: int = 1024,
        compact_min: int = 1024,
        ef_scale_entries: int = 200_000,
    ) -> None:
        """``ef_search`` None (the default) scales the search breadth with each partition's size:
        64, plus 64 per ``ef_scale_entries`` entries beyond the first, at most 1024. At 1M entries
        in one partition recall@1 was 0.914 at ef 64 and 0.995 at 320 (p50 0.39 ms), while at
        100k ef 64 already gave 0.999 (benchmarks/results/lookup_latency.json). An int pins it."""
        super().__init__(dim)
        for name, value in (
            ("M", M),
            ("ef_construction", ef_construction),
            ("ef_search", 64 if ef_search is None else ef_search),
            ("initial_capacity", initial_capacity),
            ("ef_scale_entries", ef_scale_entries),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.M, self.ef_construction, self.ef_search = M, ef_construction, ef_search
        self.ef_scale_entries = ef_scale_entries
        self.initial_capacity = initial_capacity
        self.compact_min = compact_min
        self._parts: dict[str, _HnswPartition] = {}

    def _new_graph(self, capacity: int) -> Any:
        import hnswlib

        graph = hnswlib.Index(space="cosine", dim=self.dim)
        graph.init_index(max_elements=capacity, ef_construction=self.ef_construction, M=self.M)
        graph.set_ef(self._ef(0))
        return graph

    def _ef(self, entries: int) -> int:
        """The search breadth for a partition of ``entries`` (see ``__init__``)."""
        if self.ef_search is not None:
            return self.ef_search
        return min(AUTO_EF_MAX, AUTO_EF_STEP * max(1, -(-entries // self.ef_scale_entries)))

    def partitions(self) -> list[str]:
        """Names of partitions that hold at least one live entry."""
        with self._lock.read():
            return sorted(name for name, part in self._parts.items() if part.live > 0)

    def set_ef_search(self, ef_search: int | None) -> None:
        """Pin the search breadth of every partition (recall/latency trade-off); None scales it."""
        if ef_search is not None and ef_search < 1:
            raise ValueError(f"ef_search must be >= 1, got {ef_search}")
        with self._lock.write():
            self.ef_search = ef_search
            for part in self._parts.values():
                part.graph.set_ef(self._ef(int(part.graph.element_count)))

    def add(self, partition: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert (or move/update) ``ids`` with their vectors into ``partition``."""
        id_array, vec = self._check_add(partition, ids, vectors)
        if not id_array.size:
            return
        with self._lock.write():
            moved = self._group_by_partition(id_array.tolist())
            moved.pop(partition, None)  # same-partition ids are updated in place by hnswlib
            self._delete_locked(moved)
            part = self._parts.get(partition)
            if part is None:
                capacity = max(self.initial_capacity, int(id_array.size))
                part = self._parts[partition] = _HnswPartition(self._new_graph(capacity))
            graph = part.graph
            needed = int(graph.element_count) + int(id_array.size)
            if needed > graph.get_max_elements():
                graph.resize_index(max(needed, 2 * graph.get_max_elements()))
            graph.add_items(vec, id_array)  # a deleted label is revived and updated
            graph.set_ef(self._ef(int(graph.element_count)))
            part.dead.difference_update(id_array.tolist())
            for id_ in id_array.tolist():
                self._where[id_] = partition

    def delete(self, ids: Iterable[int]) -> None:
        """Remove ids; unknown ids are ignored."""
        with self._lock.write():
            self._delete_locked(self._group_by_partition(ids))

    def _delete_locked(self, groups: dict[str, list[int]]) -> None:
        for name, members in groups.items():
            part = self._parts[name]
            for id_ in members:
                part.graph.mark_deleted(id_)
                part.dead.add(id_)
                del self._where[id_]
            if len(part.dead) > max(part.live, self.compact_min):
                self._compact(name, part)

    def _compact(self, name: str, part: _HnswPartition) -> None:
        live_ids = np.array([i for i in part.graph.get_ids_list() if i not in part.dead], np.int64)
        graph = self._new_graph(max(self.initial_capacity, 2 * live_ids.size))
        if live_ids.size:
            graph.add_items(part.graph.get_items(live_ids, return_type="numpy"), live_ids)
            graph.set_ef(self._ef(int(graph.element_count)))
        self._parts[name] = _HnswPartition(graph)

    def search(self, partition: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top-k (id, cosine similarity) of ``partition`` only, best first."""
        query = self._check_query(partition, vector, k)
        with self._lock.read():
            part = self._parts.get(partition)
            if part is None or part.live == 0:
                return []
            k_eff = min(int(k), part.live)
            try:
                labels, distances = part.graph.knn_query(query, k=k_eff, num_threads=1)
            except RuntimeError:
                # hnswlib could not reach k_eff live elements (rare after many deletes).
                return self._exact_search(part, query, k_eff)
        return [(int(i), 1.0 - float(d)) for i, d in zip(labels[0], distances[0], strict=True)]

    @staticmethod
    def _exact_search(part: _HnswPartition, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        live_ids = np.array([i for i in part.graph.get_ids_list() if i not in part.dead], np.int64)
        stored = np.asarray(part.graph.get_items(live_ids, return_type="numpy"), np.float32)
        sims = stored @ (query[0] / np.linalg.norm(query[0]))
        top = np.argsort(-sims)[:k]
        return [(int(live_ids[i]), float(sims[i])) for i in top]

    def save(self, path: str | Path) -> None:
        """Write the index to the folder ``path`` (one file per partition plus meta.json)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock.read():
            entries = []
            for number, (name, part) in enumerate(self._parts.items()):
                filename = f"part{number:06d}.hnsw"
                part.graph.save_index(str(folder / filename))
                entries.append(
                    {
                        "name": name,
                        "file": filename,
                        "dead": sorted(part.dead),
                        "capacity": int(part.graph.get_max_elements()),
                    }
                )
            meta = {
                "kind": self.kind,
                "format": INDEX_FORMAT,
                "dim": self.dim,
                "M": self.M,
                "ef_construction": self.ef_construction,
                "ef_search": self.ef_search,
                "ef_scale_entries": self.ef_scale_entries,
                "initial_capacity": self.initial_capacity,
                "compact_min": self.compact_min,
                "partitions": entries,
            }
            self._write_meta(folder, meta)

    @classmethod
    def load(cls, path: str | Path) -> HnswIndex:
        """Read an index written by ``save``."""
        import hnswlib

        folder = Path(path)
        meta = cls._read_meta(folder, cls.kind)
        index = cls(
            dim=meta["dim"],
            M=meta["M"],
            ef_construction=meta["ef_construction"],
            ef_search=meta["ef_search"],
            initial_capacity=meta["initial_capacity"],
            compact_min=meta["compact_min"],
            ef_scale_entries=meta.get("ef_scale_entries", 200_000),
        )
        for entry in meta["partitions"]:
            graph = hnswlib.Index(space="cosine", dim=index.dim)
            graph.load_index(str(folder / entry["file"]), max_elements=entry["capacity"])
            graph.set_ef(index._ef(int(graph.element_count)))
            part = _HnswPartition(graph, set(entry["dead"]))
            index._parts[entry["name"]] = part
            for id_ in graph.get_ids_list():
                if id_ not in part.dead:
                    index._where[int(id_)] = entry["name"]
        return index


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        from semcache.exceptions import MissingExtraError

        raise MissingExtraError("faiss-cpu", "faiss") from exc
    return faiss


class _FaissPartition:
    """An IndexIDMap2 over a flat (exact) or HNSW inner-product index, plus tombstones."""

    def __init__(self, index: Any, hnsw: bool, tombstones: set[int] | None = None) -> None:
        self.index = index
        self.hnsw = hnsw
        self.tombstones: set[int] = tombstones or set()

    @property
    def live(self) -> int:
        return int(self.index.ntotal) - len(self.tombstones)


class FaissIndex(PartitionedIndex):
    """faiss-cpu on L2-normalised vectors with inner product (= cosine), per partition.

    A partition starts as an exact flat index (real deletes via ``remove_ids``) and
    becomes an HNSW graph once it holds ``flat_limit`` vectors. HNSW cannot remove
    vectors, so deletes there are tombstones: a search over-fetches ``k`` plus the
    number of tombstones, so filtering can never leave fewer than ``k`` live results,
    and the partition is rebuilt once tombstones exceed ``rebuild_fraction`` of it.
    """

    kind = "faiss"

    def __init__(
        self,
        dim: int = 384,
        M: int = 16,
        ef_construction: int = 200,
        ef_search: int = 64,
        flat_limit: int = 4096,
        rebuild_fraction: float = 0.2,
    ) -> None:
        super().__init__(dim)
        self._faiss = _import_faiss()
        if not 0.0 < rebuild_fraction < 1.0:
            raise ValueError(f"rebuild_fraction must be in (0, 1), got {rebuild_fraction}")
        self.M, self.ef_construction, self.ef_search = M, ef_construction, ef_search
        self.flat_limit = flat_limit
        self.rebuild_fraction = rebuild_fraction
        self._parts: dict[str, _FaissPartition] = {}

    def _new_partition(self, hnsw: bool) -> _FaissPartition:
        faiss = self._faiss
        if hnsw:
            inner = faiss.IndexHNSWFlat(self.dim, self.M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.ef_construction
            inner.hnsw.efSearch = self.ef_search
        else:
            inner = faiss.IndexFlatIP(self.dim)
        return _FaissPartition(faiss.IndexIDMap2(inner), hnsw)

    @staticmethod
    def _normalise(vectors: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))

    def partitions(self) -> list[str]:
        """Names of partitions that hold at least one live entry."""
        with self._lock.read():
            return sorted(name for name, part in self._parts.items() if part.live > 0)

    def add(self, partition: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert (or move/update) ``ids`` with their vectors into ``partition``."""
        id_array, vec = self._check_add(partition, ids, vectors)
        if not id_array.size:
            return
        with self._lock.write():
            self._delete_locked(self._group_by_partition(id_array.tolist()))
            part = self._parts.get(partition)
            if part is None:
                part = self._parts[partition] = self._new_partition(hnsw=False)
            if part.tombstones.intersection(id_array.tolist()):
                part = self._rebuild(partition, part)  # a re-added id must not stay filtered
            if not part.hnsw and part.index.ntotal + id_array.size >= self.flat_limit:
                part = self._rebuild(partition, part, hnsw=True)
            part.index.add_with_ids(self._normalise(vec), id_array)
            for id_ in id_array.tolist():
                self._where[id_] = partition

    def delete(self, ids: Iterable[int]) -> None:
        """Remove ids; unknown ids are ignored."""
        with self._lock.write():
            self._delete_locked(self._group_by_partition(ids))

    def _delete_locked(self, groups: dict[str, list[int]]) -> None:
        for name, members in groups.items():
            part = self._parts[name]
            for id_ in members:
                del self._where[id_]
            if part.hnsw:
                part.tombstones.update(members)
                if len(part.tombstones) > self.rebuild_fraction * part.index.ntotal:
                    self._rebuild(name, part)
            else:
                part.index.remove_ids(np.asarray(members, dtype=np.int64))

    def _rebuild(
        self, name: str, part: _FaissPartition, hnsw: bool | None = None
    ) -> _FaissPartition:
        faiss = self._faiss
        all_ids = faiss.vector_to_array(part.index.id_map).astype(np.int64)
        vectors = part.index.index.reconstruct_n(0, part.index.ntotal)
        keep = np.array([i not in part.tombstones for i in all_ids.tolist()], dtype=bool)
        fresh = self._new_partition(part.hnsw if hnsw is None else hnsw)
        if keep.any():
            fresh.index.add_with_ids(np.ascontiguousarray(vectors[keep]), all_ids[keep])
        self._parts[name] = fresh
        return fresh

    def search(self, partition: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top-k (id, cosine similarity) of ``partition`` only, best first."""
        query = self._normalise(self._check_query(partition, vector, k))
        with self._lock.read():
            part = self._parts.get(partition)
            if part is None or part.live == 0:
                return []
            k_eff = min(int(k), part.live)
            fetch = min(k_eff + len(part.tombstones), int(part.index.ntotal))
            params = None
            if part.hnsw:
                params = self._faiss.SearchParametersHNSW()
                params.efSearch = max(self.ef_search, fetch)
            sims, labels = part.index.search(query, fetch, params=params)
            hits = [
                (int(i), float(s))
                for i, s in zip(labels[0], sims[0], strict=True)
                if i >= 0 and int(i) not in part.tombstones
            ]
        return hits[:k_eff]

    def save(self, path: str | Path) -> None:
        """Write the index to the folder ``path`` (one file per partition plus meta.json)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock.read():
            entries = []
            for number, (name, part) in enumerate(self._parts.items()):
                filename = f"part{number:06d}.faiss"
                self._faiss.write_index(part.index, str(folder / filename))
                entries.append(
                    {
                        "name": name,
                        "file": filename,
                        "hnsw": part.hnsw,
                        "tombstones": sorted(part.tombstones),
                    }
                )
            meta = {
                "kind": self.kind,
                "format": INDEX_FORMAT,
                "dim": self.dim,
                "M": self.M,
                "ef_construction": self.ef_construction,
                "ef_search": self.ef_search,
                "flat_limit": self.flat_limit,
                "rebuild_fraction": self.rebuild_fraction,
                "partitions": entries,
            }
            self._write_meta(folder, meta)

    @classmethod
    def load(cls, path: str | Path) -> FaissIndex:
        """Read an index written by ``save``."""
        folder = Path(path)
        meta = cls._read_meta(folder, cls.kind)
        index = cls(
            dim=meta["dim"],
            M=meta["M"],
            ef_construction=meta["ef_construction"],
            ef_search=meta["ef_search"],
            flat_limit=meta["flat_limit"],
            rebuild_fraction=meta["rebuild_fraction"],
        )
        for entry in meta["partitions"]:
            loaded = index._faiss.read_index(str(folder / entry["file"]))
            part = _FaissPartition(loaded, entry["hnsw"], set(entry["tombstones"]))
            index._parts[entry["name"]] = part
            for id_ in index._faiss.vector_to_array(loaded.id_map).tolist():
                if id_ not in part.tombstones:
                    index._where[int(id_)] = entry["name"]
        return index


def make_index(kind: str = "hnsw", dim: int = 384, **kwargs: Any) -> PartitionedIndex:
    """Build an empty index: ``kind`` is ``"hnsw"`` (hnswlib) or ``"faiss"`` (faiss-cpu)."""
    if kind == "hnsw":
        return HnswIndex(dim=dim, **kwargs)
    if kind == "faiss":
        return FaissIndex(dim=dim, **kwargs)
    raise ValueError(f"unknown index kind {kind!r}; expected 'hnsw' or 'faiss'")


def load_index(path: str | Path) -> PartitionedIndex:
    """Load an index saved by ``save()``, whichever backend wrote it."""
    kind = json.loads((Path(path) / "meta.json").read_text()).get("kind")
    if kind == HnswIndex.kind:
        return HnswIndex.load(path)
    if kind == FaissIndex.kind:
        return FaissIndex.load(path)
    raise ValueError(f"{path} does not hold a known index (kind={kind!r})")
