"""Per-token KV deviation: L2 norm of ``fresh - cached`` over all heads and dims.

Top-k selection on these scores stays in ``torch.topk`` (see ``semcache.gpu.ops.select_topk``):
the scores are one fp32 per token (a few KiB), so a Triton top-k would save nothing measurable.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _deviation_kernel(
    CACHED, FRESH, OUT,
    T, H, D,
    stride_ct, stride_ch, stride_ft, stride_fh,
    BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    t_ok = offs_t < T
    offs_d = tl.arange(0, BLOCK_D)
    acc = tl.zeros([BLOCK_T, BLOCK_D], dtype=tl.float32)
    for h in range(H):
        for d0 in range(0, D, BLOCK_D):
            dd = d0 + offs_d
            mask = t_ok[:, None] & (dd[None, :] < D)
            c = tl.load(CACHED + offs_t[:, None] * stride_ct + h * stride_ch + dd[None, :],
                        mask=mask, other=0.0).to(tl.float32)  # fmt: skip
            f = tl.load(FRESH + offs_t[:, None] * stride_ft + h * stride_fh + dd[None, :],
                        mask=mask, other=0.0).to(tl.float32)  # fmt: skip
            diff = f - c
            acc += diff * diff
    tl.store(OUT + offs_t, tl.sqrt(tl.sum(acc, axis=1)), mask=t_ok)


def token_deviation(
    cached: Tensor, fresh: Tensor, out: Tensor | None = None, block_t: int = 16
) -> Tensor:
    """Per-token ``||fresh - cached||_2`` over heads and dims.

    Shapes: ``cached, fresh [T, H, D]`` (same dtype: fp32/fp16/bf16, last dim contiguous).
    Returns ``[T]`` float32 (written into ``out`` when given).
    """
    assert cached.dim() == 3 and fresh.shape == cached.shape, (cached.shape, fresh.shape)
    assert fresh.dtype == cached.dtype, (fresh.dtype, cached.dtype)
    assert cached.dtype in (torch.float32, torch.float16, torch.bfloat16), cached.dtype
    assert cached.stride(2) == 1 and fresh.stride(2) == 1, "last dim must be contiguous"
    assert fresh.device == cached.device
    t, h, d = cached.shape
    if out is None:
        out = torch.empty(t, dtype=torch.float32, device=cached.device)
    assert out.shape == (t,) and out.dtype == torch.float32 and out.is_contiguous()
    if t == 0:
        return out
    block_d = min(triton.next_power_of_2(d), 128)
    _deviation_kernel[(triton.cdiv(t, block_t),)](
        cached, fresh, out, t, h, d,
        cached.stride(0), cached.stride(1), fresh.stride(0), fresh.stride(1),
        BLOCK_T=block_t, BLOCK_D=block_d,
    )  # fmt: skip
    return out
