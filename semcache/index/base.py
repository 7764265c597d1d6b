"""What the index backends share: the ``VectorIndex`` protocol, a reader-writer lock and
``PartitionedIndex`` (validation, the id -> partition map, persistence helpers).

Each partition has its own sub-index, so a search only sees the partition it names.
Ids are int64 and unique across the index. Searches share a read lock; every mutation
takes the write lock (hnswlib forbids searching beside ``add_items``)."""

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

    def restore_partition(self, name: str, ids: Iterable[int]) -> None:
        """Record that ``ids`` live in partition ``name`` (used by the backends' ``load``)."""
        for id_ in ids:
            self._where[int(id_)] = name

