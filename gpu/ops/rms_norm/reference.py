"""Llama RMSNorm as the transformers module computes it, op for op (the rounding included)."""

from __future__ import annotations

import torch
from torch import Tensor


def rms_norm_ref(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """Llama RMSNorm of ``x [T, C]``: normalise in fp32, round to ``x.dtype``, times ``weight [C]``."""
    xf = x.to(torch.float32)
    normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)
