"""``Blender``: a prefill that reuses cached chunk KV and recomputes a share of chunk tokens.

A prompt goes through three stages (``docs/design/gpu_blend.md``): ``plan`` (host bookkeeping:
rows, flags, how many tokens to recompute), ``select`` (a score per chunk token, the highest are
recomputed) and ``execute`` (the chosen rows and the non-chunk rows carried through the layers
over the fused KV, which ``fused_kv`` fills with the cached chunk KV re-rotated to its new rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from semcache.gpu.blend import select
from semcache.gpu.blend.config import BlendConfig
from semcache.gpu.blend.encoder import ChunkEncoder
from semcache.gpu.blend.execute import (
    CheckLayerInputs,
    LayerAttention,
    PassContext,
    carry,
    from_row,
    full_layers,
    layer0_rows,
)
from semcache.gpu.blend.fused_kv import FusedKVLoader
from semcache.gpu.blend.graphs import QueryPassGraphs
from semcache.gpu.blend.plan import BlendPlan, plan_blend
from semcache.gpu.chunks.ids import ChunkRegistry, Segment, chunk_id
from semcache.gpu.chunks.store import ChunkKV, ChunkKVStore
from semcache.gpu.model.runner import KVCache, ModelRunner, as_ids
from torch import Tensor


@dataclass(frozen=True, slots=True)
class BlendStats:
    num_tokens: int
    chunk_tokens: int
    recomputed_chunk_tokens: int
    reused_chunks: int
    encoded_chunks: int

    @property
    def effective_ratio(self) -> float:
        return self.recomputed_chunk_tokens / self.chunk_tokens if self.chunk_tokens else 0.0


@dataclass(slots=True)
class BlendResult:
    logits: Tensor | None  # [V] float32: next-token logits after the prompt (None: not asked for)
    kv: KVCache  # fused KV of the whole prompt, ready for decoding with ModelRunner
    stats: BlendStats


@dataclass(slots=True)
class PromptTensors:
    """A plan's device side: the chunk records and the per-row tensors the passes read."""

    records: list[ChunkKV]
    reused: int  # records that came from the store
    ids: Tensor  # [T] token ids
    is_chunk: Tensor  # [T] bool
    forced: Tensor  # [T] bool
    plain: Tensor  # [n] int64: the non-chunk rows (from ``computed`` on)
    delta: Tensor  # [T] int64: new position - stored position


@dataclass(slots=True)
class CheckLayer:
    """The check layer of one prompt. Past layer 0, its input ``hidden`` and queries ``q`` of
    the rows from ``computed`` on and its K/V ``[T]`` are computed for every row; at layer 0
    ``rows`` embeds and projects only the rows asked for."""

    runner: ModelRunner
    impl: str
    ids: Tensor
    cos: Tensor
    sin: Tensor
    computed: int = 0
    hidden: Tensor | None = None
    q: Tensor | None = None
    k: Tensor | None = None
    v: Tensor | None = None

    def rows(self, idx: Tensor) -> CheckLayerInputs:
        if self.hidden is None:
            return layer0_rows(self.runner, self.ids, idx, self.cos, self.sin, self.impl)
        assert self.q is not None and self.k is not None and self.v is not None
        rel = idx - self.computed if self.computed else idx  # every row of ``idx`` is past it
        return CheckLayerInputs(self.hidden[rel], self.q[rel], self.k, self.v)


