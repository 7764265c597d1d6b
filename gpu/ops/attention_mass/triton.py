"""Attention mass: how much attention each key receives from a few queries, in four launches.

1. ``_row_lse_kernel`` (row block, KV head, key split): each row's running max and sum of
   exponentials over its visible keys, flash-style; 2. ``_merge_splits_kernel``: the rows'
   log2-sum-exp (both skipped when the caller has it from ``partial_attention(lse_out=...)``);
3. ``_mass_kernel`` (key block, KV head): probabilities summed over rows, then one ``torch.sum``
   over KV heads. No atomics: the result is the same on every run. Row ``r`` of a KV head is
   query ``r // GROUP``, head ``kvh * GROUP + r % GROUP``; the mask is ``k_pos <= q_pos``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from semcache.gpu.ops.partial_attention.plan import choose_num_splits
from torch import Tensor

_LOG2E = 1.4426950408889634
DEFAULT_BLOCK_M, DEFAULT_BLOCK_N = 64, 64


@triton.jit
def _load_rows(Q, QPOS, kvh, r0, n_rows, stride_qt, stride_qh, offs_m, offs_d,
               GROUP: tl.constexpr, UPCAST: tl.constexpr):  # fmt: skip
    r = r0 + offs_m
    r_ok = r < n_rows
    qi = r // GROUP
    h = kvh * GROUP + r % GROUP
    q = tl.load(Q + qi[:, None] * stride_qt + h[:, None] * stride_qh + offs_d[None, :],
                mask=r_ok[:, None], other=0.0)  # fmt: skip
    if UPCAST:
        q = q.to(tl.float32)
    qpos = tl.load(QPOS + qi, mask=r_ok, other=-1)
    return q, qpos, r_ok, qi, h


@triton.jit
def _logits(q, qpos, K, KPOS, kvh, n0, Nk, stride_kt, stride_kh, offs_n, offs_d, qk_scale,
            DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr):  # fmt: skip
    kn = n0 + offs_n
    n_ok = kn < Nk
    k = tl.load(K + kn[None, :] * stride_kt + kvh * stride_kh + offs_d[:, None],
                mask=n_ok[None, :], other=0.0)  # fmt: skip
    if UPCAST:
        k = k.to(tl.float32)
    kpos = tl.load(KPOS + kn, mask=n_ok, other=0)
    visible = (kpos[None, :] <= qpos[:, None]) & n_ok[None, :]
    qk = tl.dot(q, k, input_precision=DOT_PRECISION) * qk_scale
    return tl.where(visible, qk, float("-inf"))


@triton.jit
def _row_lse_kernel(
    Q, K, QPOS, KPOS, M, L, qk_scale, n_rows, Nk, blocks_per_split,
    stride_qt, stride_qh, stride_kt, stride_kh,
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    rb = tl.program_id(0)
    kvh = tl.program_id(1)
    split = tl.program_id(2)
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    q, qpos, r_ok, _, _ = _load_rows(Q, QPOS, kvh, rb * BLOCK_M, n_rows, stride_qt, stride_qh,
                                     offs_m, offs_d, GROUP, UPCAST)  # fmt: skip
    m_i = tl.full([BLOCK_M], -1.0e30, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    lo = split * blocks_per_split * BLOCK_N
    hi = tl.minimum(lo + blocks_per_split * BLOCK_N, Nk)
    for n0 in range(lo, hi, BLOCK_N):
        qk = _logits(q, qpos, K, KPOS, kvh, n0, Nk, stride_kt, stride_kh, offs_n, offs_d,
                     qk_scale, DOT_PRECISION, UPCAST)  # fmt: skip
        m_new = tl.maximum(m_i, tl.max(qk, axis=1))
        l_i = l_i * tl.math.exp2(m_i - m_new) + tl.sum(tl.math.exp2(qk - m_new[:, None]), axis=1)
        m_i = m_new
    slot = (split * tl.num_programs(1) + kvh) * n_rows + rb * BLOCK_M + offs_m
    tl.store(M + slot, m_i, mask=r_ok)
    tl.store(L + slot, l_i, mask=r_ok)


@triton.jit
def _merge_splits_kernel(M, L, LSE, n, n_rows, Hq, GROUP: tl.constexpr,
                         NUM_SPLITS: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
    """``LSE [Nq, Hq]``: each row's log2-sum-exp over all key splits; +inf for no visible key."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < n
    m = tl.full([BLOCK], -1.0e30, dtype=tl.float32)
    l_sum = tl.zeros([BLOCK], dtype=tl.float32)
    for s in range(NUM_SPLITS):
        m_s = tl.load(M + s * n + offs, mask=ok, other=-1.0e30)
        l_s = tl.load(L + s * n + offs, mask=ok, other=0.0)
        m_new = tl.maximum(m, m_s)
        l_sum = l_sum * tl.math.exp2(m - m_new) + l_s * tl.math.exp2(m_s - m_new)
        m = m_new
    # exp2(logit - inf) = 0: a row that sees no key (or a padding row) adds no mass
    lse = tl.where(l_sum == 0.0, float("inf"), m + tl.math.log2(tl.where(l_sum == 0.0, 1.0, l_sum)))
    kvh = offs // n_rows
    r = offs % n_rows
    tl.store(LSE + (r // GROUP) * Hq + kvh * GROUP + r % GROUP, lse, mask=ok)


@triton.jit
def _mass_kernel(
    Q, K, QPOS, KPOS, LSE, OUT, qk_scale, n_rows, Nk, Hq,
    stride_qt, stride_qh, stride_kt, stride_kh,
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    n0 = tl.program_id(0) * BLOCK_N
    kvh = tl.program_id(1)
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    for r0 in range(0, n_rows, BLOCK_M):
        q, qpos, r_ok, qi, h = _load_rows(Q, QPOS, kvh, r0, n_rows, stride_qt, stride_qh, offs_m,
                                          offs_d, GROUP, UPCAST)  # fmt: skip
        lse = tl.load(LSE + qi * Hq + h, mask=r_ok, other=float("inf"))
        qk = _logits(q, qpos, K, KPOS, kvh, n0, Nk, stride_kt, stride_kh, offs_n, offs_d,
                     qk_scale, DOT_PRECISION, UPCAST)  # fmt: skip
        acc += tl.sum(tl.math.exp2(qk - lse[:, None]), axis=0)
    tl.store(OUT + kvh * Nk + n0 + offs_n, acc, mask=n0 + offs_n < Nk)


def attention_mass(q: Tensor, k: Tensor, q_pos: Tensor, k_pos: Tensor, scale: float,
                   block_m: int = DEFAULT_BLOCK_M, block_n: int = DEFAULT_BLOCK_N,
                   num_warps: int = 4, num_splits: int | None = None,
                   lse: Tensor | None = None) -> Tensor:  # fmt: skip
    """Attention ``[Nk]`` fp32 each key receives from ``q`` (``reference.attention_mass_ref``).

    Shapes: ``q [Nq, Hq, D]``, ``k [Nk, Hkv, D]`` (same dtype: fp32/fp16/bf16, last dim
    contiguous, ``Hq % Hkv == 0``, ``D`` a power of two >= 16), ``q_pos [Nq]``, ``k_pos [Nk]``
    (same integer dtype). Query head ``h`` reads KV head ``h // (Hq // Hkv)``; a query that sees
    no key adds nothing. fp32 inputs use full-precision dots. ``num_splits`` splits the keys of
    the first launch over that many programs per row block (None: enough to fill the GPU).
    ``lse [Nq, Hq]`` fp32 (optional): each row's log2-sum-exp of the logits times
    ``scale * log2(e)`` over its visible keys, as ``partial_attention(lse_out=...)`` writes it;
    then only the mass launch runs.
    """
    assert q.dim() == 3 and k.dim() == 3, (q.shape, k.shape)
    nq, hq, d = q.shape
    nk, hkv, dk = k.shape
    assert dk == d and hq % hkv == 0, (q.shape, k.shape)
    assert d >= 16 and d & (d - 1) == 0, f"head_dim must be a power of two >= 16, got {d}"
    assert q.dtype == k.dtype and q.dtype in (torch.float32, torch.float16, torch.bfloat16)
    assert q.stride(2) == 1 and k.stride(2) == 1, "last dim must be contiguous"
    assert q_pos.shape == (nq,) and k_pos.shape == (nk,), (q_pos.shape, k_pos.shape)
    assert q_pos.dtype == k_pos.dtype, (q_pos.dtype, k_pos.dtype)
    assert q.device == k.device == q_pos.device == k_pos.device
    if lse is not None:
        assert lse.shape == (nq, hq) and lse.dtype == torch.float32 and lse.is_contiguous()
        assert lse.device == q.device
    out = torch.zeros(nk, dtype=torch.float32, device=q.device)
    if nq == 0 or nk == 0:
        return out
    group = hq // hkv
    n_rows = nq * group
    nkb = triton.cdiv(nk, block_n)
    n_rb = triton.cdiv(n_rows, block_m)
    common = dict(
        GROUP=group, HEAD_DIM=d, BLOCK_M=block_m, BLOCK_N=block_n,
        DOT_PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        # the interpreter's bf16 dot multiplies raw bit patterns: go through fp32 there
        UPCAST=q.device.type == "cpu" and q.dtype != torch.float32, num_warps=num_warps,
    )  # fmt: skip
    qk_scale = scale * _LOG2E
    if lse is None:
        lse = _row_lse(q, k, q_pos, k_pos, qk_scale, n_rows, n_rb, nkb, num_splits, common)
    per_head = torch.empty((hkv, nk), dtype=torch.float32, device=q.device)
    _mass_kernel[(nkb, hkv)](
        q, k, q_pos, k_pos, lse, per_head, qk_scale, n_rows, nk, hq,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), **common,
    )  # fmt: skip
    return torch.sum(per_head, dim=0, out=out)


def _row_lse(q: Tensor, k: Tensor, q_pos: Tensor, k_pos: Tensor, qk_scale: float, n_rows: int,
             n_rb: int, nkb: int, num_splits: int | None, common: dict) -> Tensor:  # fmt: skip
    """Steps 1 and 2 of the module docstring: ``[Nq, Hq]`` log2-sum-exp of every row."""
    nq, hq, _ = q.shape
    nk, hkv, _ = k.shape
    if num_splits is None:
        num_splits = choose_num_splits(n_rb * hkv, nkb, q.device)
    per_split = triton.cdiv(nkb, max(1, min(num_splits, nkb)))
    num_splits = triton.cdiv(nkb, per_split)
    m_part = torch.empty((num_splits, hkv, n_rows), dtype=torch.float32, device=q.device)
    l_part = torch.empty_like(m_part)
    _row_lse_kernel[(n_rb, hkv, num_splits)](
        q, k, q_pos, k_pos, m_part, l_part, qk_scale, n_rows, nk, per_split,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), **common,
    )  # fmt: skip
    lse = torch.empty((nq, hq), dtype=torch.float32, device=q.device)
    _merge_splits_kernel[(triton.cdiv(hkv * n_rows, 256),)](
        m_part, l_part, lse, hkv * n_rows, n_rows, hq, GROUP=hq // hkv, NUM_SPLITS=num_splits,
        BLOCK=256,
    )  # fmt: skip
    return lse
