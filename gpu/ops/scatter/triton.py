"""Row gather/scatter for KV tensors: copy whole ``[H, D]`` token rows by index."""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _copy_rows_kernel(
    SRC, DST, IDX,
    H, D,
    stride_st, stride_sh, stride_dt, stride_dh,
    INDEX_DST: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    i = tl.program_id(0)
    j = tl.load(IDX + i).to(tl.int64)
    src_row = i if INDEX_DST else j
    dst_row = j if INDEX_DST else i
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    for d0 in range(0, D, BLOCK_D):
        dd = d0 + offs_d
        mask = (offs_h[:, None] < H) & (dd[None, :] < D)
        x = tl.load(
            SRC + src_row * stride_st + offs_h[:, None] * stride_sh + dd[None, :], mask=mask
        )
        tl.store(
            DST + dst_row * stride_dt + offs_h[:, None] * stride_dh + dd[None, :], x, mask=mask
        )


def _launch(src: Tensor, dst: Tensor, idx: Tensor, index_dst: bool) -> None:
    assert src.dim() == 3 and dst.dim() == 3 and src.shape[1:] == dst.shape[1:], (
        src.shape,
        dst.shape,
    )
    assert src.dtype == dst.dtype, (src.dtype, dst.dtype)
    assert src.stride(2) == 1 and dst.stride(2) == 1, "last dim must be contiguous"
    assert idx.dim() == 1 and idx.dtype in (torch.int32, torch.int64) and idx.is_contiguous()
    assert src.device == dst.device == idx.device
    n = idx.shape[0]
    if n == 0:
        return
    _, h, d = src.shape
    block_d = min(triton.next_power_of_2(d), 128)
    block_h = max(1, min(triton.next_power_of_2(h), 4096 // block_d))
    _copy_rows_kernel[(n, triton.cdiv(h, block_h))](
        src, dst, idx, h, d,
        src.stride(0), src.stride(1), dst.stride(0), dst.stride(1),
        INDEX_DST=index_dst, BLOCK_H=block_h, BLOCK_D=block_d,
    )  # fmt: skip


def scatter_rows(dst: Tensor, idx: Tensor, src: Tensor) -> None:
    """In place ``dst[idx[i]] = src[i]``. Shapes: ``dst [T, H, D]``, ``idx [n]``, ``src [n, H, D]``.

    Indices must be in ``[0, T)``; duplicate indices leave one of the rows (unspecified which).
    """
    assert src.shape[0] == idx.shape[0], (src.shape, idx.shape)
    _launch(src, dst, idx, index_dst=True)


def gather_rows(src: Tensor, idx: Tensor, out: Tensor | None = None) -> Tensor:
    """``src[idx]``. Shapes: ``src [T, H, D]``, ``idx [n]`` in ``[0, T)``; returns ``[n, H, D]``
    (written into ``out`` when given)."""
    assert src.dim() == 3, src.shape
    if out is None:
        out = torch.empty((idx.shape[0], *src.shape[1:]), dtype=src.dtype, device=src.device)
    assert out.shape == (idx.shape[0], *src.shape[1:]), (out.shape, idx.shape, src.shape)
    _launch(src, out, idx, index_dst=False)
    return out
