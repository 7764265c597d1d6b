"""CUDA graphs of the blend's query pass, over bucketed shapes.

The query pass carries tens of rows through every layer, so on a GPU it is bound by its ~600
launches; replaying it as CUDA graphs removes that. A graph is captured per *bucket*
``(Tb, Nb, rows before the question)``: keys padded to a multiple of ``BUCKET_T`` (padding keys
at ``PAD_POSITION``, hidden by the exact mask), rows to a multiple of ``BUCKET_ROWS`` (padding
rows add no mass). The pass itself comes in as a step function (``QueryPassSteps``); the main
pass runs eagerly. ``docs/design/gpu_blend.md`` tells how the pieces and uploads overlap.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass
from typing import Protocol

import torch
from semcache.gpu.blend.config import BlendConfig
from semcache.gpu.blend.execute import CheckLayerInputs, PassContext, run_steps
from semcache.gpu.blend.fused_kv import FusedKVLoader
from semcache.gpu.chunks.store import ChunkKV
from semcache.gpu.model.runner import KVCache, ModelRunner
from torch import Tensor

BUCKET_T, BUCKET_ROWS = 256, 16
PAD_POSITION = 1 << 40
# The pass is captured as graphs of consecutive layers, in these shares of its layers. Launching
# one graph costs the host time per node (about 1 ms for the ~500 nodes of a 32-layer pass), and
# the GPU would wait through it; in pieces, the GPU runs each while the host launches the next,
# so the first is small (2 of 32 layers) and each one outlasts the next one's launch.
PIECE_SHARES = (1, 3, 6, 6)


class QueryPassSteps(Protocol):
    """The query pass as steps (``select.query_pass_steps``): ``chk`` None at check layer 0,
    where the pass computes its rows' inputs from the token ``ids`` itself."""

    def __call__(self, ctx: PassContext, chk: CheckLayerInputs | None, ids: Tensor, act: Tensor,
                 qp: Tensor) -> Generator[int, None, Tensor]: ...  # fmt: skip


