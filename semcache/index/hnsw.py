"""``HnswIndex``: hnswlib, one cosine-space graph per partition (the default backend)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from semcache.index.base import AUTO_EF_MAX, AUTO_EF_STEP, INDEX_FORMAT, PartitionedIndex


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
    live ones (and exceed ``compact_min``) is rebuilt from the live vectors, and one left
    empty is dropped (each graph holds about 2.6 MB, however few elements it has).
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
        64, plus 64 per ``ef_scale_entries`` entries beyond the first, at most 1024 (why:
        docs/design/core.md). An int pins it."""
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
            if part.live == 0:
                del self._parts[name]  # a graph holds ~2.6 MB whatever its size: free it
            elif len(part.dead) > max(part.live, self.compact_min):
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
            index.restore_partition(entry["name"], (i for i in graph.get_ids_list() if i not in part.dead))
        return index
