"""CUDA graphs of the blend's query pass, over bucketed shapes.

The query pass (``Blender._query_mass``) runs every layer once for the prompt's non-chunk tokens:
tens of rows, so on a GPU each of its ~600 launches finishes before the host has issued the next
one, and the pass costs its host time (~25 ms for a Llama-3-8B shape) instead of its device time
(a few ms). Replaying it as one CUDA graph removes that.

A graph is captured per *bucket*, not per request shape:

- the key axis is padded to ``Tb``, a multiple of ``BUCKET_T`` above ``T``. Padding keys sit at
  position ``PAD_POSITION``, above every real query, so the exact mask ``k_pos <= q_pos`` hides
  them from the real rows;
- the non-chunk rows are padded to ``Nb``, a multiple of ``BUCKET_ROWS``. Padding rows are
  appended after the question rows, read and write only the last padding key row, and their
  mass query position is -1, so they add no attention mass.

So a bucket is ``(Tb, Nb, rows before the question)``: prompts of one application (one system
prompt) and similar lengths share a graph. Each bucket holds static copies of its inputs and
of the cached chunk KV (about ``2 * layers * Tb * kv_heads * head_dim`` elements), placed with
the keys already re-rotated (``FusedKVLoader.place``) before the replay, so neither pass
re-rotates; the least recently used bucket is dropped past ``max_graphs``. At check layer 0 the
graph also embeds and projects its rows itself (``Blender._layer0_rows``) from the prompt's token
ids: before the replay the GPU has little queued, so every small launch the host makes there is
time the GPU waits. The main pass, which depends on the
selection, runs eagerly as before: its launches carry thousands of rows, so it is device-bound.

Graphs are used on the Triton path wherever the chunk records are. Records in host memory are
uploaded on a side stream piece by piece (``FusedKVLoader.place_in_spans``), and each piece's
replay waits only for its own layers, so the uploads of later layers overlap with the pass.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from semcache.gpu.chunk_kv import ChunkKV
from semcache.gpu.fused_kv import FusedKVLoader
from semcache.gpu.runner import KVCache
from torch import Tensor

if TYPE_CHECKING:
    from semcache.gpu.blend import BlendConfig, Blender, CheckLayerInputs

BUCKET_T, BUCKET_ROWS = 256, 16
PAD_POSITION = 1 << 40
# The pass is captured as graphs of consecutive layers, in these shares of its layers. Launching
# one graph costs the host time per node (about 1 ms for the ~500 nodes of a 32-layer pass), and
# the GPU would wait through it; in pieces, the GPU runs each while the host launches the next,
# so the first is small (2 of 32 layers) and each one outlasts the next one's launch.
PIECE_SHARES = (1, 3, 6, 6)


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
    """Captured query passes of one ``Blender``, keyed by bucket (see module docstring)."""

    def __init__(self, blender: Blender, max_graphs: int = 4) -> None:
        if max_graphs < 1:
            raise ValueError(f"max_graphs must be >= 1, got {max_graphs}")
        self.blender = blender
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
        """``Blender._query_mass`` for these inputs, by graph replay: the mass ``[T]``, and a
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
        main = FusedKVLoader(self.blender.runner, [], [], total, delta, cfg.impl, first,
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
        from semcache.gpu.blend import CheckLayerInputs, run_steps

        t_b, n_b, lead = int(key[0]), int(key[1]), int(key[2])  # type: ignore[call-overload]
        while len(self._buckets) >= self.max_graphs:
            self._buckets.popitem(last=False)
        run, dev = self.blender.runner, cos.device

        def zeros(like: Tensor, rows: int) -> Tensor:
            return torch.zeros((rows, *like.shape[1:]), dtype=like.dtype, device=dev)

        positions = torch.full((t_b,), PAD_POSITION, dtype=torch.int64, device=dev)
        act = torch.full((n_b,), t_b - 1, dtype=torch.int64, device=dev)
        qp = torch.full((n_b - lead,), -1, dtype=torch.int64, device=dev)
        loader = FusedKVLoader(run, [], [], t_b, torch.zeros(t_b, dtype=torch.int64, device=dev),
                               cfg.impl, first)  # fmt: skip
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

        def replayable() -> Generator[int, None, Tensor]:  # one step per layer
            loader.done = {}
            chk_in = b.chk if b.chk is not None else self.blender._layer0_rows(b.ids, b.act, b.cos,
                                                                                b.sin, cfg)  # fmt: skip
            return (yield from self.blender._query_mass_steps(chk_in, b.act, b.qp, b.positions,
                                                              b.cos, b.sin, loader, cfg))  # fmt: skip

        side = torch.cuda.Stream(device=dev)  # warm-up off the capture stream, as CUDA asks
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            run_steps(replayable())
        torch.cuda.current_stream(dev).wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        # consecutive pieces share the pool: a later one reads what an earlier one left there,
        # which stays allocated while the step generator holds it
        steps, c = replayable(), cfg.check_layer
        bounds = piece_bounds(run.num_layers - c)
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