def piece_bounds(n_steps: int, shares: tuple[int, ...] = PIECE_SHARES) -> list[int]:
    """Step boundaries ``[0, ..., n_steps]`` of the pieces: ``shares`` of the steps, each piece
    at least one step (fewer pieces when there are fewer steps than shares)."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    used = shares[:min(len(shares), n_steps)]
    whole, acc, bounds = sum(used), 0, [0]
    for i, share in enumerate(used):
        acc += share
        end = round(n_steps * acc / whole) if i + 1 < len(used) else n_steps
        bounds.append(min(max(end, bounds[-1] + 1), n_steps - (len(used) - 1 - i)))
    return bounds


def _ceil(n: int, m: int) -> int:
    return -(-n // m) * m


@dataclass(slots=True)
class _Bucket:
    graphs: list[torch.cuda.CUDAGraph]  # the pass in consecutive runs of layers, replayed in order
    spans: list[tuple[int, int]]  # per graph: the loader layer indices [i0, i1) it reads first
    # check layer > 0: [Nb] rows of its input and queries, and its K/V [Tb]. Check layer 0: None,
    # the graph embeds and projects its rows of ``ids`` itself
    chk: CheckLayerInputs | None
    ids: Tensor  # [Tb]: the prompt's token ids (check layer 0)
    positions: Tensor  # [Tb]: real positions, then PAD_POSITION
    cos: Tensor
    sin: Tensor
    act: Tensor  # [Nb]: non-chunk rows, then the last padding row
    qp: Tensor  # [Nb - lead]: question positions, then -1
    loader: FusedKVLoader  # static cached-KV buffers [layers, Tb, Hkv, D]; delta: the last prompt's
    mass: Tensor  # [Tb]: the graph's output
    total: int = -1  # the prompt length whose positions and RoPE tables the inputs hold
    lent: weakref.ref[KVCache] | None = None  # the last prefill's KV, views of ``loader``'s buffers


class QueryPassGraphs:
    """Captured query passes of one model, keyed by bucket (see module docstring)."""

    def __init__(self, runner: ModelRunner, steps: QueryPassSteps, max_graphs: int = 4) -> None:
        if max_graphs < 1:
            raise ValueError(f"max_graphs must be >= 1, got {max_graphs}")
        self.runner = runner
        self.steps = steps
        self.max_graphs = max_graphs
        self._buckets: OrderedDict[tuple[object, ...], _Bucket] = OrderedDict()
        self._pool: tuple[int, int] | None = None
        self._last: _Bucket | None = None
        self.captures = 0
        self.replays = 0
        self.reclaimed = 0  # layers of a lent KV copied out before their bucket was reused

    def __len__(self) -> int:
        return len(self._buckets)

    def usable(self, cfg: BlendConfig) -> bool:
        """The Triton path (records may be in GPU or host memory: module docstring)."""
        return cfg.impl != "torch"

    def mass(self, chk: CheckLayerInputs | None, ids: Tensor, act: Tensor, qp: Tensor,
             positions: Tensor, cos: Tensor, sin: Tensor, records: list[ChunkKV],
             rows: list[tuple[int, int]], delta: Tensor, first: int,
             cfg: BlendConfig) -> tuple[Tensor, FusedKVLoader]:  # fmt: skip
        """``select.query_mass`` for these inputs, by graph replay: the mass ``[T]``, and a
        loader for the main pass over the graph's copy of the chunk KV (no second copy).

        ``chk``: the check layer's inputs for ``act`` when it is past 0; at check layer 0 pass
        None, and the graph computes them from the token ``ids [T]``."""
        if (chk is None) != (cfg.check_layer == 0):
            raise ValueError("chk goes with a check layer past 0, ids alone with check layer 0")
        total, n_act, n_query = positions.shape[0], act.shape[0], qp.shape[0]
        t_b, n_b = _ceil(total + 1, BUCKET_T), _ceil(n_act, BUCKET_ROWS)
        key = (t_b, n_b, n_act - n_query, first, cfg.check_layer, cfg.impl)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._capture(key, chk, cos, first, cfg)
        self._buckets.move_to_end(key)
        self._reclaim(bucket)
        # the placement first: the GPU copies while the host fills the small inputs. Only the
        # placement reads ``delta`` (the graph does not re-rotate), so it takes this prompt's own
        bucket.loader.delta = delta
        events = bucket.loader.place_in_spans(records, rows, bucket.spans)
        self._load(bucket, chk, ids, act, qp, positions, cos, sin)
        self._last = bucket
        stream = torch.cuda.current_stream(cos.device)
        for graph, event in zip(bucket.graphs, events, strict=True):
            if event is not None:  # host records: this piece's layers have arrived
                stream.wait_event(event)
            graph.replay()
        self.replays += 1
        filled = (bucket.loader.k[:, :total], bucket.loader.v[:, :total])
        main = FusedKVLoader(self.runner, [], [], total, delta, cfg.impl, first,
                             filled=filled)  # fmt: skip
        return bucket.mass[:total], main

    def lend(self, kv: KVCache) -> None:
        """The prefill that last called ``mass`` returns ``kv``, whose chunk-layer K/V are views of
        that bucket's buffers (the main pass wrote into them, no copy). Before the bucket's next
        replay overwrites them, whatever of ``kv`` still points there is copied out
        (``_reclaim``), so a KV that is still in use keeps its values."""
        if self._last is not None:
            self._last.lent = weakref.ref(kv)
            self._last = None

    def _reclaim(self, b: _Bucket) -> None:
        kv = b.lent() if b.lent is not None else None
        b.lent = None
        if kv is None:
            return
        ours = {b.loader.k.untyped_storage().data_ptr(), b.loader.v.untyped_storage().data_ptr()}
        for tensors in (kv.keys, kv.values):
            for i, t in enumerate(tensors):
                if t.untyped_storage().data_ptr() in ours:
                    tensors[i] = t.clone()
                    self.reclaimed += 1

    def _load(self, b: _Bucket, chk: CheckLayerInputs | None, ids: Tensor, act: Tensor, qp: Tensor,
              positions: Tensor, cos: Tensor, sin: Tensor) -> None:  # fmt: skip
        total, n_act, n_query = positions.shape[0], act.shape[0], qp.shape[0]
        # padding rows keep what an earlier prompt left there: they read and write only the last
        # padding key row, which no real row sees
        pairs: list[tuple[Tensor, Tensor]] = []
        if chk is not None:  # a check layer past 0: its K/V are fresh for every row
            assert b.chk is not None and b.chk.k is not None and b.chk.v is not None
            assert chk.k is not None and chk.v is not None
            pairs += [(b.chk.hidden, chk.hidden), (b.chk.q, chk.q), (b.chk.k, chk.k),
                      (b.chk.v, chk.v)]  # fmt: skip
        else:
            pairs.append((b.ids, ids))
        if b.total != total:  # a prefill's positions are 0..T-1: they change with T alone
            pairs += [(b.positions, positions), (b.cos, cos), (b.sin, sin)]
        for dst, src in pairs:
            dst[: src.shape[0]].copy_(src)
        if b.total != total:  # rows past this prompt may hold another prompt's: padding again
            b.positions[total:].fill_(PAD_POSITION)
            b.total = total
        b.act[:n_act].copy_(act)
        b.act[n_act:].fill_(b.positions.shape[0] - 1)
        b.qp[:n_query].copy_(qp)
        b.qp[n_query:].fill_(-1)

    def _capture(self, key: tuple[object, ...], chk: CheckLayerInputs | None, cos: Tensor,
                 first: int, cfg: BlendConfig) -> _Bucket:  # fmt: skip
        while len(self._buckets) >= self.max_graphs:
            self._buckets.popitem(last=False)
        b = self._new_bucket(key, chk, cos, first, cfg)
        loader, c = b.loader, cfg.check_layer
        ctx = PassContext(self.runner, c, cfg.impl, b.positions, b.cos, b.sin, loader)

        def replayable() -> Generator[int, None, Tensor]:  # one step per layer
            loader.done = {}
            return (yield from self.steps(ctx, b.chk, b.ids, b.act, b.qp))

        dev = cos.device
        side = torch.cuda.Stream(device=dev)  # warm-up off the capture stream, as CUDA asks
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            run_steps(replayable())
        torch.cuda.current_stream(dev).wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        # consecutive pieces share the pool: a later one reads what an earlier one left there,
        # which stays allocated while the step generator holds it
        steps = replayable()
        bounds = piece_bounds(self.runner.num_layers - c)
        pieces = len(bounds) - 1
        for i in range(pieces):
            s0, s1 = bounds[i], bounds[i + 1]  # step j runs layer c + j
            b.spans.append((max(c + s0, first) - first, max(c + s1, first) - first))
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                if i + 1 < pieces:
                    for _ in range(s1 - s0):
                        next(steps)
                else:
                    b.mass = run_steps(steps)
            b.graphs.append(graph)
        loader.done = {}  # views of the bucket's own buffers; only the mass is read back
        b.positions.fill_(PAD_POSITION)
        self._buckets[key] = b
        self.captures += 1
        return b

    def _new_bucket(self, key: tuple[object, ...], chk: CheckLayerInputs | None, cos: Tensor,
                    first: int, cfg: BlendConfig) -> _Bucket:  # fmt: skip
        """A bucket's static buffers, with real rows for the warm-up run."""
        t_b, n_b, lead = int(key[0]), int(key[1]), int(key[2])  # type: ignore[call-overload]
        dev = cos.device

        def zeros(like: Tensor, rows: int) -> Tensor:
            return torch.zeros((rows, *like.shape[1:]), dtype=like.dtype, device=dev)

        positions = torch.full((t_b,), PAD_POSITION, dtype=torch.int64, device=dev)
        act = torch.full((n_b,), t_b - 1, dtype=torch.int64, device=dev)
        qp = torch.full((n_b - lead,), -1, dtype=torch.int64, device=dev)
        loader = FusedKVLoader(self.runner, [], [], t_b,
                               torch.zeros(t_b, dtype=torch.int64, device=dev), cfg.impl, first)  # fmt: skip
        static = None
        if chk is not None:  # a check layer past 0: fresh K/V for every row
            assert chk.k is not None and chk.v is not None
            static = CheckLayerInputs(zeros(chk.hidden, n_b), zeros(chk.q, n_b), zeros(chk.k, t_b),
                                      zeros(chk.v, t_b))  # fmt: skip
        ids = torch.zeros(t_b, dtype=torch.int64, device=dev)
        b = _Bucket([], [], static, ids, positions, zeros(cos, t_b), zeros(cos, t_b), act, qp,
                    loader, torch.empty(0))  # fmt: skip
        # real rows for the warm-up run: positions 0.. keep every padding row at PAD_POSITION
        b.positions[: t_b - 1].copy_(torch.arange(t_b - 1, device=dev))
        b.act[:lead].copy_(torch.arange(lead, device=dev))
        return b
