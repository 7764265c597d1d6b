"""vLLM's CPU paged KV cache and attention kernel as the connector worker's ``PagedKV``.

Each layer of the blended span is written into vLLM's paged blocks with vLLM's cache-write op,
and the blend's queries attend there with vLLM's own CPU attention kernel: each run of
consecutive query positions ``[a, b)`` is one causal sequence of the kernel's batch. Both ops are
vLLM's public ``vllm._custom_ops`` wrappers (``semcache.gpu.vllm.compat``); figures in
``docs/design/gpu_vllm.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True, slots=True)
class KernelPlan:
    """The kernel's batch for one set of query positions: one sequence per run of positions."""

    num_queries: int
    query_start_loc: Tensor  # [runs + 1] int32
    seq_lens: Tensor  # [runs] int32
    block_table: Tensor  # [runs, blocks] int32
    scheduler_metadata: Tensor


def position_runs(q_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of consecutive positions in ascending ``q_pos``: (query start offsets ``[runs + 1]``,
    sequence lengths ``[runs]``, i.e. each run's last position + 1)."""
    if q_pos.ndim != 1 or q_pos.size == 0:
        raise ValueError("need a non-empty 1-D array of query positions")
    steps = np.diff(q_pos)
    if (steps <= 0).any():
        raise ValueError("query positions must be strictly ascending")
    breaks = np.flatnonzero(steps != 1) + 1
    starts = np.concatenate(([0], breaks, [q_pos.size]))
    return starts, q_pos[starts[1:] - 1] + 1


class VllmPagedKV:
    """``PagedKV`` (``semcache.gpu.vllm.worker``) over vLLM's CPU KV cache tensors."""

    def __init__(self, caches: Sequence[Tensor], isas: Sequence[str], block_size: int,
                 num_heads: int, num_kv_heads: int, head_dim: int, scale: float) -> None:  # fmt: skip
        """``caches``: per layer ``[num_blocks, Hkv, block_size, 2 * D]`` (keys then values
        in each block's row), ``isas``: the ISA vLLM's CPU backend chose for each layer."""
        from vllm import _custom_ops as ops

        self.ops = ops
        self.block_size = block_size
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.scale = scale
        self.isas = list(isas)
        self.dtype = caches[0].dtype
        self.halves = []
        for cache in caches:
            num_blocks, heads, block, _ = cache.shape
            self.halves.append(cache.view(num_blocks, heads, 2 * block, -1).chunk(2, dim=2))

    def write(self, layer: int, keys: Tensor, values: Tensor, slots: Tensor) -> None:
        key_cache, value_cache = self.halves[layer]
        # the key half is stored in an ISA-specific packed order: vLLM's op writes it
        self.ops.cpu_attn_reshape_and_cache(keys.to(self.dtype).contiguous(),
                                            values.to(self.dtype).contiguous(), key_cache,
                                            value_cache, slots, self.isas[layer])  # fmt: skip

    def plan(self, q_pos: Tensor, block_ids: Sequence[int]) -> KernelPlan:
        pos = q_pos.cpu().numpy()
        starts, lens = position_runs(pos)
        need = -(-int(pos[-1] + 1) // self.block_size)
        if need > len(block_ids):
            raise ValueError(f"positions up to {int(pos[-1])} need {need} blocks, the request "
                             f"holds {len(block_ids)}")  # fmt: skip
        table = torch.tensor(list(block_ids[:need]), dtype=torch.int32)
        qsl = torch.from_numpy(starts.astype(np.int32))
        seq_lens = torch.from_numpy(lens.astype(np.int32))
        runs = int(seq_lens.shape[0])
        meta = self.ops.cpu_attn_get_scheduler_metadata(
            num_reqs=runs, num_heads=self.num_heads, num_kv_heads=self.num_kv_heads,
            head_dim=self.head_dim, seq_lens=seq_lens, dtype=self.dtype, query_start_loc=qsl,
            causal=True, sliding_window_size=-1, isa=self.isas[0], enable_kv_split=False)
        return KernelPlan(int(pos.size), qsl, seq_lens, table[None].expand(runs, need).contiguous(),
                          meta)  # fmt: skip

    def attend(self, layer: int, q: Tensor, plan: KernelPlan) -> Tensor:
        if q.shape[0] != plan.num_queries:
            raise ValueError(f"plan is for {plan.num_queries} queries, got {q.shape[0]}")
        key_cache, value_cache = self.halves[layer]
        out = torch.empty(q.shape, dtype=self.dtype)
        self.ops.cpu_attention_with_kv_cache(
            query=q.to(self.dtype).contiguous(), key_cache=key_cache, value_cache=value_cache,
            output=out, query_start_loc=plan.query_start_loc, seq_lens=plan.seq_lens,
            scale=self.scale, causal=True, alibi_slopes=None, sliding_window=-1,
            block_table=plan.block_table, softcap=0.0, scheduler_metadata=plan.scheduler_metadata,
            s_aux=None)
        return out
