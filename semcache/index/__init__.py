"""Partitioned vector indexes for cosine search: hnswlib (default) and faiss.

Every partition (see ``semcache.lookup.partition``) has its own sub-index, so a
search only ever sees entries of the partition it names: the scope is part of the
search, never a filter applied after top-k. Ids are int64 and unique across the
whole index; adding an id that exists moves or updates it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from semcache.index.base import PartitionedIndex, VectorIndex
from semcache.index.faiss import FaissIndex
from semcache.index.hnsw import HnswIndex

__all__ = ["FaissIndex", "HnswIndex", "PartitionedIndex", "VectorIndex", "load_index", "make_index"]

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
