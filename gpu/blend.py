"""Prefill with chunk KV reuse and selective recompute (the blend pipeline).

Chunk KV (``ChunkEncoder``): each chunk is prefilled once on its own, after a fixed *anchor*
prefix (``semcache.gpu.anchor``: the engine uses a system turn and a neutral passage; without
one, nothing), and only the chunk's rows are stored with the positions they were computed at
(``len(anchor) .. len(anchor)+L-1``). The anchor gives the chunk a proper attention sink and a
preceding context, so its first tokens do not turn into sinks themselves, which is the largest
single source of deviation when a chunk is computed truly alone.

Request (``Blender.prefill``), for segments ``[prefix][chunk 1]...[chunk N][suffix]`` at
positions ``0..T-1``:

1. Cached chunk KV is placed at the chunk's new rows and its keys are re-rotated by
   ``new_pos - stored_pos`` (``ops.rerotate_k``), layer by layer, just before the layer needs it.
   On CUDA the copies run on a side stream a few layers ahead of compute, so loads from pinned
   host memory overlap with compute.
2. Layers ``0 .. check_layer-1`` run in full for every token. ``check_layer`` defaults to 0 for
   query selection: layer-0 K/V depend only on the token and its position, so the cached ones
   are exact there and no layer has to run in full. Deviation selection needs a layer whose K/V
   have context, and defaults to 1.
3. At a ``check_layer`` past 0, Q/K/V are computed for every token (its fresh K/V are kept for
   every row). At check layer 0 no row needs that: the layer's K/V are the cached ones with the
   fresh rows of the tokens a pass carries written over them, and only those rows are embedded
   and projected (``CheckLayerInputs``). ``round(ratio * chunk_tokens)`` chunk tokens are
   chosen (``ops.select_topk``) by one of two scores (``select``); the first
   ``boundary_tokens`` of every chunk go first (their score is +inf), so they count toward r.

   - ``"query"`` (default): a *query pass* runs only the non-chunk tokens through the remaining
     layers over the reused KV (chunk tokens untouched, exactly what r = 0 computes) and sums the
     attention the question tokens (the non-chunk tokens after the last chunk) pay to each chunk
     token over those layers (``ops.attention_mass``; on the Triton path it reuses the softmax
     normaliser each layer's attention already computed). The chunk tokens the question reads
     most are recomputed. The pass computes non-chunk tokens only, so it costs no chunk recompute.
     On CUDA it is replayed as a CUDA graph per bucket of shapes (``semcache.gpu.query_graph``):
     its tens of rows make it launch-bound otherwise. With no question tokens and
     ``check_layer=0``, each chunk's first tokens are recomputed instead.
   - ``"deviation"``: CacheBlend's score, the deviation of fresh from cached K and V at the check
     layer (``ops.token_deviation``; each normalised by its mean over chunk tokens, then summed).
4. From ``check_layer`` on, only the *active* tokens (non-chunk tokens, selected chunk tokens,
   and the last prompt token) are carried: their queries attend to the fused KV with the exact
   causal mask by true positions (``ops.partial_attention``) and their fresh K/V are written
   into the fused cache (``ops.scatter_rows``).

``ratio`` is therefore exactly the fraction of chunk tokens recomputed in layers after the check
layer (the last prompt token is added if it is a chunk token and is counted in the stats). With
``ratio=1`` every token is active, which reproduces a full prefill through this same code path.

Design choices, measured with SmolLM2-135M (teacher-forced agreement / KL at r = 0.15;
``benchmarks/chunk_quality.py`` holds the full 200-prompt run). On 20 development prompts, every
variant of the deviation score landed within noise of plain CacheBlend (no anchor, V deviation:
0.905 / 0.034): K+V 0.900 / 0.038, K only 0.897 / 0.041, one or two boundary tokens per chunk
0.900-0.908, check layer 2 0.898 / 0.037. On 40 other development prompts (seed 1), even an
*oracle* deviation score (the true deviation from full prefill, summed over all layers) reached
only 0.909 / 0.038 against 0.903 / 0.043 for K+V and 0.880 / 0.070 for random selection: the
deviation is spread over many tokens, and which 15 % are fixed matters less than whether they are
the ones the answer depends on. Query-driven selection reached 0.918 / 0.032 there, and with the
context anchor (``semcache.gpu.anchor``) 0.939 / 0.021 on 16 prompts, where K+V deviation with
the same anchor stayed at 0.902 / 0.036. Check layer 0 instead of 1 gave 0.927 / 0.031 against
0.927 / 0.030 on 30 of those prompts, for one full layer less. Attention mass from the last
layers only (15-29) or from the last 8 question tokens only gave the same within noise; from
layers 2-11 only it was worse
(0.928 / 0.030), so the query pass runs every layer. On the 200 reported prompts (fp32) the
default design gives 0.927 / 0.023 (check layer 1: 0.928 / 0.022), and 0.948 / 0.013 with a
documentation-genre anchor, against 0.901 / 0.041 for the BOS anchor with K+V deviation. The
query pass runs every layer once more for the non-chunk tokens, which costs TTFT on a GPU
(``gpu/KERNELS_NOTES.md``). A training-free correction of the reused keys' attention (a logit
bias of ±0.25 or ±0.5 on chunk keys that are not recomputed, or a temperature of 0.9 or 1.1 on
their logits, in the main pass, the query pass or both) helped nowhere on 30 seed-1 prompts:
every main-pass variant raised KL (0.0311 at no correction;
``benchmarks/results/chunk_quality_dev_reused_key_bias/``), so the error sits in the reused K/V
themselves, not in how much attention they draw. Weighting each layer's attention mass by a
per-token deviation score did not change the choice enough to matter: on 40 seed-1 prompts even
the oracle deviation from full prefill gave 0.930 / 0.022 against 0.927 / 0.028
(``benchmarks/results/chunk_quality_dev_weighted_selection/``). Adding the recomputed tokens'
change in V (scaled by 0.25-0.5, per chunk or by distance) to the chunk's other rows gained at
most +0.006 / -0.0009 on 40 and 60 development prompts, and the same on keys lost 0.023
(``chunk_quality_dev_value_correction/``); it is not applied. Gradual narrowing over several
layers is not offered: every token recomputed after the check layer counts toward r, so
narrowing a larger first selection costs the ratio of that larger set.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Protocol

import numpy as np
import torch
from semcache.gpu import ops
from semcache.gpu.anchor import ANCHOR_VERSION
from semcache.gpu.chunk_kv import ChunkKV, ChunkKVStore
from semcache.gpu.chunks import ChunkRegistry, Segment, chunk_id
from semcache.gpu.fused_kv import FusedKVLoader
from semcache.gpu.query_graph import QueryPassGraphs
from semcache.gpu.runner import KVCache, ModelRunner, as_ids
from torch import Tensor

IMPLS = ("auto", "torch", "triton")
SCORES = ("k", "v", "kv")
SELECTS = ("query", "deviation")


@dataclass(frozen=True, slots=True)
class BlendConfig:
    """Selective-recompute settings; see the module docstring for the exact accounting."""

    ratio: float = 0.15
    check_layer: int | None = None  # None: 0 for select="query", 1 for "deviation"
    select: str = "query"
    score: str = "kv"  # the deviation score (select="deviation", or no question tokens)
    boundary_tokens: int = 0
    impl: str = "auto"

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"ratio must be in [0, 1], got {self.ratio}")
        if self.select not in SELECTS:
            raise ValueError(f"select must be one of {SELECTS}, got {self.select!r}")
        if self.check_layer is None:
            object.__setattr__(self, "check_layer", default_check_layer(self.select))
        if self.check_layer < 0:
            raise ValueError(f"check_layer must be >= 0, got {self.check_layer}")
        if self.check_layer == 0 and self.select == "deviation":
            raise ValueError("select='deviation' needs check_layer >= 1: layer-0 K/V have no "
                             "context, so cached and fresh K/V are equal there")
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {self.score!r}")
        if self.boundary_tokens < 0:
            raise ValueError(f"boundary_tokens must be >= 0, got {self.boundary_tokens}")
        if self.impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {self.impl!r}")


def default_check_layer(select: str) -> int:
    """0 for query selection (layer-0 K/V are context-free, so cached ones are exact), else 1."""
    return 0 if select == "query" else 1


def blend_design(check_layer: int, select: str, score: str, boundary_tokens: int,
                 anchor: str = ANCHOR_VERSION) -> dict[str, object]:  # fmt: skip
    """The settings a quality gate is calibrated for (``anchor``: ``anchor.anchor_version``)."""
    return {"check_layer": check_layer, "select": select, "score": score,
            "boundary_tokens": boundary_tokens, "anchor": anchor}


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


class LayerAttention(Protocol):
    """A KV store of the caller's own that a blend writes every layer into and attends over
    (the vLLM connector's paged cache, ``semcache.gpu.vllm.worker``).

    ``attention(layer, k, v, q, q_pos)`` stores layer ``layer``'s K/V ``[T, Hkv, D]`` of the whole
    prompt (positions ``0..T-1``; the store may keep only the rows it owns) and returns the
    attention ``[n, Hq, D]`` of queries ``q`` (rows at ascending positions ``q_pos``) over the
    keys at positions up to each query's own. With ``q`` None it only stores (a layer no query
    reads) and returns None. It is called once per layer, in order, after the layer's K/V are
    final, except in the query pass, which the main pass then overwrites.
    """

    def __call__(self, layer: int, k: Tensor, v: Tensor, q: Tensor | None,
                 q_pos: Tensor | None) -> Tensor | None: ...  # fmt: skip


class ChunkEncoder:
    """Computes a chunk's KV in isolation after a fixed anchor prefix (see module docstring)."""

    def __init__(self, runner: ModelRunner, anchor_ids: Sequence[int] = ()) -> None:
        self.runner = runner
        self.anchor_ids = tuple(int(t) for t in anchor_ids)
        self._anchor_kv: KVCache | None = None

    def encode(self, token_ids: Sequence[int]) -> ChunkKV:
        tokens = tuple(int(t) for t in token_ids)
        a = len(self.anchor_ids)
        if not a:
            _, kv = self.runner.prefill(tokens)
        else:  # the anchor's KV is computed once; each chunk extends a shallow copy of it
            if self._anchor_kv is None:
                _, self._anchor_kv = self.runner.prefill(self.anchor_ids)
            base = self._anchor_kv
            kv = KVCache(list(base.keys), list(base.values), base.positions)
            self.runner.extend(tokens, kv)
        return ChunkKV(
            tokens, kv.positions[a:].clone(),
            torch.stack([k[a:] for k in kv.keys]), torch.stack([v[a:] for v in kv.values]),
        )


