"""Worker side of the vLLM connector: blend a planned span straight into the paged KV cache.

**The missing public hook.** vLLM's connector API (``KVConnectorBase_V1``) gives a worker
connector the paged KV tensors (``register_kv_caches``) and the forward context (attention
layers, metadata), never the loaded model, and it can only make vLLM *skip* a prefix of the
prompt. There is no hook to run vLLM's model over a chosen subset of tokens inside that prefix,
which selective recompute needs (the discussion is vLLM RFC #44223). So the connector runs the
selective recompute itself, with semcache's own layer loop (``ModelRunner``, ``Blender``) over a
second copy of the weights, loaded from the same checkpoint folder in vLLM's dtype. That costs
one extra copy of the weights in memory and uses only public vLLM API; the alternative, reaching
into the model runner for ``model`` (as LMCache's blending does through a patched vLLM), is a
private attribute that breaks on version drift.

The KV written is exactly the engine's blend (``semcache.gpu.blend``): cached chunk KV re-rotated
to its new positions, layers before the check layer recomputed for every token, after it the
non-chunk tokens and the ``ratio`` share of chunk tokens whose KV deviates most. Chunks seen for
the first time are computed in isolation (after the default anchor, ``semcache.gpu.anchor``) and
stored for later requests.

Each layer's rows of the span go into the paged cache as soon as they are final, and the blend's
queries attend there (``SpanAttention``, the blend's ``LayerAttention``), with the engine's
kernel in the connector (``semcache.gpu.vllm.paged``). So the KV is written once, with no pass
over every layer at the end, and the span's queries see the engine's own KV of its prefix-cache
hit before ``start``, the KV that the rest of the prompt will see too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from semcache.gpu.blend import BlendConfig, Blender
from semcache.gpu.chunk_kv import ChunkKVStore
from semcache.gpu.chunks import Segment
from semcache.gpu.runner import ModelRunner
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
