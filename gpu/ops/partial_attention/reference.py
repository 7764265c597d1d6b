"""Attention of selected queries over a fused KV with an exact position mask, in pure torch."""

from __future__ import annotations

import torch
from semcache.gpu.ops.checks import check_index, check_kv
from torch import Tensor


def partial_attention_ref(
    q: Tensor, k: Tensor, v: Tensor, q_pos: Tensor, k_pos: Tensor, scale: float
) -> Tensor:
    """Attention of selected queries over the full fused KV with an exact causal mask.

    Shapes: ``q [Nq, Hq, D]``, ``k, v [Nk, Hkv, D]`` with ``Hq % Hkv == 0`` (GQA: query head ``h``
    reads KV head ``h // (Hq // Hkv)``), ``q_pos [Nq]``, ``k_pos [Nk]``. Key ``j`` is visible to
    query ``i`` iff ``k_pos[j] <= q_pos[i]``. Softmax in fp32; a query that sees no key gets zeros.
    Returns ``[Nq, Hq, D]`` in ``q.dtype``.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_kv(name, t)
    nq, hq, d = q.shape
    nk, hkv, _ = k.shape
    if v.shape != k.shape or k.shape[-1] != d:
        raise ValueError(f"k {tuple(k.shape)} / v {tuple(v.shape)} do not match q {tuple(q.shape)}")
    if hq % hkv:
        raise ValueError(f"Hq={hq} must be a multiple of Hkv={hkv}")
    check_index("q_pos", q_pos, nq)
    check_index("k_pos", k_pos, nk)
    group = hq // hkv
    kf = k.to(torch.float32).repeat_interleave(group, dim=1)
    vf = v.to(torch.float32).repeat_interleave(group, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q.to(torch.float32), kf) * scale
    visible = k_pos[None, :] <= q_pos[:, None]
    scores = scores.masked_fill(~visible[None], float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    out = torch.einsum("hqk,khd->qhd", probs, vf)
    return out.to(q.dtype)
