"""RoPE re-rotation of cached keys by a per-token position delta (memory-bound, one pass)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _rope_rerotate_kernel(
    K, OUT, V, V_OUT, DELTA, INV_FREQ,
    T,
    stride_kl, stride_kt, stride_kh, stride_ol, stride_ot, stride_oh,
    stride_vl, stride_vt, stride_vh, stride_wl, stride_wt, stride_wh,
    HALF: tl.constexpr, HALF_PAD: tl.constexpr,
    REST: tl.constexpr, REST_PAD: tl.constexpr,
    HAS_V: tl.constexpr, D: tl.constexpr, D_PAD: tl.constexpr,
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
    layer = tl.program_id(2).to(tl.int64)
    k_base = K + layer * stride_kl
    o_base = OUT + layer * stride_ol
    h0 = tl.program_id(1) * HEADS_PER_PROG
    for dh in range(HEADS_PER_PROG):
        h = h0 + dh
        src = k_base + offs_t[:, None] * stride_kt + h * stride_kh + offs_f[None, :]
        dst = o_base + offs_t[:, None] * stride_ot + h * stride_oh + offs_f[None, :]
        x1 = tl.load(src, mask=mask, other=0.0).to(tl.float32)
        x2 = tl.load(src + HALF, mask=mask, other=0.0).to(tl.float32)
        tl.store(dst, (x1 * cos - x2 * sin).to(OUT.dtype.element_ty), mask=mask)
        tl.store(dst + HALF, (x2 * cos + x1 * sin).to(OUT.dtype.element_ty), mask=mask)
        if REST > 0:
            offs_r = tl.arange(0, REST_PAD)
            rmask = t_ok[:, None] & (offs_r[None, :] < REST)
            rsrc = k_base + offs_t[:, None] * stride_kt + h * stride_kh + 2 * HALF + offs_r[None, :]
            rdst = o_base + offs_t[:, None] * stride_ot + h * stride_oh + 2 * HALF + offs_r[None, :]
            tl.store(rdst, tl.load(rsrc, mask=rmask, other=0.0), mask=rmask)
        if HAS_V:  # the values of the same rows, copied alongside (chunk KV placement)
            offs_d = tl.arange(0, D_PAD)
            vmask = t_ok[:, None] & (offs_d[None, :] < D)
            vsrc = V + layer * stride_vl + offs_t[:, None] * stride_vt + h * stride_vh + offs_d[None, :]
            vdst = (V_OUT + layer * stride_wl + offs_t[:, None] * stride_wt + h * stride_wh
                    + offs_d[None, :])  # fmt: skip
            tl.store(vdst, tl.load(vsrc, mask=vmask, other=0.0), mask=vmask)


# Launcher defaults (see docs/design/gpu_kernels.md): the angles of a token block are computed once
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
    v: Tensor | None = None,
    v_out: Tensor | None = None,
) -> Tensor:
    """Rotate cached keys by ``delta`` positions (no attention factor); returns ``out``.

    Shapes: ``k [T, H, D]`` or ``[L, T, H, D]`` (L layers at the same positions; fp32/fp16/bf16,
    last dim contiguous), ``delta [T]`` int32/int64, ``inv_freq [rotary_dim // 2]`` fp32, ``out``
    like ``k`` (may be ``k`` itself: each tile is read before it is written). Only the first
    ``rotary_dim`` dims rotate. With ``v`` and ``v_out`` (shaped like ``k``), the same launch
    also copies ``v`` into ``v_out``: placing a chunk's K/V at new rows is then one pass.
    """
    assert k.dim() in (3, 4), f"k must be [T, H, D] or [L, T, H, D], got {tuple(k.shape)}"
    k4 = k if k.dim() == 4 else k[None]
    n_layers, t, h, d = k4.shape
    assert k.dtype in (torch.float32, torch.float16, torch.bfloat16), k.dtype
    assert k.stride(-1) == 1, "k's last dim must be contiguous"
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
    assert out.shape == k.shape and out.dtype == k.dtype and out.stride(-1) == 1
    assert (v is None) == (v_out is None), "v and v_out go together"
    if v is not None:
        assert v_out is not None
        assert v.shape == k.shape and v_out.shape == k.shape, (tuple(v.shape), tuple(v_out.shape))
        assert v.dtype == k.dtype and v_out.dtype == k.dtype, (v.dtype, v_out.dtype)
        assert v.stride(-1) == 1 and v_out.stride(-1) == 1, "v's last dim must be contiguous"
    if t == 0 or n_layers == 0:
        return out
    o4 = out if out.dim() == 4 else out[None]
    v4 = k4 if v is None else (v if v.dim() == 4 else v[None])
    w4 = o4 if v_out is None else (v_out if v_out.dim() == 4 else v_out[None])
    half, rest = rotary_dim // 2, d - rotary_dim
    in_place = out.data_ptr() == k.data_ptr() and o4.stride() == k4.stride()
    heads_per_prog = max(p for p in range(1, heads_per_prog + 1) if h % p == 0)  # no head mask
    grid = (triton.cdiv(t, block_t), h // heads_per_prog, n_layers)
    _rope_rerotate_kernel[grid](
        k4, o4, v4, w4, delta, inv_freq, t,
        *k4.stride()[:3], *o4.stride()[:3], *v4.stride()[:3], *w4.stride()[:3],
        HALF=half, HALF_PAD=triton.next_power_of_2(half),
        REST=0 if in_place else rest, REST_PAD=max(triton.next_power_of_2(max(rest, 1)), 1),
        HAS_V=v is not None, D=d, D_PAD=triton.next_power_of_2(d),
        BLOCK_T=block_t, HEADS_PER_PROG=heads_per_prog, num_warps=num_warps,
    )  # fmt: skip
    return out
