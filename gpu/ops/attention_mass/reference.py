"""The attention mass keys receive from a few queries, in pure torch."""

from __future__ import annotations

import torch
from semcache.gpu.ops.checks import check_kv
from torch import Tensor


def visibility_bias(q_pos: Tensor, k_pos: Tensor, group: int) -> Tensor:
    """``[Nq * group, Nk]`` fp32: 0 where ``k_pos <= q_pos``, else -inf (rows repeat per head)."""
    visible = (k_pos[None, :] <= q_pos[:, None]).repeat_interleave(group, dim=0)
    zero = torch.zeros((), dtype=torch.float32, device=q_pos.device)
    return torch.where(visible, zero, torch.full_like(zero, float("-inf")))


def attention_mass_ref(q: Tensor, k: Tensor, q_pos: Tensor, k_pos: Tensor, scale: float,
                       bias: Tensor | None = None) -> Tensor:  # fmt: skip
    """Attention each key receives from queries ``q [Nq, Hq, D]``: ``[Nk]`` fp32.

    The softmax of every (query, head) row over the keys it may see (``k_pos <= q_pos``), summed
    over queries and heads; the result sums to ``Nq * Hq``. Query head ``h`` reads KV head
    ``h // (Hq // Hkv)``. The logits are a matmul in the inputs' dtype, then fp32. ``bias``
    (``visibility_bias``, the same for every layer of a request) may be passed in precomputed.
    """
    check_kv("q", q)
    check_kv("k", k)
    n, hq, d = q.shape
    hkv = k.shape[1]
    if hq % hkv or k.shape[2] != d:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} heads do not match")
    if bias is None:
        bias = visibility_bias(q_pos, k_pos, hq // hkv)
    return grouped_probs(q, k, scale, bias).sum(dim=(0, 1))


def grouped_probs(q: Tensor, k: Tensor, scale: float, bias: Tensor) -> Tensor:
    """Softmax ``[Hkv, Nq * group, Nk]`` fp32 of ``q [Nq, Hq, D]`` over ``k [Nk, Hkv, D]``.

    The query heads that share a KV head are the rows of one matrix (row ``i * group + j`` is
    query ``i``, head ``kvh * group + j``), so each KV head is one ``bmm`` in the inputs' dtype.
    ``bias`` is ``visibility_bias``; a row that sees no key gets zeros.
    """
    n, hq, d = q.shape
    hkv = k.shape[1]
    g = hq // hkv
    qg = q.reshape(n, hkv, g, d).permute(1, 0, 2, 3).reshape(hkv, n * g, d)
    scores = torch.bmm(qg, k.permute(1, 2, 0)).float()  # a new tensor: updated in place
    return scores.mul_(scale).add_(bias).softmax(dim=-1).nan_to_num_(0.0)
