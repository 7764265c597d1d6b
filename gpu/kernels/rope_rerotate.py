"""RoPE re-rotation of cached keys by a per-token position delta (memory-bound, one pass)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _rope_rerotate_kernel(
    K, OUT, DELTA, INV_FREQ,
    T,
    stride_kt, stride_kh, stride_ot, stride_oh,
    HALF: tl.constexpr, HALF_PAD: tl.constexpr,
    REST: tl.constexpr, REST_PAD: tl.constexpr,
    BLOCK_T: tl.constexpr, HEADS_PER_PROG: tl.constexpr,
):  # fmt: skip
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    t_ok = offs_t < T
    offs_f = tl.arange(0, HALF_PAD)
    f_ok = offs_f < HALF
    delta = tl.load(DELTA + offs_t, mask=t_ok, other=0).to(tl.float32)
    inv_freq = tl.load(INV_FREQ + offs_f, mask=f_ok, other=0.0)
    angle = delta[:, None] * inv_freq[None, :]
    cos = tl.cos(angle)
    sin = tl.sin(angle)
    mask = t_ok[:, None] & f_ok[None, :]
    h0 = tl.program_id(1) * HEADS_PER_PROG
    for dh in range(HEADS_PER_PROG):
        h = h0 + dh
        src = K + offs_t[:, None] * stride_kt + h * stride_kh + offs_f[None, :]
        dst = OUT + offs_t[:, None] * stride_ot + h * stride_oh + offs_f[None, :]
        x1 = tl.load(src, mask=mask, other=0.0).to(tl.float32)
        x2 = tl.load(src + HALF, mask=mask, other=0.0).to(tl.float32)
        tl.store(dst, (x1 * cos - x2 * sin).to(OUT.dtype.element_ty), mask=mask)
        tl.store(dst + HALF, (x2 * cos + x1 * sin).to(OUT.dtype.element_ty), mask=mask)
        if REST > 0:
            offs_r = tl.arange(0, REST_PAD)
            rmask = t_ok[:, None] & (offs_r[None, :] < REST)
            rsrc = K + offs_t[:, None] * stride_kt + h * stride_kh + 2 * HALF + offs_r[None, :]
            rdst = OUT + offs_t[:, None] * stride_ot + h * stride_oh + 2 * HALF + offs_r[None, :]
            tl.store(rdst, tl.load(rsrc, mask=rmask, other=0.0), mask=rmask)


# Launcher defaults (see gpu/KERNELS_NOTES.md): the angles of a token block are computed once
# and reused over ``heads_per_prog`` heads. On an H200, 4 heads per program reached 0.80 / 0.79
# of copy bandwidth at 8K / 64K tokens (2 heads: 0.64 / 0.69), the best config measured for both.
DEFAULT_BLOCK_T, DEFAULT_HEADS_PER_PROG, DEFAULT_WARPS = 32, 4, 4


def rope_rerotate(
    k: Tensor,
    delta: Tensor,
    inv_freq: Tensor,
    rotary_dim: int,
    out: Tensor | None = None,
    block_t: int = DEFAULT_BLOCK_T,
    heads_per_prog: int = DEFAULT_HEADS_PER_PROG,
    num_warps: int = DEFAULT_WARPS,
) -> Tensor:
    """Rotate cached keys by ``delta`` positions (no attention factor); returns ``out``.

    Shapes: ``k [T, H, D]`` (fp32/fp16/bf16, last dim contiguous), ``delta [T]`` int32/int64,
    ``inv_freq [rotary_dim // 2]`` fp32, ``out [T, H, D]`` like ``k`` (may be ``k`` itself:
    each tile is read before it is written). Only the first ``rotary_dim`` dims rotate.
    """
    assert k.dim() == 3, f"k must be [T, H, D], got {tuple(k.shape)}"
    t, h, d = k.shape
    assert k.dtype in (torch.float32, torch.float16, torch.bfloat16), k.dtype
    assert k.stride(2) == 1, "k's last dim must be contiguous"
    assert 0 < rotary_dim <= d and rotary_dim % 2 == 0, (rotary_dim, d)
    assert delta.shape == (t,) and delta.dtype in (torch.int32, torch.int64), (
        delta.shape,
        delta.dtype,
    )
    assert delta.is_contiguous() and delta.device == k.device
    assert inv_freq.shape == (rotary_dim // 2,) and inv_freq.dtype == torch.float32
    assert inv_freq.is_contiguous() and inv_freq.device == k.device
    if out is None:
        out = torch.empty_like(k)
    assert out.shape == k.shape and out.dtype == k.dtype and out.stride(2) == 1
    if t == 0:
        return out
    half, rest = rotary_dim // 2, d - rotary_dim
    in_place = out.data_ptr() == k.data_ptr() and out.stride() == k.stride()
    heads_per_prog = max(p for p in range(1, heads_per_prog + 1) if h % p == 0)  # no head mask
    grid = (triton.cdiv(t, block_t), h // heads_per_prog)
    _rope_rerotate_kernel[grid](
        k, out, delta, inv_freq, t,
        k.stride(0), k.stride(1), out.stride(0), out.stride(1),
        HALF=half, HALF_PAD=triton.next_power_of_2(half),
        REST=0 if in_place else rest, REST_PAD=max(triton.next_power_of_2(max(rest, 1)), 1),
        BLOCK_T=block_t, HEADS_PER_PROG=heads_per_prog, num_warps=num_warps,
    )  # fmt: skip
    return out
