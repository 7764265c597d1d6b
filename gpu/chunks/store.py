"""The per-chunk KV record and a small in-memory LRU store of them.

A record holds a chunk's token ids, the positions its KV was computed at, and its keys/values for
every layer as ``[num_layers, L, Hkv, D]`` (keys carry RoPE at the stored positions). Layer ``l``
is the contiguous slice ``keys[l]``, so tiers can copy one layer at a time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor


@dataclass(frozen=True, slots=True)
class ChunkKV:
    """KV of one chunk computed in isolation (see ``semcache.gpu.blend.ChunkEncoder``)."""

    token_ids: tuple[int, ...]
    positions: Tensor  # [L] int64: positions the KV was computed at
    keys: Tensor  # [num_layers, L, Hkv, D]
    values: Tensor  # [num_layers, L, Hkv, D]

    def __post_init__(self) -> None:
        n = len(self.token_ids)
        if self.keys.dim() != 4 or self.keys.shape != self.values.shape or self.keys.shape[1] != n:
            raise ValueError(
                f"keys/values must both be [layers, {n}, Hkv, D], got "
                f"{tuple(self.keys.shape)} and {tuple(self.values.shape)}"
            )
        if self.positions.shape != (n,) or self.positions.dtype != torch.int64:
            raise ValueError(f"positions must be int64 [{n}], got {self.positions.dtype} "
                             f"{tuple(self.positions.shape)}")

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.values.nbytes + self.positions.nbytes

    def to(self, device: torch.device | str, pin_memory: bool = False) -> ChunkKV:
        """A copy on ``device``; ``pin_memory`` pins host copies for asynchronous uploads."""
        def move(t: Tensor) -> Tensor:
            out = t.to(device)
            return out.pin_memory() if pin_memory and out.device.type == "cpu" else out
        return ChunkKV(self.token_ids, move(self.positions), move(self.keys), move(self.values))


class SharedKVTier(Protocol):
    """A tier below this store that several engines share (``semcache.gpu.chunks.redis_tier.RedisChunkKV``)."""

    def get(self, chunk_id: str) -> ChunkKV | None: ...

    def put(self, chunk_id: str, record: ChunkKV) -> bool: ...


class ChunkKVStore:
    """Dict-like LRU store of ``ChunkKV`` records keyed by chunk id, bounded in bytes.

    With ``shared`` (optional), a local miss asks the shared tier, and every
    record put here is written through to it.
    """

    def __init__(self, capacity_bytes: int = 8 << 30, *, shared: SharedKVTier | None = None) -> None:
        if capacity_bytes <= 0:
            raise ValueError(f"capacity_bytes must be positive, got {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self.shared = shared
        self._records: OrderedDict[str, ChunkKV] = OrderedDict()
        self._bytes = 0

    def get(self, chunk_id: str) -> ChunkKV | None:
        """The record of ``chunk_id`` (marked most recently used), or None."""
        record = self._records.get(chunk_id)
        if record is not None:
            self._records.move_to_end(chunk_id)
        elif self.shared is not None:
            record = self.shared.get(chunk_id)
            if record is not None:
                self._keep(chunk_id, record)
        return record

    def put(self, chunk_id: str, record: ChunkKV) -> None:
        """Store ``record`` (and share it), evicting least recently used records beyond the capacity."""
        if not isinstance(record, ChunkKV):
            raise TypeError(f"record must be a ChunkKV, got {type(record).__name__}")
        self._keep(chunk_id, record)
        if self.shared is not None:
            self.shared.put(chunk_id, record)

    def _keep(self, chunk_id: str, record: ChunkKV) -> None:
        old = self._records.pop(chunk_id, None)
        if old is not None:
            self._bytes -= old.nbytes
        self._records[chunk_id] = record
        self._bytes += record.nbytes
        while self._bytes > self.capacity_bytes and len(self._records) > 1:
            _, evicted = self._records.popitem(last=False)
            self._bytes -= evicted.nbytes

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._records

    def __len__(self) -> int:
        return len(self._records)

    @property
    def nbytes(self) -> int:
        return self._bytes
