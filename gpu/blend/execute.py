"""Running rows of a prompt through the layers over the fused KV: the passes of a blend.

A pass is a generator of steps (one per layer, yielding the layer's index once its work is
queued) so that ``graphs`` can capture it in pieces; ``run_steps`` runs one to its end.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from semcache.gpu.blend.fused_kv import FusedKVLoader
from semcache.gpu.model.runner import ModelRunner
from semcache.gpu.ops import dispatch as ops
from torch import Tensor

# on_layer(layer, queries, fused_k, fused_v, lse): sees every layer from the check layer on
LayerHook = Callable[[int, Tensor, Tensor, Tensor, Tensor | None], None]


class LayerAttention(Protocol):
    """A KV store of the caller's own that a blend writes every layer into and attends over
    (the vLLM connector's paged cache, ``semcache.gpu.vllm.worker``).

    ``attention(layer, k, v, q, q_pos)`` stores layer ``layer``'s K/V ``[T, Hkv, D]`` of the whole
    prompt (the store may keep only the rows it owns) and returns the attention ``[n, Hq, D]`` of
    queries ``q`` (rows at ascending positions ``q_pos``) over the keys at positions up to each
    query's own. With ``q`` None it only stores and returns None. It is called once per layer, in
    order, after the layer's K/V are final, except in the query pass (the main pass overwrites).
    """

    def __call__(self, layer: int, k: Tensor, v: Tensor, q: Tensor | None,
                 q_pos: Tensor | None) -> Tensor | None: ...  # fmt: skip


@dataclass(slots=True)
class CheckLayerInputs:
    """The check layer's inputs for the rows a pass carries: their layer input ``hidden`` and
    queries ``q``. Past layer 0, ``k``/``v`` are its fresh K/V for every token. At layer 0 they
    are None: the layer's K/V are the cached ones (exact there) with the rows' fresh
    ``k_rows``/``v_rows`` written over them."""

    hidden: Tensor
    q: Tensor
    k: Tensor | None
    v: Tensor | None
    k_rows: Tensor | None = None
    v_rows: Tensor | None = None


@dataclass(frozen=True, slots=True)
class PassContext:
    """What every pass over one prompt shares: the model, the check layer, the ops ``impl``, the
    prompt's positions and RoPE tables ``[T]``, its fused KV and an optional external store."""

    runner: ModelRunner
    check_layer: int
    impl: str
    positions: Tensor
    cos: Tensor
    sin: Tensor
    loader: FusedKVLoader
    attention: LayerAttention | None = None


def run_steps(steps: Generator[int, None, Tensor]) -> Tensor:
    """Run a pass's step generator to its end; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def from_row(x: Tensor, m: int, total: int) -> Tensor:
    """Rows ``m..total-1`` in ``x`` as a ``[total, ...]`` tensor whose first ``m`` rows are unset."""
    if not m:
        return x
    out = torch.empty((total, *x.shape[1:]), dtype=x.dtype, device=x.device)
    out[m:] = x
    return out


def layer0_rows(runner: ModelRunner, ids: Tensor, idx: Tensor, cos: Tensor, sin: Tensor,
                impl: str) -> CheckLayerInputs:  # fmt: skip
    """Check layer 0's inputs for rows ``idx``: only they are embedded and projected."""
    h = runner.embed(ids[idx])
    q, k, v = runner.qkv(0, h, cos[idx], sin[idx], impl=impl)
    return CheckLayerInputs(h, q, None, None, k, v)


def full_layers(runner: ModelRunner, hidden: Tensor, n_layers: int, positions: Tensor,
                cos: Tensor, sin: Tensor, computed: int, impl: str,
                attention: LayerAttention | None) -> tuple[Tensor, list[Tensor], list[Tensor]]:  # fmt: skip
    """Layers ``0..n_layers-1`` in full for rows ``computed..T-1`` (``hidden``): the next layer's
    input and each layer's K/V ``[T, Hkv, D]`` (rows before ``computed`` unset)."""
    m, total = computed, positions.shape[0]
    keys: list[Tensor] = []
    values: list[Tensor] = []
    for layer in range(n_layers):
        q, k, v = runner.qkv(layer, hidden, cos[m:], sin[m:], impl=impl)
        k, v = from_row(k, m, total), from_row(v, m, total)
        keys.append(k)
        values.append(v)
        attn = (runner.causal_attention(q, k, v) if attention is None
                else attention(layer, k, v, q, positions[m:]))  # fmt: skip
        hidden = runner.finish_layer(layer, hidden, attn, impl=impl)
    return hidden, keys, values


class Attend:
    """Attention of a pass's rows (at ``q_pos``) over the fused KV or the external store."""

    def __init__(self, ctx: PassContext, q_pos: Tensor) -> None:
        run = ctx.runner
        self.ctx, self.q_pos = ctx, q_pos
        group = run.num_heads // run.num_kv_heads
        self.plan: Any = (ops.plan_partial_attention(q_pos, ctx.positions, group, impl=ctx.impl)
                          if ctx.impl != "torch" and ctx.attention is None else None)  # fmt: skip

    def __call__(self, layer: int, q: Tensor, k: Tensor, v: Tensor,
                 lse: Tensor | None = None) -> Tensor:  # fmt: skip
        ctx = self.ctx
        if ctx.attention is not None:
            out = ctx.attention(layer, k, v, q, self.q_pos)
            assert out is not None
            return out
        if ctx.impl == "torch":  # the plain-PyTorch baseline: SDPA with a boolean position mask
            return ctx.runner.masked_attention(q, k, v, self.q_pos, ctx.positions)
        return ops.partial_attention(q, k, v, self.q_pos, ctx.positions, ctx.runner.scale,
                                     impl=ctx.impl, plan=self.plan, lse_out=lse)  # fmt: skip


def carry_steps(ctx: PassContext, active: Tensor, chk: CheckLayerInputs, on_layer: LayerHook,
                last_output: bool = True, with_lse: bool = False,
                ) -> Generator[int, None, Tensor]:  # fmt: skip
    """Run the ``active`` rows from the check layer to the last layer, one step per layer; returns
    their hidden states. Their fresh K/V are written into the fused cache in every later layer.

    ``on_layer`` sees each layer after its attention; ``lse`` is the rows' log2-sum-exp
    ``[n_active, Hq]`` with ``with_lse`` (Triton path, no external store), else None (always at
    the check layer). ``last_output=False`` skips the last layer's attention and MLP.
    """
    run, c = ctx.runner, ctx.check_layer
    if with_lse and ctx.attention is not None:
        raise ValueError("an external attention gives no log-sum-exp")
    attend = Attend(ctx, ctx.positions[active])
    k, v = chk.k, chk.v
    if k is None or v is None:  # check layer 0: the cached K/V with the rows' fresh ones
        assert chk.k_rows is not None and chk.v_rows is not None
        k, v = ctx.loader.layer(c)
        ops.scatter_rows(k, active, chk.k_rows, impl=ctx.impl)
        ops.scatter_rows(v, active, chk.v_rows, impl=ctx.impl)
    attn = attend(c, chk.q, k, v)
    on_layer(c, chk.q, k, v, None)
    h = run.finish_layer(c, chk.hidden, attn, impl=ctx.impl)
    yield c
    cos_a, sin_a = ctx.cos[active], ctx.sin[active]
    lse = (torch.empty((active.shape[0], run.num_heads), dtype=torch.float32,
                       device=active.device) if with_lse else None)  # fmt: skip
    for layer in range(c + 1, run.num_layers):
        q1, k1, v1 = run.qkv(layer, h, cos_a, sin_a, impl=ctx.impl)
        fused_k, fused_v = ctx.loader.layer(layer)
        ops.scatter_rows(fused_k, active, k1, impl=ctx.impl)
        ops.scatter_rows(fused_v, active, v1, impl=ctx.impl)
        if last_output or layer + 1 < run.num_layers:
            attn = attend(layer, q1, fused_k, fused_v, lse)
            on_layer(layer, q1, fused_k, fused_v, lse)
            h = run.finish_layer(layer, h, attn, impl=ctx.impl)
        else:  # nothing reads the last layer's output: its K/V are stored, no more
            if ctx.attention is not None:
                ctx.attention(layer, fused_k, fused_v, None, None)
            on_layer(layer, q1, fused_k, fused_v, None)
        yield layer
    return h


def carry(ctx: PassContext, active: Tensor, chk: CheckLayerInputs, on_layer: LayerHook,
          last_output: bool = True) -> Tensor:  # fmt: skip
    """``carry_steps`` run to its end: the ``active`` rows' hidden states after the last layer."""
    return run_steps(carry_steps(ctx, active, chk, on_layer, last_output))
