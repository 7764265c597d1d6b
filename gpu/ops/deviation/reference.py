"""The deviation of fresh from cached K or V per token, in pure torch."""

from __future__ import annotations

import torch
from semcache.gpu.ops.checks import check_kv
from torch import Tensor


def token_deviation_ref(cached: Tensor, fresh: Tensor) -> Tensor:
    """Per-token L2 norm over heads and dims of ``fresh - cached`` (both ``[T, H, D]``): ``[T]`` fp32."""
    check_kv("cached", cached)
    if fresh.shape != cached.shape:
        raise ValueError(f"fresh {tuple(fresh.shape)} and cached {tuple(cached.shape)} differ")
    diff = fresh.to(torch.float32) - cached.to(torch.float32)
    return diff.square().sum(dim=(1, 2)).sqrt()
