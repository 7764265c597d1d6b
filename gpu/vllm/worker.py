"""Worker side of the vLLM connector: blend a planned span and hand its KV to a paged-cache writer.

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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from semcache.gpu.blend import BlendConfig, Blender
from semcache.gpu.chunk_kv import ChunkKVStore
from semcache.gpu.chunks import Segment
from semcache.gpu.runner import ModelRunner
from semcache.gpu.vllm.plan import ConnectorConfig, LoadSpec
from torch import Tensor

# (layer index, keys [n, Hkv, D], values [n, Hkv, D], slots [n]) -> None
LayerWriter = Callable[[int, Tensor, Tensor, Tensor], None]


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
    """Blends planned spans with semcache's model runner and writes them through ``writer``."""

    def __init__(self, runner: ModelRunner, config: ConnectorConfig, anchor_ids: Sequence[int] = (),
                 store: ChunkKVStore | None = None) -> None:
        self.runner = runner
        self.config = config
        self.store = store if store is not None else ChunkKVStore(config.chunk_store_bytes)
        self.blender = Blender(runner, self.store, anchor_ids=anchor_ids)

    def blend_config(self, ratio: float) -> BlendConfig:
        c = self.config
        # on CPU "auto" attends through SDPA over a mask built once per request
        # (semcache.gpu.cpu_attention) and places each chunk's keys with one GEMM (ops)
        return BlendConfig(ratio=ratio, check_layer=c.check_layer, select=c.select, score=c.score,
                           boundary_tokens=c.boundary_tokens, impl="auto")

    @torch.inference_mode()
    def load(self, spec: LoadSpec, slots: Tensor, writer: LayerWriter) -> BlendOutcome:
        """Blend ``spec``'s span and write positions ``[start, end)`` at ``slots`` layer by layer."""
        import time

        t0 = time.perf_counter()
        if slots.shape != (spec.end - spec.start,):
            raise ValueError(f"need {spec.end - spec.start} slots, got {tuple(slots.shape)}")
        segments = [Segment(s.token_ids, s.chunk_id) for s in spec.segments]
        if sum(len(s.token_ids) for s in segments) != spec.end:
            raise ValueError(f"segments of {spec.req_id} do not cover [0, {spec.end})")
        # vLLM computes the rest of the prompt and its logits: only the span's KV is needed
        result = self.blender.prefill(segments, self.blend_config(spec.ratio), logits=False)
        kv = result.kv
        for layer in range(self.runner.num_layers):
            writer(layer, kv.keys[layer][spec.start:spec.end], kv.values[layer][spec.start:spec.end],
                   slots)
        st = result.stats
        return BlendOutcome(spec.req_id, spec.end - spec.start, st.chunk_tokens, st.reused_chunks,
                            st.encoded_chunks, st.recomputed_chunk_tokens,
                            (time.perf_counter() - t0) * 1e3)
