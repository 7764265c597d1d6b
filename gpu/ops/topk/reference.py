"""Choosing the highest-scored tokens: ``torch.topk`` (one fp32 per token, too few for a kernel)."""

from __future__ import annotations

import torch
from torch import Tensor


def select_topk_ref(scores: Tensor, k: int, candidates: Tensor | None = None) -> Tensor:
    """Indices of the ``k`` highest ``scores [T]`` among ``candidates [T] bool`` (all if None).

    Returns ``min(k, #candidates)`` int64 indices in ascending order.
    """
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D, got shape {tuple(scores.shape)}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if candidates is None:
        pool = torch.arange(scores.shape[0], device=scores.device)
    else:
        if candidates.dtype != torch.bool or candidates.shape != scores.shape:
            raise TypeError(
                f"candidates must be bool {tuple(scores.shape)}, got "
                f"{candidates.dtype} {tuple(candidates.shape)}"
            )
        pool = torch.nonzero(candidates, as_tuple=True)[0]
    kk = min(k, pool.shape[0])
    top = torch.topk(scores[pool].to(torch.float32), kk, sorted=False).indices
    idx = pool[top]
    return torch.sort(idx).values.to(torch.int64)
