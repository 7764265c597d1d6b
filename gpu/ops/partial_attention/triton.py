"""Attention of a few selected queries (scattered positions) over the full fused KV.

Flash-style: one program per (query block, query head) streams key blocks with an online softmax
in fp32. Queries are processed in position order (``order`` permutes rows, no copy), so a query
block covers a narrow position range: key blocks entirely above its largest position are never
visited, key blocks entirely at or below its smallest position skip the mask, and only the blocks
in between apply the exact mask ``k_pos <= q_pos``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from semcache.gpu.ops.partial_attention.plan import (
    DEFAULT_BLOCK_M,
    DEFAULT_BLOCK_N,
    AttentionPlan,
    choose_num_splits,
    plan_partial_attention,
)
from torch import Tensor

_LOG2E = 1.4426950408889634
# Launcher defaults: fastest of 8 configs at every selected fraction (0.05-0.20 of 8192 tokens,
# Llama-3-8B heads) on an H100, triton 3.6; see docs/design/gpu_kernels.md.
DEFAULT_WARPS, DEFAULT_STAGES = 4, 3
__all__ = ["AttentionPlan", "partial_attention", "plan_partial_attention"]


@triton.jit
def _attend_block(q, acc, m_i, l_i, K, V, KPOS, qpos, n0, Nk, stride_kt, stride_vt,
                  offs_n, offs_d, qk_scale, MASKED: tl.constexpr, DOT_PRECISION: tl.constexpr,
                  UPCAST: tl.constexpr):  # fmt: skip
    kn = n0 + offs_n
    if MASKED:
        n_ok = kn < Nk
        k = tl.load(K + kn[None, :] * stride_kt + offs_d[:, None], mask=n_ok[None, :], other=0.0)
        v = tl.load(V + kn[:, None] * stride_vt + offs_d[None, :], mask=n_ok[:, None], other=0.0)
        if UPCAST:
            k = k.to(tl.float32)
        kpos = tl.load(KPOS + kn, mask=n_ok, other=0)
        visible = (kpos[None, :] <= qpos[:, None]) & n_ok[None, :]
        qk = tl.dot(q, k, input_precision=DOT_PRECISION) * qk_scale
        qk = tl.where(visible, qk, float("-inf"))
    else:
        k = tl.load(K + kn[None, :] * stride_kt + offs_d[:, None])
        v = tl.load(V + kn[:, None] * stride_vt + offs_d[None, :])
        if UPCAST:
            k = k.to(tl.float32)
        qk = tl.dot(q, k, input_precision=DOT_PRECISION) * qk_scale
    if UPCAST:
        v = v.to(tl.float32)
    m_new = tl.maximum(m_i, tl.max(qk, axis=1))
    p = tl.math.exp2(qk - m_new[:, None])
    alpha = tl.math.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, axis=1)
    if UPCAST:  # round p as the bf16 dot on a GPU would
        p_dot = p.to(tl.bfloat16).to(tl.float32)
    else:
        p_dot = p.to(v.dtype)
    acc = acc * alpha[:, None] + tl.dot(p_dot, v, input_precision=DOT_PRECISION)
    return acc, m_new, l_i


@triton.jit
def _partial_attention_kernel(
    Q, K, V, OUT, WS, LSE, LSE_OUT, QPOS, KPOS, ORDER, NFULL, NEND,
    qk_scale, Nq, Nk, Hq, blocks_per_split,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
    GROUP: tl.constexpr, PACK: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, NUM_SPLITS: tl.constexpr, DOT_PRECISION: tl.constexpr,
    UPCAST: tl.constexpr, STORE_LSE: tl.constexpr,
):  # fmt: skip
    # Late query blocks see the most keys: start them first to shorten the tail.
    item = tl.num_programs(0) - 1 - tl.program_id(0)
    qb = item // NUM_SPLITS
    split = item % NUM_SPLITS
    # A tile row is one (query, head) pair: PACK heads of one KV group per query, so the tile's
    # BLOCK_M rows hold BLOCK_M // PACK queries and each K/V block is loaded once for them all.
    offs_r = tl.arange(0, BLOCK_M)
    h = tl.program_id(1) * PACK + offs_r % PACK
    kvh = (tl.program_id(1) * PACK) // GROUP
    offs_m = qb * (BLOCK_M // PACK) + offs_r // PACK
    m_ok = offs_m < Nq
    rows = tl.load(ORDER + offs_m, mask=m_ok, other=0).to(tl.int64)
    qpos = tl.load(QPOS + offs_m, mask=m_ok, other=-1)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_n = tl.arange(0, BLOCK_N)
    q = tl.load(Q + rows[:, None] * stride_qt + h[:, None] * stride_qh + offs_d[None, :],
                mask=m_ok[:, None], other=0.0)  # fmt: skip
    if UPCAST:
        q = q.to(tl.float32)
    m_i = tl.full([BLOCK_M], -1.0e30, dtype=tl.float32)  # finite: fully masked rows stay NaN-free
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    Kh = K + kvh * stride_kh
    Vh = V + kvh * stride_vh
    lo = split * blocks_per_split
    hi = tl.minimum(tl.load(NEND + qb), lo + blocks_per_split)
    mid = tl.maximum(tl.minimum(tl.load(NFULL + qb), hi), lo)
    for b in range(lo, mid):
        acc, m_i, l_i = _attend_block(q, acc, m_i, l_i, Kh, Vh, KPOS, qpos, b * BLOCK_N, Nk,
                                      stride_kt, stride_vt, offs_n, offs_d, qk_scale,
                                      False, DOT_PRECISION, UPCAST)  # fmt: skip
    for b in range(mid, hi):
        acc, m_i, l_i = _attend_block(q, acc, m_i, l_i, Kh, Vh, KPOS, qpos, b * BLOCK_N, Nk,
                                      stride_kt, stride_vt, offs_n, offs_d, qk_scale,
                                      True, DOT_PRECISION, UPCAST)  # fmt: skip
    l_safe = tl.where(l_i == 0.0, 1.0, l_i)
    out = acc / l_safe[:, None]
    if NUM_SPLITS == 1:
        tl.store(OUT + rows[:, None] * stride_ot + h[:, None] * stride_oh + offs_d[None, :],
                 out.to(OUT.dtype.element_ty), mask=m_ok[:, None])  # fmt: skip
        if STORE_LSE:  # log2-sum-exp of the scaled logits; +inf for a row that sees no key
            row_lse = tl.where(l_i == 0.0, float("inf"), m_i + tl.math.log2(l_safe))
            tl.store(LSE_OUT + rows * Hq + h, row_lse, mask=m_ok)
    else:  # partial result and its log2-sum-exp, merged by _combine_splits_kernel
        slot = (split * Nq + rows) * Hq + h
        tl.store(WS + slot[:, None] * HEAD_DIM + offs_d[None, :], out, mask=m_ok[:, None])
        lse = tl.where(l_i == 0.0, -1.0e30, m_i + tl.math.log2(l_safe))
        tl.store(LSE + slot, lse, mask=m_ok)


@triton.jit
def _combine_splits_kernel(
    WS, LSE, OUT, LSE_OUT, Nq, Hq, stride_ot, stride_oh,
    NUM_SPLITS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_H: tl.constexpr,
    STORE_LSE: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0)
    offs_h = tl.arange(0, BLOCK_H)
    h_ok = offs_h < Hq
    offs_d = tl.arange(0, HEAD_DIM)
    m = tl.full([BLOCK_H], -1.0e30, dtype=tl.float32)
    l_sum = tl.zeros([BLOCK_H], dtype=tl.float32)
    acc = tl.zeros([BLOCK_H, HEAD_DIM], dtype=tl.float32)
    for s in range(NUM_SPLITS):
        slot = (s * Nq + row) * Hq + offs_h
        lse = tl.load(LSE + slot, mask=h_ok, other=-1.0e30)
        o = tl.load(WS + slot[:, None] * HEAD_DIM + offs_d[None, :], mask=h_ok[:, None], other=0.0)
        m_new = tl.maximum(m, lse)
        alpha = tl.math.exp2(m - m_new)
        w = tl.math.exp2(lse - m_new)  # empty splits (lse = -1e30) weigh 0 next to real ones
        l_sum = l_sum * alpha + w
        acc = acc * alpha[:, None] + w[:, None] * o
        m = m_new
    out = acc / l_sum[:, None]
    tl.store(OUT + row * stride_ot + offs_h[:, None] * stride_oh + offs_d[None, :],
             out.to(OUT.dtype.element_ty), mask=h_ok[:, None])  # fmt: skip
    if STORE_LSE:  # a row that sees no key has m = -1e30 in every split
        row_lse = tl.where(m <= -1.0e30, float("inf"), m + tl.math.log2(l_sum))
        tl.store(LSE_OUT + row * Hq + offs_h, row_lse, mask=h_ok)


def _check_args(q: Tensor, k: Tensor, v: Tensor, q_pos: Tensor, k_pos: Tensor,
                lse_out: Tensor | None) -> None:  # fmt: skip
    assert q.dim() == 3 and k.dim() == 3 and v.shape == k.shape, (q.shape, k.shape, v.shape)
    nq, hq, d = q.shape
    nk, hkv, dk = k.shape
    assert dk == d and hq % hkv == 0, (q.shape, k.shape)
    assert d >= 16 and d & (d - 1) == 0, f"head_dim must be a power of two >= 16, got {d}"
    assert q.dtype == k.dtype == v.dtype, (q.dtype, k.dtype, v.dtype)
    assert q.dtype in (torch.float32, torch.float16, torch.bfloat16), q.dtype
    assert q.stride(2) == 1 and k.stride(2) == 1 and v.stride(2) == 1, "last dim must be contiguous"
    assert q_pos.shape == (nq,) and k_pos.shape == (nk,), (q_pos.shape, k_pos.shape)
    assert q.device == k.device == v.device == q_pos.device == k_pos.device
    if lse_out is not None:
        assert lse_out.shape == (nq, hq) and lse_out.dtype == torch.float32, lse_out.shape
        assert lse_out.is_contiguous() and lse_out.device == q.device


def _splits(plan: AttentionPlan, nq: int, nk: int, hq: int, num_splits: int | None,
            device: torch.device) -> tuple[int, int, int]:  # fmt: skip
    """Query blocks, key blocks per split and the number of splits (None: from the SM count)."""
    nqb, nkb = triton.cdiv(nq, plan.block_m), triton.cdiv(nk, plan.block_n)
    if num_splits is None:
        num_splits = choose_num_splits(nqb * hq // plan.pack, nkb, device)
    assert num_splits >= 1, num_splits
    per_split = triton.cdiv(nkb, num_splits)
    return nqb, per_split, triton.cdiv(nkb, per_split)


def partial_attention(q: Tensor, k: Tensor, v: Tensor, q_pos: Tensor, k_pos: Tensor, scale: float,
                      block_m: int = DEFAULT_BLOCK_M, block_n: int = DEFAULT_BLOCK_N,
                      num_warps: int = DEFAULT_WARPS, num_stages: int = DEFAULT_STAGES,
                      out: Tensor | None = None, plan: AttentionPlan | None = None,
                      num_splits: int | None = None, pack: int = 1,
                      lse_out: Tensor | None = None) -> Tensor:  # fmt: skip
    """Selected-query attention with GQA and the exact causal mask ``k_pos <= q_pos``.

    ``q [Nq, Hq, D]``, ``k, v [Nk, Hkv, D]`` (one dtype, last dim contiguous, ``D`` a power of two
    >= 16), ``q_pos [Nq]``, ``k_pos [Nk]`` int64 (or both int32): ``[Nq, Hq, D]`` in ``q.dtype``,
    zeros for a blind query. ``plan``: a schedule for these positions (its blocks and ``pack``
    win); ``num_splits``: programs per key range (None: from the SM count); ``pack``: heads per
    tile; ``lse_out [Nq, Hq]`` fp32: each row's log2-sum-exp of the scaled logits (+inf if blind).
    """
    _check_args(q, k, v, q_pos, k_pos, lse_out)
    (nq, hq, d), (nk, hkv, _) = q.shape, k.shape
    if out is None:
        out = torch.empty_like(q)
    assert out.shape == q.shape and out.dtype == q.dtype and out.stride(2) == 1
    if nq == 0:
        return out
    if nk == 0:
        if lse_out is not None:
            lse_out.fill_(float("inf"))
        return out.zero_()
    if plan is None:
        assert pack >= 1 and block_m % pack == 0, (block_m, pack)
        plan = plan_partial_attention(q_pos, k_pos, block_m // pack, block_n, pack)
    assert plan.order.shape == (nq,) and plan.k_pos.shape == (nk,), "plan is for other positions"
    nqb, per_split, num_splits = _splits(plan, nq, nk, hq, num_splits, q.device)
    if num_splits > 1:
        ws = torch.empty((num_splits, nq, hq, d), dtype=torch.float32, device=q.device)
        lse = torch.empty((num_splits, nq, hq), dtype=torch.float32, device=q.device)
    else:
        ws = lse = out  # unused
    pack = plan.pack
    assert (hq // hkv) % pack == 0, f"plan packs {pack} heads, GQA group is {hq // hkv}"
    tile = plan.block_m * pack
    assert tile & (tile - 1) == 0, f"tile rows (block_m * pack = {tile}) must be a power of two"
    _partial_attention_kernel[(nqb * num_splits, hq // pack)](
        q, k, v, out, ws, lse, out if lse_out is None else lse_out,
        plan.q_pos_sorted, plan.k_pos, plan.order, plan.n_full, plan.n_end,
        scale * _LOG2E, nq, nk, hq, per_split,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        out.stride(0), out.stride(1),
        GROUP=hq // hkv, PACK=pack, HEAD_DIM=d, BLOCK_M=tile, BLOCK_N=plan.block_n,
        NUM_SPLITS=num_splits,
        DOT_PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        # the interpreter's bf16 dot multiplies raw bits (triton 3.9): fp32 dots, bf16-rounded p
        UPCAST=q.device.type == "cpu" and q.dtype == torch.bfloat16,
        STORE_LSE=lse_out is not None and num_splits == 1,
        num_warps=num_warps, num_stages=num_stages,
    )  # fmt: skip
    if num_splits > 1:
        _combine_splits_kernel[(nq,)](
            ws, lse, out, out if lse_out is None else lse_out, nq, hq, out.stride(0), out.stride(1),
            NUM_SPLITS=num_splits, HEAD_DIM=d, BLOCK_H=triton.next_power_of_2(hq),
            STORE_LSE=lse_out is not None,
        )  # fmt: skip
    return out
