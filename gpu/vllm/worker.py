"""Worker side of the vLLM connector: blend a planned span straight into the paged KV cache.

vLLM's connector API gives a worker the paged KV tensors and the forward context, never the
model, so the connector runs the selective recompute with semcache's own ``ModelRunner`` and
``Blender`` over a second copy of the weights (public API only; ``docs/design/gpu_vllm.md``).
Each layer's rows go into the paged cache as soon as they are final and the blend's queries
attend there (``SpanAttention``, the blend's ``LayerAttention``), so the KV is written once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from semcache.gpu.blend import BlendConfig, Blender
from semcache.gpu.chunks.ids import Segment
from semcache.gpu.chunks.store import ChunkKVStore
from semcache.gpu.model.runner import ModelRunner
from semcache.gpu.vllm.plan import ConnectorConfig, LoadSpec, slot_mapping
from torch import Tensor


class PagedKV(Protocol):
    """One engine's paged KV cache as the worker uses it (``semcache.gpu.vllm_connector`` wraps
    vLLM's CPU cache and attention kernel; the unit tests a plain-PyTorch one).

    ``write`` stores ``keys``/``values`` ``[n, Hkv, D]`` of one layer at ``slots [n]``. ``plan``
    prepares ``attend`` for queries at ascending positions ``q_pos`` of a request holding
    ``block_ids`` (slot of position ``p``: ``block_ids[p // block_size] * block_size +
    p % block_size``); ``attend`` returns ``[n, Hq, D]``: each query over the keys cached at
    positions ``0 .. its own``.
    """

    block_size: int

    def write(self, layer: int, keys: Tensor, values: Tensor, slots: Tensor) -> None: ...

    def plan(self, q_pos: Tensor, block_ids: Sequence[int]) -> Any: ...

    def attend(self, layer: int, q: Tensor, plan: Any) -> Tensor: ...


class SpanAttention:
    """A blend's ``LayerAttention`` over a request's paged cache: each layer's rows of the span
    ``[start, end)`` are written at their slots, and queries attend in the paged cache, over the
    engine's own KV of the positions before ``start`` (its prefix-cache hit) and the span's."""

    def __init__(self, paged: PagedKV, spec: LoadSpec, slots: Tensor) -> None:
        self.paged, self.spec, self.slots = paged, spec, slots
        self._plans: list[tuple[Tensor, Any]] = []  # (q_pos, plan): two per request

    def _plan(self, q_pos: Tensor) -> Any:
        for pos, plan in self._plans:
            if pos is q_pos:
                return plan
        plan = self.paged.plan(q_pos, self.spec.block_ids)
        self._plans.append((q_pos, plan))
        return plan

    def __call__(self, layer: int, k: Tensor, v: Tensor, q: Tensor | None,
                 q_pos: Tensor | None) -> Tensor | None:  # fmt: skip
        a, b = self.spec.start, self.spec.end
        self.paged.write(layer, k[a:b], v[a:b], self.slots)
        if q is None:
            return None
        assert q_pos is not None
        return self.paged.attend(layer, q, self._plan(q_pos))


@dataclass(frozen=True, slots=True)
class BlendOutcome:
    """What one load did: tokens written, chunk tokens reused from the store, recomputed."""

    req_id: str
    written: int
    chunk_tokens: int
    reused_chunks: int
    encoded_chunks: int
    recomputed_chunk_tokens: int
    ms: float


class BlendWorker:
    """Blends planned spans with semcache's model runner straight into a paged KV cache."""

    def __init__(self, runner: ModelRunner, config: ConnectorConfig, anchor_ids: Sequence[int] = (),
                 store: ChunkKVStore | None = None) -> None:
        self.runner = runner
        self.config = config
        self.store = store if store is not None else ChunkKVStore(config.chunk_store_bytes)
        self.blender = Blender(runner, self.store, anchor_ids=anchor_ids)

    def blend_config(self, ratio: float) -> BlendConfig:
        c = self.config
        # on CPU "auto" places each chunk's keys with one GEMM (ops); attention runs in the
        # paged cache (``PagedKV``)
        return BlendConfig(ratio=ratio, check_layer=c.check_layer, select=c.select, score=c.score,
                           boundary_tokens=c.boundary_tokens, impl="auto")

    @torch.inference_mode()
    def load(self, spec: LoadSpec, paged: PagedKV) -> BlendOutcome:
        """Blend ``spec``'s span and write positions ``[start, end)`` into ``paged``, layer by layer."""
        t0 = time.perf_counter()
        segments = [Segment(s.token_ids, s.chunk_id) for s in spec.segments]
        if sum(len(s.token_ids) for s in segments) != spec.end:
            raise ValueError(f"segments of {spec.req_id} do not cover [0, {spec.end})")
        slots = torch.tensor(slot_mapping(spec.block_ids, paged.block_size, spec.start, spec.end),
                             dtype=torch.int64)  # fmt: skip
        # vLLM computes the rest of the prompt and its logits: only the span's KV is needed
        result = self.blender.prefill(segments, self.blend_config(spec.ratio), logits=False,
                                      attention=SpanAttention(paged, spec, slots),
                                      computed=spec.start)  # fmt: skip
        st = result.stats
        return BlendOutcome(spec.req_id, spec.end - spec.start, st.chunk_tokens, st.reused_chunks,
                            st.encoded_chunks, st.recomputed_chunk_tokens,
                            (time.perf_counter() - t0) * 1e3)
