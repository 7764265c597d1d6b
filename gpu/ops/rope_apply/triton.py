"""RoPE on fresh Q and K, and V made contiguous, in one launch (full rotary dims only)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _rope_apply_kernel(
    QKV, COS, SIN, Q_OUT, K_OUT, V_OUT,
    T, HQ, HKV,
    stride_t, stride_ct,
    HALF: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    # program (token block, head): heads 0..HQ-1 are Q, then HKV K heads, then HKV V heads
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    h = tl.program_id(1)
    offs_d = tl.arange(0, HALF)
    mask = (offs_t < T)[:, None]
    d = 2 * HALF
    src = QKV + offs_t[:, None].to(tl.int64) * stride_t + h * d + offs_d[None, :]
    x1 = tl.load(src, mask=mask, other=0.0)
    x2 = tl.load(src + HALF, mask=mask, other=0.0)
    if h >= HQ + HKV:
        dst = V_OUT + offs_t[:, None].to(tl.int64) * (HKV * d) + (h - HQ - HKV) * d + offs_d[None, :]
        tl.store(dst, x1, mask=mask)
        tl.store(dst + HALF, x2, mask=mask)
    else:
        cs = offs_t[:, None].to(tl.int64) * stride_ct + offs_d[None, :]
        c1 = tl.load(COS + cs, mask=mask, other=0.0).to(tl.float32)
        c2 = tl.load(COS + cs + HALF, mask=mask, other=0.0).to(tl.float32)
        s1 = tl.load(SIN + cs, mask=mask, other=0.0).to(tl.float32)
        s2 = tl.load(SIN + cs + HALF, mask=mask, other=0.0).to(tl.float32)
        ty = x1.dtype
        a1, a2 = x1.to(tl.float32), x2.to(tl.float32)
        # each product and the sum are rounded to the model dtype, as in transformers
        o1 = ((a1 * c1).to(ty).to(tl.float32) + (-a2 * s1).to(ty).to(tl.float32)).to(ty)
        o2 = ((a2 * c2).to(ty).to(tl.float32) + (a1 * s2).to(ty).to(tl.float32)).to(ty)
        if h < HQ:
            dst = Q_OUT + offs_t[:, None].to(tl.int64) * (HQ * d) + h * d + offs_d[None, :]
        else:
            dst = K_OUT + offs_t[:, None].to(tl.int64) * (HKV * d) + (h - HQ) * d + offs_d[None, :]
        tl.store(dst, o1, mask=mask)
        tl.store(dst + HALF, o2, mask=mask)


def rope_apply(qkv: Tensor, cos: Tensor, sin: Tensor, num_heads: int,
               num_kv_heads: int) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Split ``qkv [T, (Hq + 2 Hkv) * D]`` into rotated ``q [T, Hq, D]``, ``k [T, Hkv, D]`` and ``v``.

    ``cos/sin [T, D]`` in the model dtype (HF layout: both halves equal); D a power of two.
    Outputs are new contiguous tensors.
    """
    assert qkv.dim() == 2 and qkv.stride(1) == 1, (tuple(qkv.shape), qkv.stride())
    t, width = qkv.shape
    heads = num_heads + 2 * num_kv_heads
    assert width % heads == 0, (width, heads)
    d = width // heads
    assert d % 2 == 0 and triton.next_power_of_2(d // 2) == d // 2, f"head_dim {d} unsupported"
    assert cos.shape == (t, d) and sin.shape == (t, d), (tuple(cos.shape), tuple(sin.shape))
    assert cos.stride() == sin.stride() and cos.stride(1) == 1
    q = torch.empty((t, num_heads, d), dtype=qkv.dtype, device=qkv.device)
    k = torch.empty((t, num_kv_heads, d), dtype=qkv.dtype, device=qkv.device)
    v = torch.empty((t, num_kv_heads, d), dtype=qkv.dtype, device=qkv.device)
    if t == 0:
        return q, k, v
    block_t = 16
    _rope_apply_kernel[(triton.cdiv(t, block_t), heads)](
        qkv, cos, sin, q, k, v, t, num_heads, num_kv_heads, qkv.stride(0), cos.stride(0),
        HALF=d // 2, BLOCK_T=block_t,
    )  # fmt: skip
    return q, k, v