class Blender:
    """Chunk-reusing prefill over a ``ModelRunner``, with a chunk KV store and registry."""

    def __init__(self, runner: ModelRunner, store: ChunkKVStore | None = None,
                 registry: ChunkRegistry | None = None, anchor_ids: Sequence[int] = (),
                 config: BlendConfig | None = None, cuda_graphs: bool = True) -> None:
        self.runner = runner
        self.store = store if store is not None else ChunkKVStore()
        self.registry = registry if registry is not None else ChunkRegistry()
        self.encoder = ChunkEncoder(runner, anchor_ids)
        self.config = config if config is not None else BlendConfig()
        # CUDA graphs of the query pass (semcache.gpu.query_graph): on CUDA it is launch-bound
        self.graphs = QueryPassGraphs(self) if cuda_graphs and runner.device.type == "cuda" else None

    def chunk_kv(self, segment: Segment) -> tuple[ChunkKV, bool]:
        """Stored KV of a chunk segment (token-checked), computing and storing it on a miss.

        Returns the record and whether it came from the store. The segment's id is checked
        against its tokens on a miss, before anything is stored under it (a hit needs no hash:
        its tokens equal those of the record stored under the id).
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
        """Blend prefill of ``segments`` (positions ``0..T-1`` in order). See module docstring.

        With ``logits=False`` only the KV is produced (for a caller that computes the rest of the
        prompt itself): the last layer's attention and MLP and the LM head are skipped.
        ``attention``: every layer's K/V go to this store and queries attend there
        (``LayerAttention``) instead of over the fused tensors (which are still returned).
        ``computed``: the store already holds the KV of positions ``0 .. computed-1`` (a serving
        engine's prefix-cache hit); no row before it is computed or selected, ``ratio`` counts
        the chunk tokens from it on, and the returned KV's rows before it are unset.
        """
        cfg = config if config is not None else self.config
        run = self.runner
        if cfg.check_layer >= run.num_layers:
            raise ValueError(f"check_layer {cfg.check_layer} >= num_layers {run.num_layers}")
        segs = [_checked(s) for s in segments]
        if not segs:
            raise ValueError("no segments to prefill")
        dev = run.device
        ids_np = np.fromiter(chain.from_iterable(s.token_ids for s in segs), dtype=np.int64)
        total = int(ids_np.shape[0])
        run.check_length(total - 1)
        m = computed
        if not 0 <= m < total:
            raise ValueError(f"computed must be in [0, {total}), got {m}")
        if m and attention is None:
            raise ValueError("computed > 0 needs an attention store that holds those rows")
        if m and cfg.select == "query":  # its attention mass reads the fused KV of every row
            raise ValueError("computed > 0 works with select='deviation' only")
        positions, cos, sin = run.position_tables(0, total)
        # layers before the check layer need no chunk data: launched first, the GPU runs them
        # while the host does the chunk bookkeeping below. With check layer 0 no row needs a
        # full layer: layer-0 K/V of chunk rows are the cached ones, and only the rows carried
        # later are embedded (``CheckLayerInputs``)
        c = cfg.check_layer
        # at check layer 0 the ids go with the bookkeeping below, in its one copy
        ids = as_ids(torch.from_numpy(ids_np), dev) if c > 0 else None
        # rows from ``m`` on: the full layers compute them only
        hidden = run.embed(ids[m:]) if ids is not None else None
        keys: list[Tensor] = []
        values: list[Tensor] = []
        for layer in range(c):
            q, k, v = run.qkv(layer, hidden, cos[m:], sin[m:], impl=cfg.impl)
            k, v = _from_row(k, m, total), _from_row(v, m, total)
            keys.append(k)
            values.append(v)
            attn = (run.causal_attention(q, k, v) if attention is None
                    else attention(layer, k, v, q, positions[m:]))  # fmt: skip
            hidden = run.finish_layer(layer, hidden, attn, impl=cfg.impl)

        # the bookkeeping is built on the host and sent in one copy: per-chunk slice updates on
        # the device cost a launch each, and with check layer 0 the GPU has nothing else to run
        records, rows, plain, stored = [], [], [], []
        flags = np.zeros((2, total), dtype=np.int64)  # is_chunk, forced (boundary tokens)
        reused = start = 0
        for s in segs:
            end = start + len(s.token_ids)
            if s.chunk_id is not None:
                rec, hit = self.chunk_kv(s)
                records.append(rec)
                rows.append((start, end))  # placed whole; selectable from ``m`` on
                flags[0, max(start, m):end] = 1
                flags[1, start:min(end, start + cfg.boundary_tokens)] = 1
                stored.append(rec.positions.to(dev, non_blocking=True))
                reused += hit
            else:
                if end > m:
                    plain.append((max(start, m), end))
                stored.append(positions[start:end])
            start = end
        plain_np = np.concatenate([np.arange(a, b) for a, b in plain] or [np.zeros(0, np.int64)])
        parts = (flags.ravel(), plain_np) if ids is not None else (flags.ravel(), ids_np, plain_np)
        packed = torch.from_numpy(np.concatenate(parts)).to(dev)
        is_chunk, forced = packed[:total].bool(), packed[total:2 * total].bool()
        if ids is None:
            ids = packed[2 * total:3 * total]
        plain_all = packed[len(packed) - len(plain_np):]  # ascending: segments are in order
        delta = positions - torch.cat(stored)
        n_chunk = sum(max(0, b - max(a, m)) for a, b in rows)
        # the last prompt token is always computed (its logits are the output): when it is a
        # chunk token it takes one extra slot, counted like any other
        last_is_chunk = bool(rows) and rows[-1][1] == total
        n_select = min(n_chunk, int(round(cfg.ratio * n_chunk)) + int(last_is_chunk))

        query_rows = [(a, b) for a, b in plain if not rows or a >= rows[-1][1]]
        by_query = cfg.select == "query" and bool(query_rows) and n_select > 0
        # cached KV from ``first`` on: at check layer 0 it is the layer's K/V (exact); at a later
        # check layer only the deviation score reads it
        first = c + 1 if by_query and c > 0 else c
        graphs = self.graphs if by_query and attention is None else None
        if graphs is not None and not graphs.usable(cfg):
            graphs = None
        loader = None if graphs is not None else FusedKVLoader(run, records, rows, total, delta,
                                                               cfg.impl, first)  # fmt: skip

        # check layer: fresh Q/K/V (for every token when c > 0), pick the chunk tokens to recompute
        k = v = None
        if c > 0:
            assert hidden is not None
            q, k, v = run.qkv(c, hidden, cos[m:], sin[m:], impl=cfg.impl)
            k, v = _from_row(k, m, total), _from_row(v, m, total)

        def check_layer(idx: Tensor) -> CheckLayerInputs:
            if c > 0:  # ``hidden`` and ``q`` hold the rows from ``m`` on; ``idx`` are all past it
                assert hidden is not None and k is not None and v is not None
                rel = idx - m if m else idx
                return CheckLayerInputs(hidden[rel], q[rel], k, v)
            return self._layer0_rows(ids, idx, cos, sin, cfg)

        if by_query:
            act = plain_all
            n_query = sum(b - a for a, b in query_rows)  # the last rows of ``act``
            qp = act[-n_query:]  # a row's index is its position
            if graphs is not None:  # the main pass reads the graph's copy of the chunk KV
                # at check layer 0 the graph computes the rows' layer-0 inputs from ``ids``
                chk_in = check_layer(act) if c > 0 else None
                scores, loader = graphs.mass(chk_in, ids, act, qp, positions, cos, sin, records,
                                             rows, delta, first, cfg)  # fmt: skip
            else:
                assert loader is not None
                scores = self._query_mass(check_layer(act), act, qp, positions, cos, sin, loader,
                                          cfg, attention)  # fmt: skip
        elif c == 0:  # no question to read and no deviation at layer 0: each chunk's first tokens
            scores = torch.zeros(total, dtype=torch.float32, device=dev)
            for a, b in rows:
                scores[a:b] = -torch.arange(b - a, dtype=torch.float32, device=dev)
        else:
            assert loader is not None
            cached_k, cached_v = loader.layer(c)
            assert k is not None and v is not None
            scores = _deviation(cached_k, cached_v, k, v, is_chunk, n_chunk, cfg.score, cfg.impl)
        # host-known sizes, no device sync: forced tokens first, the last token before them
        scores = torch.where(forced, torch.full_like(scores, 1e38), scores)
        scores = torch.where(is_chunk, scores, torch.full_like(scores, float("-inf")))
        if last_is_chunk:
            scores[-1] = float("inf")
        selected = ops.select_topk(scores, n_select, impl=cfg.impl)
        active = torch.sort(torch.cat([plain_all, selected])).values

        def keep(_layer: int, _q: Tensor, fused_k: Tensor, fused_v: Tensor,
                 _lse: Tensor | None) -> None:  # fmt: skip
            keys.append(fused_k)
            values.append(fused_v)

        assert loader is not None
        out = self._carry(active, check_layer(active), positions, cos, sin, loader, cfg, keep,
                          last_output=logits, attention=attention)  # fmt: skip
        stats = BlendStats(total, n_chunk, n_select, reused, len(records) - reused)
        kv = KVCache(keys, values, positions)
        if graphs is not None:  # its chunk layers are views of the graph bucket's buffers
            graphs.lend(kv)
        return BlendResult(run.logits(out[-1:])[0] if logits else None, kv, stats)

    def _layer0_rows(self, ids: Tensor, idx: Tensor, cos: Tensor, sin: Tensor,
                     cfg: BlendConfig) -> CheckLayerInputs:  # fmt: skip
        """Check layer 0's inputs for rows ``idx`` (``CheckLayerInputs``): only they are embedded
        and projected."""
        h = self.runner.embed(ids[idx])
        q, k, v = self.runner.qkv(0, h, cos[idx], sin[idx], impl=cfg.impl)
        return CheckLayerInputs(h, q, None, None, k, v)

    def _query_mass(self, chk: CheckLayerInputs, act: Tensor, qp: Tensor, positions: Tensor,
                    cos: Tensor, sin: Tensor, loader: FusedKVLoader, cfg: BlendConfig,
                    attention: LayerAttention | None = None) -> Tensor:  # fmt: skip
        """The query pass (module docstring, step 3): attention mass ``[T]`` on every token."""
        return run_steps(self._query_mass_steps(chk, act, qp, positions, cos, sin, loader, cfg,
                                                attention))  # fmt: skip

    def _query_mass_steps(self, chk: CheckLayerInputs, act: Tensor, qp: Tensor, positions: Tensor,
                          cos: Tensor, sin: Tensor, loader: FusedKVLoader, cfg: BlendConfig,
                          attention: LayerAttention | None = None,
                          ) -> Generator[int, None, Tensor]:  # fmt: skip
        """``_query_mass`` one layer at a time: yields each layer's index once its work is
        queued, and returns the mass (``semcache.gpu.query_graph`` captures it in pieces).

        The non-chunk tokens ``act`` are carried over the reused chunk KV (``_carry``; their fresh
        K/V go into the fused cache, and the main pass overwrites those rows again). The question
        tokens are the last ``len(qp)`` rows of ``act``; ``qp`` are their positions (a row at a
        position below every key adds no mass).
        """
        run = self.runner
        n_query = qp.shape[0]
        mass = torch.zeros(positions.shape[0], dtype=torch.float32, device=positions.device)
        bias = None  # the reference's mask bias, the same for every layer
        kernels = ops.uses_triton(cfg.impl, mass)
        if not kernels:
            bias = ops.visibility_bias(qp, positions, run.num_heads // run.num_kv_heads)

        def add_mass(layer: int, q1: Tensor, fused_k: Tensor, _fused_v: Tensor,
                     lse: Tensor | None) -> None:  # fmt: skip
            if layer == cfg.check_layer:  # the mass is summed over the layers after it
                return
            mass.add_(ops.attention_mass(q1[-n_query:], fused_k, qp, positions, run.scale, bias,
                                         impl=cfg.impl,
                                         lse=None if lse is None else lse[-n_query:]))  # fmt: skip

        # on the Triton path each layer's attention also returns its rows' log-sum-exp, which the
        # mass of the same layer reuses (the last layer runs no attention and computes its own)
        yield from self._carry_steps(act, chk, positions, cos, sin, loader, cfg, add_mass,
                                     last_output=False, with_lse=kernels and attention is None,
                                     attention=attention)  # fmt: skip
        return mass

    def _carry(self, active: Tensor, chk: CheckLayerInputs, positions: Tensor, cos: Tensor,
               sin: Tensor, loader: FusedKVLoader, cfg: BlendConfig,
               on_layer: Callable[[int, Tensor, Tensor, Tensor, Tensor | None], None],
               last_output: bool = True, with_lse: bool = False,
               attention: LayerAttention | None = None) -> Tensor:  # fmt: skip
        """Run the ``active`` rows from the check layer to the last layer; their hidden states
        (``_carry_steps`` run to its end)."""
        return run_steps(self._carry_steps(active, chk, positions, cos, sin, loader, cfg, on_layer,
                                        last_output, with_lse, attention))  # fmt: skip

    def _carry_steps(self, active: Tensor, chk: CheckLayerInputs, positions: Tensor, cos: Tensor,
                     sin: Tensor, loader: FusedKVLoader, cfg: BlendConfig,
                     on_layer: Callable[[int, Tensor, Tensor, Tensor, Tensor | None], None],
                     last_output: bool = True, with_lse: bool = False,
                     attention: LayerAttention | None = None,
                     ) -> Generator[int, None, Tensor]:  # fmt: skip
        """Run the ``active`` rows from the check layer to the last layer, yielding each layer's
        index once its work is queued; returns their hidden states.

        ``chk`` holds the check layer's input and queries for the ``active`` rows and its K/V
        (``CheckLayerInputs``). In each later layer the active rows' fresh K/V are written into
        the fused cache. ``on_layer(layer, queries, fused_k, fused_v, lse)`` sees every layer from
        the check layer on, after its attention; ``lse`` is the attention rows' log2-sum-exp
        ``[n_active, Hq]`` with ``with_lse`` (Triton path only), else None (always at the check
        layer). With ``last_output=False`` the last layer's attention and MLP are skipped
        (nothing reads them; ``lse`` is None there). ``attention``: see ``prefill`` (it gives no
        ``lse``, so ``with_lse`` needs it None).
        """
        run, c = self.runner, cfg.check_layer
        if with_lse and attention is not None:
            raise ValueError("an external attention gives no log-sum-exp")
        q_pos = positions[active]
        group = run.num_heads // run.num_kv_heads
        plan = (ops.plan_partial_attention(q_pos, positions, group, impl=cfg.impl)
                if cfg.impl != "torch" and attention is None else None)  # fmt: skip

        def attend(layer: int, q: Tensor, k: Tensor, v: Tensor, lse: Tensor | None = None) -> Tensor:
            if attention is None:
                return self._attention(q, k, v, q_pos, positions, cfg.impl, plan, lse)
            out = attention(layer, k, v, q, q_pos)
            assert out is not None
            return out

        k, v = chk.k, chk.v
        if k is None or v is None:  # check layer 0: the cached K/V with the rows' fresh ones
            assert chk.k_rows is not None and chk.v_rows is not None
            k, v = loader.layer(c)
            ops.scatter_rows(k, active, chk.k_rows, impl=cfg.impl)
            ops.scatter_rows(v, active, chk.v_rows, impl=cfg.impl)
        attn = attend(c, chk.q, k, v)
        on_layer(c, chk.q, k, v, None)
        h = run.finish_layer(c, chk.hidden, attn, impl=cfg.impl)
        yield c
        cos_a, sin_a = cos[active], sin[active]
        lse = (torch.empty((active.shape[0], run.num_heads), dtype=torch.float32,
                           device=active.device) if with_lse else None)  # fmt: skip
        for layer in range(c + 1, run.num_layers):
            q1, k1, v1 = run.qkv(layer, h, cos_a, sin_a, impl=cfg.impl)
            fused_k, fused_v = loader.layer(layer)
            ops.scatter_rows(fused_k, active, k1, impl=cfg.impl)
            ops.scatter_rows(fused_v, active, v1, impl=cfg.impl)
            if last_output or layer + 1 < run.num_layers:
                attn = attend(layer, q1, fused_k, fused_v, lse)
                on_layer(layer, q1, fused_k, fused_v, lse)
                h = run.finish_layer(layer, h, attn, impl=cfg.impl)
            else:
                if attention is not None:
                    attention(layer, fused_k, fused_v, None, None)
                on_layer(layer, q1, fused_k, fused_v, None)
            yield layer
        return h

    def _attention(self, q: Tensor, k: Tensor, v: Tensor, q_pos: Tensor, k_pos: Tensor,
                   impl: str, plan: object, lse: Tensor | None = None) -> Tensor:  # fmt: skip
        if impl == "torch":  # the plain-PyTorch baseline: SDPA with a boolean position mask
            return self.runner.masked_attention(q, k, v, q_pos, k_pos)
        return ops.partial_attention(q, k, v, q_pos, k_pos, self.runner.scale, impl=impl,
                                     plan=plan, lse_out=lse)  # fmt: skip


@dataclass(slots=True)
class CheckLayerInputs:
    """The check layer's inputs for the rows a pass carries.

    ``hidden``/``q`` are those rows' layer input and queries. With a check layer past 0, ``k``/``v``
    are its fresh K/V for every token. At check layer 0 they are None: the layer's K/V are the
    cached ones (exact there) with the rows' fresh ``k_rows``/``v_rows`` written over them.
    """

    hidden: Tensor
    q: Tensor
    k: Tensor | None
    v: Tensor | None
    k_rows: Tensor | None = None
    v_rows: Tensor | None = None


def _from_row(x: Tensor, m: int, total: int) -> Tensor:
    """Rows ``m..total-1`` in ``x`` as a ``[total, ...]`` tensor whose first ``m`` rows are unset."""
    if not m:
        return x
    out = torch.empty((total, *x.shape[1:]), dtype=x.dtype, device=x.device)
    out[m:] = x
    return out


def run_steps(steps: Generator[int, None, Tensor]) -> Tensor:
    """Run a step generator (``Blender._carry_steps``, ``_query_mass_steps``) to its end; its
    return value."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def _checked(segment: Segment) -> Segment:
    if not isinstance(segment, Segment):
        raise TypeError(f"segments must be Segment instances, got {type(segment).__name__}")
    if not segment.token_ids:
        raise ValueError("empty segment")
    return segment  # a chunk id is checked against its tokens on a store miss (``chunk_kv``)


def _deviation(cached_k: Tensor, cached_v: Tensor, k: Tensor, v: Tensor, is_chunk: Tensor,
               n_chunk: int, score: str, impl: str) -> Tensor:
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
