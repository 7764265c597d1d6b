"""Row scatter and gather of ``[T, H, D]`` KV tensors, in pure torch."""

from __future__ import annotations

from semcache.gpu.ops.checks import check_index, check_kv
from torch import Tensor


def scatter_rows_ref(dst: Tensor, idx: Tensor, src: Tensor) -> None:
    """In place: ``dst[idx[i]] = src[i]`` for ``dst [T, H, D]``, ``idx [n]``, ``src [n, H, D]``."""
    check_kv("dst", dst)
    check_kv("src", src)
    check_index("idx", idx, src.shape[0])
    if src.shape[1:] != dst.shape[1:]:
        raise ValueError(f"src rows {tuple(src.shape[1:])} != dst rows {tuple(dst.shape[1:])}")
    dst[idx] = src.to(dst.dtype)


def gather_rows_ref(src: Tensor, idx: Tensor) -> Tensor:
    """``src[idx]``: rows of ``src [T, H, D]`` at ``idx [n]`` as a new ``[n, H, D]`` tensor."""
    check_kv("src", src)
    check_index("idx", idx)
    return src[idx]
