"""Argument checks the references share: KV tensors are ``[T, H, D]``, indices 1-D integers."""

from __future__ import annotations

import torch
from torch import Tensor


def check_kv(name: str, t: Tensor) -> None:
    if t.dim() != 3:
        raise ValueError(f"{name} must be [T, H, D], got shape {tuple(t.shape)}")


def check_index(name: str, idx: Tensor, n: int | None = None) -> None:
    if idx.dim() != 1 or idx.dtype.is_floating_point or idx.dtype == torch.bool:
        raise TypeError(f"{name} must be a 1-D integer tensor, got {idx.dtype} {tuple(idx.shape)}")
    if n is not None and idx.shape[0] != n:
        raise ValueError(f"{name} has {idx.shape[0]} entries, expected {n}")


def check_shift(delta: Tensor, n: int) -> None:
    """``delta`` holds one integer shift per row: ``[n]`` int32/int64."""
    if delta.shape != (n,) or delta.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"delta must be int [{n}], got {delta.dtype} {tuple(delta.shape)}")
