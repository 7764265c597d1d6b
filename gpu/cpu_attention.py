"""Partial attention without Triton (CPU): GQA-grouped batched matmuls over a precomputed bias.

The reference (``reference.partial_attention_ref``) expands K/V to every query head and runs the
whole problem in fp32; SDPA with a boolean mask (``ModelRunner.masked_attention``) builds its
mask per call. For the blend on a CPU, where queries are a few hundred selected tokens and the
same positions serve every layer, both spend most of their time outside the arithmetic. Here:

- the query heads that share a KV head are stacked as rows of one matrix, so each KV head is one
  ``bmm`` against its keys, with no copy of K or V per query head (``reference.grouped_probs``,
  which the attention-mass reference uses too);
- the logits are computed in the inputs' dtype (fp32 accumulation) and the softmax in fp32; the
  probabilities go back to the inputs' dtype for the product with V, as the Triton kernel does;
- the mask is an additive bias ``[Nq * group, Nk]`` built once per request
  (:func:`plan_grouped_attention`), shared by every layer.

Measured in the blend on SmolLM2-135M in bf16, one thread, a 600-token prompt with 4 reused
chunks, deviation selection at r = 0.15 (quiet machine): attention took about 15 ms of CPU time
against 90 ms for masked SDPA, and the blend 187 ms against 226 ms (medians of 5, two runs
each). An isolated call of one layer's shape (130 queries, 600 keys) was no faster than masked
SDPA; the gain is in the blend's mix of shapes and layers. ``docs/vllm.md`` has what it did to
the connector's TTFT.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from semcache.gpu import reference
from torch import Tensor


@dataclass(frozen=True, slots=True)
class GroupedPlan:
    """The additive mask of one (q_pos, k_pos) pair for a given GQA group size."""

    bias: Tensor  # [Nq * group, Nk] fp32: 0 where visible, else -inf
    group: int


def plan_grouped_attention(q_pos: Tensor, k_pos: Tensor, group: int) -> GroupedPlan:
    return GroupedPlan(reference.visibility_bias(q_pos, k_pos, group), group)


def grouped_attention(q: Tensor, k: Tensor, v: Tensor, scale: float, plan: GroupedPlan) -> Tensor:
    """``q [Nq, Hq, D]`` over ``k, v [Nk, Hkv, D]`` with ``plan``'s mask: ``[Nq, Hq, D]``.

    A query that sees no key gets zeros (as in the reference).
    """
    nq, hq, d = q.shape
    nk, hkv, _ = k.shape
    g = hq // hkv
    if g != plan.group or plan.bias.shape != (nq * g, nk):
        raise ValueError(f"plan is for other positions or heads: bias {tuple(plan.bias.shape)}, "
                         f"need ({nq * g}, {nk})")  # fmt: skip
    probs = reference.grouped_probs(q, k, scale, plan.bias).to(v.dtype)
    out = torch.bmm(probs, v.permute(1, 0, 2))  # [Hkv, Nq * g, D]
    return out.view(hkv, nq, g, d).permute(1, 0, 2, 3).reshape(nq, hq, d).to(q.dtype)
