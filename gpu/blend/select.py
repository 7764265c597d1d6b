"""Which chunk tokens a blend recomputes: each strategy returns a score ``[T]`` per token, and
``choose`` takes the highest (``docs/design/gpu_blend.md`` compares the strategies).

- ``query_mass``: the attention the question tokens pay to each chunk token over the layers after
  the check layer, in a pass that carries only the non-chunk tokens over the reused KV;
- ``deviation``: how far fresh K/V at the check layer lie from the cached ones (CacheBlend);
- ``first_tokens``: each chunk's first tokens (no question and nothing to compare at layer 0).
"""

from __future__ import annotations

from collections.abc import Generator

import torch
from semcache.gpu.blend.execute import (
    CheckLayerInputs,
    PassContext,
    carry_steps,
    layer0_rows,
    run_steps,
)
from semcache.gpu.ops import dispatch as ops
from torch import Tensor


def query_mass_steps(ctx: PassContext, chk: CheckLayerInputs, act: Tensor,
                     qp: Tensor) -> Generator[int, None, Tensor]:  # fmt: skip
    """The query pass one layer at a time; returns the attention mass ``[T]`` on every token.

    The non-chunk rows ``act`` are carried over the reused chunk KV (their fresh K/V go into the
    fused cache; the main pass overwrites those rows again). The question tokens are the last
    ``len(qp)`` rows of ``act`` at positions ``qp`` (a row below every key adds no mass).
    """
    run = ctx.runner
    n_query = qp.shape[0]
    mass = torch.zeros(ctx.positions.shape[0], dtype=torch.float32, device=ctx.positions.device)
    bias = None  # the reference's mask bias, the same for every layer
    kernels = ops.uses_triton(ctx.impl, mass)
    if not kernels:
        bias = ops.visibility_bias(qp, ctx.positions, run.num_heads // run.num_kv_heads)

    def add_mass(layer: int, q1: Tensor, fused_k: Tensor, _fused_v: Tensor,
                 lse: Tensor | None) -> None:  # fmt: skip
        if layer == ctx.check_layer:  # the mass is summed over the layers after it
            return
        mass.add_(ops.attention_mass(q1[-n_query:], fused_k, qp, ctx.positions, run.scale, bias,
                                     impl=ctx.impl,
                                     lse=None if lse is None else lse[-n_query:]))  # fmt: skip

    # on the Triton path each layer's attention also returns its rows' log-sum-exp, which the
    # mass of the same layer reuses (the last layer runs no attention and computes its own)
    yield from carry_steps(ctx, act, chk, add_mass, last_output=False,
                           with_lse=kernels and ctx.attention is None)  # fmt: skip
    return mass


def query_pass_steps(ctx: PassContext, chk: CheckLayerInputs | None, ids: Tensor, act: Tensor,
                     qp: Tensor) -> Generator[int, None, Tensor]:  # fmt: skip
    """``query_mass_steps`` where ``chk`` None means check layer 0: the rows' inputs are then
    computed from the token ``ids`` inside the first step (what ``graphs`` captures)."""
    if chk is None:
        chk = layer0_rows(ctx.runner, ids, act, ctx.cos, ctx.sin, ctx.impl)
    return (yield from query_mass_steps(ctx, chk, act, qp))


def query_mass(ctx: PassContext, chk: CheckLayerInputs, act: Tensor, qp: Tensor) -> Tensor:
    """``query_mass_steps`` run to its end."""
    return run_steps(query_mass_steps(ctx, chk, act, qp))


def deviation(cached_k: Tensor, cached_v: Tensor, k: Tensor, v: Tensor, is_chunk: Tensor,
              n_chunk: int, score: str, impl: str) -> Tensor:  # fmt: skip
    """Per-token deviation score ``[T]`` (0 outside chunks); K and V each normalised by their mean."""
    parts = []
    if "k" in score:
        parts.append(ops.token_deviation(cached_k, k, impl=impl))
    if "v" in score:
        parts.append(ops.token_deviation(cached_v, v, impl=impl))
    total = torch.zeros_like(parts[0])
    for d in parts:
        d = torch.where(is_chunk, d, torch.zeros_like(d))
        total += d / (d.sum() / n_chunk).clamp_min(1e-12) if n_chunk else d
    return total


def first_tokens(chunk_rows: list[tuple[int, int]], total: int, device: torch.device) -> Tensor:
    """Scores that rank each chunk's tokens by their place in it, first tokens highest."""
    scores = torch.zeros(total, dtype=torch.float32, device=device)
    for a, b in chunk_rows:
        scores[a:b] = -torch.arange(b - a, dtype=torch.float32, device=device)
    return scores


def choose(scores: Tensor, is_chunk: Tensor, forced: Tensor, last_is_chunk: bool, n_select: int,
           impl: str) -> Tensor:  # fmt: skip
    """Ascending indices of the ``n_select`` chunk tokens to recompute: forced (boundary) tokens
    first, the last prompt token before them when it is a chunk token, then by ``scores``."""
    # host-known sizes, no device sync
    scores = torch.where(forced, torch.full_like(scores, 1e38), scores)
    scores = torch.where(is_chunk, scores, torch.full_like(scores, float("-inf")))
    if last_is_chunk:
        scores[-1] = float("inf")
    return ops.select_topk(scores, n_select, impl=impl)
