"""Chunk KV computed once, in isolation, after a fixed anchor prefix (``chunks.anchor``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from semcache.gpu.chunks.store import ChunkKV
from semcache.gpu.model.runner import KVCache, ModelRunner


class ChunkEncoder:
    """Computes a chunk's KV after the anchor and keeps only the chunk's rows, with the positions
    they were computed at (``len(anchor) .. len(anchor) + L - 1``)."""

    def __init__(self, runner: ModelRunner, anchor_ids: Sequence[int] = ()) -> None:
        self.runner = runner
        self.anchor_ids = tuple(int(t) for t in anchor_ids)
        self.anchor_kv: KVCache | None = None  # computed on the first encode

    def encode(self, token_ids: Sequence[int]) -> ChunkKV:
        tokens = tuple(int(t) for t in token_ids)
        a = len(self.anchor_ids)
        if not a:
            _, kv = self.runner.prefill(tokens)
        else:  # the anchor's KV is computed once; each chunk extends a shallow copy of it
            if self.anchor_kv is None:
                _, self.anchor_kv = self.runner.prefill(self.anchor_ids)
            base = self.anchor_kv
            kv = KVCache(list(base.keys), list(base.values), base.positions)
            self.runner.extend(tokens, kv)
        return ChunkKV(
            tokens, kv.positions[a:].clone(),
            torch.stack([k[a:] for k in kv.keys]), torch.stack([v[a:] for v in kv.values]),
        )