class Blender:
    """Chunk-reusing prefill over a ``ModelRunner``, with a chunk KV store and registry."""

    def __init__(self, runner: ModelRunner, store: ChunkKVStore | None = None,
                 registry: ChunkRegistry | None = None, anchor_ids: Sequence[int] = (),
                 config: BlendConfig | None = None, cuda_graphs: bool = True) -> None:  # fmt: skip
        self.runner = runner
        self.store = store if store is not None else ChunkKVStore()
        self.registry = registry if registry is not None else ChunkRegistry()
        self.encoder = ChunkEncoder(runner, anchor_ids)
        self.config = config if config is not None else BlendConfig()
        # the query pass is launch-bound on CUDA: replayed as graphs there
        self.graphs = (QueryPassGraphs(runner, select.query_pass_steps)
                       if cuda_graphs and runner.device.type == "cuda" else None)  # fmt: skip

    def chunk_kv(self, segment: Segment) -> tuple[ChunkKV, bool]:
        """Stored KV of a chunk segment, computed and stored on a miss; and whether it was a hit.

        On a miss the segment's id is checked against its tokens before anything is stored under
        it (a hit needs no hash: its tokens equal those of the record stored under the id).
        """
        assert segment.chunk_id is not None
        record = self.store.get(segment.chunk_id)
        if record is not None and record.token_ids == segment.token_ids:
            return record, True
        if segment.chunk_id != chunk_id(segment.token_ids):
            raise ValueError(f"segment chunk_id {segment.chunk_id} does not match its token ids")
        record = self.encoder.encode(segment.token_ids)
        self.store.put(segment.chunk_id, record)
        return record, False

    def prefill_tokens(self, token_ids: Sequence[int], config: BlendConfig | None = None) -> BlendResult:
        """Blend prefill of a plain token sequence: registered chunks are detected automatically."""
        return self.prefill(self.registry.segments(token_ids), config)

    @torch.inference_mode()
    def prefill(self, segments: Sequence[Segment], config: BlendConfig | None = None, *,
                logits: bool = True, attention: LayerAttention | None = None,
                computed: int = 0) -> BlendResult:  # fmt: skip
        """Blend prefill of ``segments`` (positions ``0..T-1`` in order): plan, select, execute.

        ``logits=False``: only the KV (the last layer's attention and MLP and the LM head are
        skipped). ``attention``: every layer's K/V go to this store and queries attend there
        (``LayerAttention``); the fused tensors are still returned. ``computed``: the store
        already holds positions ``0 .. computed-1`` (a prefix-cache hit); no row before it is
        computed or selected, ``ratio`` counts the chunk tokens from it on.
        """
        cfg = config if config is not None else self.config
        run = self.runner
        plan = plan_blend(segments, cfg, run.num_layers, computed, attention is not None)
        run.check_length(plan.total - 1)
        positions, cos, sin = run.position_tables(0, plan.total)
        check, keys, values = self._full_layers(plan, cfg, positions, cos, sin, attention)
        prompt = self._tensors(plan, list(segments), positions, check)
        check.ids = prompt.ids
        graphs = self.graphs if plan.by_query and attention is None else None
        if graphs is not None and not graphs.usable(cfg):
            graphs = None
        loader = None if graphs is not None else FusedKVLoader(
            run, prompt.records, plan.chunk_rows, plan.total, prompt.delta, cfg.impl, plan.first)
        if cfg.layer > 0:
            self._project_check_layer(check, plan, cfg)
        ctx = PassContext(run, cfg.layer, cfg.impl, positions, cos, sin, loader,  # type: ignore[arg-type]
                          attention)
        scores, ctx = self._scores(plan, prompt, check, ctx, graphs, cfg)
        selected = select.choose(scores, prompt.is_chunk, prompt.forced, plan.last_is_chunk,
                                 plan.n_select, cfg.impl)  # fmt: skip
        active = torch.sort(torch.cat([prompt.plain, selected])).values

        def keep(_layer: int, _q: Tensor, fused_k: Tensor, fused_v: Tensor,
                 _lse: Tensor | None) -> None:  # fmt: skip
            keys.append(fused_k)
            values.append(fused_v)

        out = carry(ctx, active, check.rows(active), keep, last_output=logits)
        stats = BlendStats(plan.total, plan.n_chunk, plan.n_select, prompt.reused,
                           len(prompt.records) - prompt.reused)  # fmt: skip
        kv = KVCache(keys, values, positions)
        if graphs is not None:  # its chunk layers are views of the graph bucket's buffers
            graphs.lend(kv)
        return BlendResult(run.logits(out[-1:])[0] if logits else None, kv, stats)

    def _full_layers(self, plan: BlendPlan, cfg: BlendConfig, positions: Tensor, cos: Tensor,
                     sin: Tensor, attention: LayerAttention | None,
                     ) -> tuple[CheckLayer, list[Tensor], list[Tensor]]:  # fmt: skip
        """Layers before the check layer, in full (they need no chunk data, so the GPU runs them
        while the host looks the chunks up). At check layer 0 nothing runs and the ids go to the
        device with the bookkeeping, in its one copy."""
        run, c, m = self.runner, cfg.layer, plan.computed
        check = CheckLayer(run, cfg.impl, torch.empty(0), cos, sin, m)
        if c == 0:
            return check, [], []
        check.ids = as_ids(torch.from_numpy(plan.token_ids), run.device)
        hidden, keys, values = full_layers(run, run.embed(check.ids[m:]), c, positions, cos, sin, m,
                                           cfg.impl, attention)  # fmt: skip
        check.hidden = hidden
        return check, keys, values

    def _project_check_layer(self, check: CheckLayer, plan: BlendPlan, cfg: BlendConfig) -> None:
        """Past layer 0: the check layer's fresh Q/K/V for every row from ``computed`` on."""
        m, total = plan.computed, plan.total
        assert check.hidden is not None
        q, k, v = self.runner.qkv(cfg.layer, check.hidden, check.cos[m:], check.sin[m:],
                                  impl=cfg.impl)  # fmt: skip
        check.q, check.k, check.v = q, from_row(k, m, total), from_row(v, m, total)

    def _tensors(self, plan: BlendPlan, segments: list[Segment], positions: Tensor,
                 check: CheckLayer) -> PromptTensors:  # fmt: skip
        """The chunk records (looked up, or encoded on a miss) and the plan's per-row arrays,
        sent to the device in one copy (slice updates there would cost a launch each)."""
        dev, total = self.runner.device, plan.total
        records: list[ChunkKV] = []
        stored: list[Tensor] = []
        reused = 0
        for s, (a, b) in zip(segments, plan.segment_rows, strict=True):
            if s.chunk_id is not None:
                rec, hit = self.chunk_kv(s)
                records.append(rec)
                stored.append(rec.positions.to(dev, non_blocking=True))
                reused += hit
            else:
                stored.append(positions[a:b])
        with_ids = check.hidden is None  # check layer 0: the ids travel here
        parts = ((plan.flags.ravel(), plan.token_ids, plan.plain_rows) if with_ids
                 else (plan.flags.ravel(), plan.plain_rows))  # fmt: skip
        packed = torch.from_numpy(np.concatenate(parts)).to(dev)
        ids = packed[2 * total:3 * total] if with_ids else check.ids
        plain = packed[len(packed) - len(plan.plain_rows):]  # ascending: segments are in order
        delta = positions - torch.cat(stored)
        return PromptTensors(records, reused, ids, packed[:total].bool(),
                             packed[total:2 * total].bool(), plain, delta)  # fmt: skip

    def _scores(self, plan: BlendPlan, prompt: PromptTensors, check: CheckLayer, ctx: PassContext,
                graphs: QueryPassGraphs | None, cfg: BlendConfig,
                ) -> tuple[Tensor, PassContext]:  # fmt: skip
        """Every token's score by the plan's strategy, and the context for the main pass (a graph
        replay hands over its own copy of the fused KV)."""
        c = cfg.layer
        if plan.by_query:
            act = prompt.plain
            qp = act[-plan.n_query:]  # the question rows; a row's index is its position
            if graphs is None:
                return select.query_mass(ctx, check.rows(act), act, qp), ctx
            # at check layer 0 the graph computes the rows' layer-0 inputs from the ids
            chk = check.rows(act) if c > 0 else None
            scores, loader = graphs.mass(chk, prompt.ids, act, qp, ctx.positions, ctx.cos, ctx.sin,
                                         prompt.records, plan.chunk_rows, prompt.delta,
                                         plan.first, cfg)  # fmt: skip
            return scores, PassContext(ctx.runner, c, cfg.impl, ctx.positions, ctx.cos, ctx.sin,
                                       loader, ctx.attention)  # fmt: skip
        if c == 0:  # no question to read and no deviation at layer 0: each chunk's first tokens
            return select.first_tokens(plan.chunk_rows, plan.total, ctx.positions.device), ctx
        cached_k, cached_v = ctx.loader.layer(c)
        assert check.k is not None and check.v is not None
        return select.deviation(cached_k, cached_v, check.k, check.v, prompt.is_chunk,
                                plan.n_chunk, cfg.score, cfg.impl), ctx  # fmt: skip

