"""Scheduling data for partial attention: query order, key-block ranges and key splits.

Built once per (q_pos, k_pos) pair with a few small torch ops and no host sync; the same plan
serves every layer of a request.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import triton
from torch import Tensor

# 64x64 beat 128x64 and 64x128 at every fraction measured (docs/design/gpu_kernels.md).
DEFAULT_BLOCK_M, DEFAULT_BLOCK_N = 64, 64
# Query heads of one GQA group packed per tile (gqa_pack): with 4 on the Llama-3-8B shape (64-row
# tiles of 16 queries x 4 heads) the kernel took 0.241 instead of 0.266 ms at 15 % of 8K on an
# H200, 9 % faster at every fraction measured. Larger packs were not measured.
MAX_PACK = 4
# Auto key-splitting aims at this many programs per SM, each visiting at least MIN_SPLIT_BLOCKS
# key blocks (the merge costs one extra fp32 pass over the partial outputs). On an H100 it cut
# the 5%-selection time from 0.173 to 0.141 ms (3 splits) and 10% from 0.236 to 0.206 ms.
PROGRAMS_PER_SM, MIN_SPLIT_BLOCKS, MAX_SPLITS = 4, 8, 16


def _block_bounds(pos: Tensor, block: int) -> tuple[Tensor, Tensor]:
    """Per-block min and max of ``pos [N]`` (padding repeats the last entry: no host sync)."""
    n = pos.shape[0]
    pad = triton.cdiv(n, block) * block - n
    padded = torch.cat([pos, pos[-1:].expand(pad)]).view(-1, block)
    return padded.amin(dim=1), padded.amax(dim=1)


@dataclass(frozen=True, slots=True)
class AttentionPlan:
    """Query order and key-block ranges for one (q_pos, k_pos) pair; reusable across layers.

    ``order [Nq]`` sorts queries by position, ``q_pos_sorted [Nq]``; per query block,
    ``n_full [NQB]`` leading key blocks need no mask and ``n_end [NQB]`` blocks are visited.
    A query block holds ``block_m`` queries; with ``pack > 1`` each of them fills ``pack`` tile
    rows, one per query head of a GQA group, so the kernel's tiles have ``block_m * pack`` rows.
    """

    order: Tensor
    q_pos_sorted: Tensor
    k_pos: Tensor
    n_full: Tensor
    n_end: Tensor
    block_m: int
    block_n: int
    pack: int = 1


def plan_partial_attention(q_pos: Tensor, k_pos: Tensor, block_m: int = DEFAULT_BLOCK_M,
                           block_n: int = DEFAULT_BLOCK_N,
                           pack: int = 1) -> AttentionPlan:  # fmt: skip
    """Build the :class:`AttentionPlan` for ``q_pos [Nq]`` and ``k_pos [Nk]`` (no host sync).

    ``block_m`` queries per block, each packed into ``pack`` tile rows (see the class).
    Valid for any ``k_pos`` order; the skipping is tight when ``k_pos`` is sorted.
    """
    assert q_pos.dim() == 1 and k_pos.dim() == 1 and q_pos.device == k_pos.device
    assert q_pos.dtype == k_pos.dtype and q_pos.dtype in (torch.int32, torch.int64)
    assert q_pos.numel() > 0 and k_pos.numel() > 0, "empty problems need no plan"
    assert pack >= 1 and block_m * pack >= 16 and block_n >= 16, "tl.dot needs blocks >= 16"
    order = torch.argsort(q_pos, stable=True)
    q_pos_sorted = q_pos[order].contiguous()
    k_pos = k_pos.contiguous()
    qmin, qmax = _block_bounds(q_pos_sorted, block_m)
    kmin, kmax = _block_bounds(k_pos, block_n)
    steps = torch.arange(1, kmin.shape[0] + 1, device=k_pos.device)
    n_end = ((kmin[None, :] <= qmax[:, None]) * steps).amax(dim=1)
    full = (kmax[None, :] <= qmin[:, None]).to(torch.int32).cumprod(dim=1).sum(dim=1)
    complete_blocks = torch.full_like(n_end, k_pos.shape[0] // block_n)
    n_full = torch.minimum(full, torch.minimum(n_end, complete_blocks))
    return AttentionPlan(order, q_pos_sorted, k_pos, n_full.to(torch.int32),
                         n_end.to(torch.int32), block_m, block_n, pack)  # fmt: skip


def gqa_pack(group: int) -> int:
    """Query heads packed per query in a tile for a GQA group of ``group`` heads.

    The largest power of two that divides ``group``, at most ``MAX_PACK`` (tiles must have a
    power-of-two number of rows).
    """
    pack = 1
    while pack * 2 <= MAX_PACK and group % (pack * 2) == 0:
        pack *= 2
    return pack


@functools.cache
def _sm_count(device_index: int) -> int:
    return int(torch.cuda.get_device_properties(device_index).multi_processor_count)


def choose_num_splits(programs: int, key_blocks: int, device: torch.device) -> int:
    """Key splits per query block so that ``programs * splits`` fills the GPU (1 on CPU)."""
    if device.type != "cuda":
        return 1
    sms = _sm_count(device.index if device.index is not None else torch.cuda.current_device())
    wanted = triton.cdiv(PROGRAMS_PER_SM * sms, max(programs, 1))
    return max(1, min(wanted, key_blocks // MIN_SPLIT_BLOCKS, MAX_SPLITS))
