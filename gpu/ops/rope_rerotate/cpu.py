"""Placement of a chunk's keys with one shift for every row, as one GEMM (CPU).

A blend shifts all rows of a chunk by the same amount, so the rotation is one ``[D, D]`` matrix:
one GEMM instead of the reference's elementwise passes (``docs/design/gpu_ops.md`` has the
figures). In bf16 the GEMM runs in bf16 with fp32 accumulation and no fp32 copy of the keys.
"""

from __future__ import annotations

import torch
from semcache.gpu.model.rope import RopeConfig, rotation_matrix
from torch import Tensor


def single_shift(delta: Tensor) -> int | None:
    """The one shift every row of ``delta [n]`` has, else None."""
    if not delta.numel():
        return None
    shift = int(delta[0])
    return shift if bool((delta == shift).all()) else None


def place_rotated_cpu(k: Tensor, v: Tensor, k_out: Tensor, v_out: Tensor, shift: int,
                      cfg: RopeConfig) -> None:  # fmt: skip
    """``k_out = rerotate(k, shift)``, ``v_out = v`` for ``k, v [L, n, H, D]``."""
    rot = rotation_matrix(cfg, shift, k.device)
    flat = k.reshape(-1, k.shape[-1])
    if k.dtype == torch.bfloat16:
        k_out.copy_((flat @ rot.T.to(torch.bfloat16)).view(k.shape))
    else:
        k_out.copy_((flat.to(torch.float32) @ rot.T).view(k.shape))
    v_out.copy_(v)
