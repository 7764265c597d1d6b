"""Partial attention without Triton (CPU): SDPA over a position mask built once per request.

The same positions serve every layer, so the mask ``k_pos <= q_pos`` is built once
(:func:`plan_cpu_attention`) and each layer is one ``scaled_dot_product_attention`` with
``enable_gqa`` (no copy of K or V per query head). The choice over grouped matmuls was measured
(``docs/design/gpu_ops.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True, slots=True)
class CpuAttentionPlan:
    """The mask of one (q_pos, k_pos) pair, shared by every layer."""

    mask: Tensor  # [1, 1, Nq, Nk] bool: True where the key is visible
    blind: Tensor | None  # [Nq] bool: rows that see no key (their output is zeros); None if none


def plan_cpu_attention(q_pos: Tensor, k_pos: Tensor) -> CpuAttentionPlan:
    visible = k_pos[None, :] <= q_pos[:, None]
    blind = ~visible.any(dim=1)
    return CpuAttentionPlan(visible[None, None], blind if bool(blind.any()) else None)


def cpu_attention(q: Tensor, k: Tensor, v: Tensor, scale: float, plan: CpuAttentionPlan) -> Tensor:
    """``q [Nq, Hq, D]`` over ``k, v [Nk, Hkv, D]`` with ``plan``'s mask: ``[Nq, Hq, D]``.

    A query that sees no key gets zeros (as in the reference).
    """
    nq, hq, _ = q.shape
    nk, hkv, _ = k.shape
    if plan.mask.shape[2:] != (nq, nk):
        raise ValueError(f"plan is for other positions: mask {tuple(plan.mask.shape[2:])}, "
                         f"need ({nq}, {nk})")  # fmt: skip
    if hq % hkv:
        raise ValueError(f"{hq} query heads do not group over {hkv} KV heads")
    out = F.scaled_dot_product_attention(
        q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
        attn_mask=plan.mask, scale=scale, enable_gqa=hq != hkv,
    )[0].transpose(0, 1)
    if plan.blind is not None:
        out = out.masked_fill(plan.blind[:, None, None], 0.0)
    return out
