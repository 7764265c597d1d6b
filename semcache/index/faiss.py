"""``FaissIndex``: faiss-cpu, a flat or HNSW inner-product index per partition."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from semcache.index.base import INDEX_FORMAT, PartitionedIndex


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
            index.restore_partition(entry["name"], (i for i in index._faiss.vector_to_array(loaded.id_map).tolist()
                                                    if i not in part.tombstones))
        return index

