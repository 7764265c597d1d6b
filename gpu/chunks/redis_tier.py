"""``RedisChunkKV``: a shared chunk-KV tier in Redis, so several engines reuse each other's KV.

A record is one safetensors blob under ``{prefix}:{chunk_id}`` with a TTL;
``ChunkKVStore(shared=...)`` asks this tier on a local miss and writes new records through.
``redis`` and ``safetensors`` are imported lazily. Any Redis error marks the tier down for
``retry_s`` seconds, during which ``get`` misses and ``put`` skips: the engine computes KV itself.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from semcache.gpu.chunks.store import ChunkKV

log = logging.getLogger(__name__)
FORMAT = "semcache-chunk-kv/1"


def encode(record: ChunkKV) -> bytes:
    """The safetensors bytes of ``record`` (tensors copied to the host)."""
    from safetensors.torch import save

    tensors = {
        "keys": record.keys.detach().to("cpu").contiguous(),
        "values": record.values.detach().to("cpu").contiguous(),
        "positions": record.positions.detach().to("cpu").contiguous(),
        "token_ids": torch.tensor(record.token_ids, dtype=torch.int64),
    }
    return save(tensors, metadata={"format": FORMAT})


def decode(blob: bytes, device: torch.device | str = "cpu") -> ChunkKV:
    """The record in ``blob`` (from :func:`encode`) on ``device``; ValueError if it is not one."""
    from safetensors.torch import load

    try:
        tensors = load(blob)
    except Exception as exc:  # safetensors raises its own error types for corrupt input
        raise ValueError(f"not a chunk-KV record: {exc}") from exc
    missing = {"keys", "values", "positions", "token_ids"} - set(tensors)
    if missing:
        raise ValueError(f"chunk-KV record lacks {sorted(missing)}")
    token_ids = tuple(int(t) for t in tensors["token_ids"].tolist())
    return ChunkKV(token_ids, tensors["positions"].to(device), tensors["keys"].to(device),
                   tensors["values"].to(device))


class RedisChunkKV:
    """Chunk-KV records shared through Redis (``url`` or an existing ``client``)."""

    def __init__(self, url: str | None = None, *, client: Any | None = None, prefix: str = "semcache:kv",
                 ttl_s: float | None = 3600.0, device: torch.device | str = "cpu",
                 timeout_s: float = 1.0, retry_s: float = 2.0) -> None:
        if (url is None) == (client is None):
            raise ValueError("give exactly one of url and client")
        if ttl_s is not None and ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive or None, got {ttl_s!r}")
        self._owns_client = client is None
        self.client = client if client is not None else _connect(str(url), timeout_s)
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.device = device
        self.retry_s = retry_s
        self.up = True
        self.errors = self.hits = self.misses = self.stored = 0
        self._retry_at = 0.0

    def _key(self, chunk_id: str) -> str:
        return f"{self.prefix}:{chunk_id}"

    def _usable(self) -> bool:
        return self.up or time.monotonic() >= self._retry_at

    def _failed(self, exc: BaseException) -> None:
        if self.up:
            log.warning("Redis chunk-KV tier unreachable (%s); computing KV locally", exc)
        self.up = False
        self.errors += 1
        self._retry_at = time.monotonic() + self.retry_s

    def get(self, chunk_id: str) -> ChunkKV | None:
        """The shared record of ``chunk_id``, or None (absent, unreadable, or Redis down)."""
        if not self._usable():
            return None
        try:
            blob = self.client.get(self._key(chunk_id))
        except Exception as exc:
            self._failed(exc)
            return None
        self.up = True
        if blob is None:
            self.misses += 1
            return None
        try:
            record = decode(blob, self.device)
        except ValueError as exc:
            log.warning("ignoring shared chunk KV %s: %s", chunk_id, exc)
            self.misses += 1
            return None
        self.hits += 1
        return record

    def put(self, chunk_id: str, record: ChunkKV) -> bool:
        """Share ``record``; False when Redis is down."""
        if not self._usable():
            return False
        try:
            px = None if self.ttl_s is None else int(self.ttl_s * 1000)
            self.client.set(self._key(chunk_id), encode(record), px=px)
        except Exception as exc:
            self._failed(exc)
            return False
        self.up = True
        self.stored += 1
        return True

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


def _connect(url: str, timeout_s: float) -> Any:
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as exc:
        raise ImportError("the shared chunk-KV tier needs redis: pip install 'semcache[redis]'") from exc
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                retry=Retry(NoBackoff(), 0))
