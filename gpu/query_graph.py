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
of the cached chunk KV (about ``2 * layers * Tb * kv_heads * head_dim`` elements); the least
recently used bucket is dropped past ``max_graphs``. The main pass, which depends on the
selection, runs eagerly as before: its launches carry thousands of rows, so it is device-bound.

Graphs are used on CUDA when every chunk record is already in GPU memory (loads from pinned
host memory overlap with compute layer by layer in the eager pass instead).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from semcache.gpu.chunk_kv import ChunkKV
from semcache.gpu.fused_kv import FusedKVLoader
from torch import Tensor

if TYPE_CHECKING:
    from semcache.gpu.blend import BlendConfig, Blender, CheckLayerInputs

BUCKET_T, BUCKET_ROWS = 256, 16
PAD_POSITION = 1 << 40


def _ceil(n: int, m: int) -> int:
    return -(-n // m) * m


@dataclass(slots=True)
class _Bucket:
    graph: torch.cuda.CUDAGraph
    # [Nb] rows of the check layer's input and queries; its K/V: [Tb] (check layer > 0) or [Nb]
    # fresh rows over the cached layer-0 K/V (check layer 0)
    chk: CheckLayerInputs
    positions: Tensor  # [Tb]: real positions, then PAD_POSITION
    cos: Tensor
    sin: Tensor
    act: Tensor  # [Nb]: non-chunk rows, then the last padding row
    qp: Tensor  # [Nb - lead]: question positions, then -1
    loader: FusedKVLoader  # static cached-KV buffers [layers, Tb, Hkv, D] and delta [Tb]
    mass: Tensor  # [Tb]: the graph's output


class QueryPassGraphs:
    """Captured query passes of one ``Blender``, keyed by bucket (see module docstring)."""

    def __init__(self, blender: Blender, max_graphs: int = 4) -> None:
        if max_graphs < 1:
            raise ValueError(f"max_graphs must be >= 1, got {max_graphs}")
        self.blender = blender
        self.max_graphs = max_graphs
        self._buckets: OrderedDict[tuple[object, ...], _Bucket] = OrderedDict()
        self._pool: tuple[int, int] | None = None
        self.captures = 0
        self.replays = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def usable(self, cfg: BlendConfig, records: list[ChunkKV]) -> bool:
        """Triton path, with every chunk record already in GPU memory (module docstring)."""
        return cfg.impl != "torch" and FusedKVLoader.on_device(records, self.blender.runner.device)

    def mass(self, chk: CheckLayerInputs, act: Tensor, qp: Tensor, positions: Tensor, cos: Tensor,
             sin: Tensor, records: list[ChunkKV], rows: list[tuple[int, int]], delta: Tensor,
             first: int, cfg: BlendConfig) -> tuple[Tensor, FusedKVLoader]:  # fmt: skip
        """``Blender._query_mass`` for these inputs, by graph replay: the mass ``[T]``, and a
        loader for the main pass over the graph's copy of the chunk KV (no second copy)."""
        total, n_act, n_query = positions.shape[0], act.shape[0], qp.shape[0]
        t_b, n_b = _ceil(total + 1, BUCKET_T), _ceil(n_act, BUCKET_ROWS)
        key = (t_b, n_b, n_act - n_query, first, cfg.check_layer, cfg.impl)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._capture(key, chk, cos, first, cfg)
        self._buckets.move_to_end(key)
        self._load(bucket, chk, act, qp, positions, cos, sin, records, rows, delta)
        bucket.graph.replay()
        self.replays += 1
        filled = (bucket.loader.k[:, :total], bucket.loader.v[:, :total])
        main = FusedKVLoader(self.blender.runner, [], [], total, delta, cfg.impl, first,
                             filled=filled)  # fmt: skip
        return bucket.mass[:total], main

    def _load(self, b: _Bucket, chk: CheckLayerInputs, act: Tensor, qp: Tensor, positions: Tensor,
              cos: Tensor, sin: Tensor, records: list[ChunkKV], rows: list[tuple[int, int]],
              delta: Tensor) -> None:  # fmt: skip
        total, n_act, n_query = positions.shape[0], act.shape[0], qp.shape[0]
        # padding rows keep what an earlier prompt left there: they read and write only the last
        # padding key row, which no real row sees
        pairs = [(b.chk.hidden, chk.hidden), (b.chk.q, chk.q), (b.chk.k, chk.k), (b.chk.v, chk.v),
                 (b.chk.k_rows, chk.k_rows), (b.chk.v_rows, chk.v_rows), (b.positions, positions),
                 (b.cos, cos), (b.sin, sin), (b.loader.delta, delta)]  # fmt: skip
        for dst, src in pairs:
            if src is not None:
                assert dst is not None
                dst[: src.shape[0]].copy_(src)
        # rows past this prompt may hold another prompt's data: make them padding again
        b.positions[total:].fill_(PAD_POSITION)
        b.act[:n_act].copy_(act)
        b.act[n_act:].fill_(b.positions.shape[0] - 1)
        b.qp[:n_query].copy_(qp)
        b.qp[n_query:].fill_(-1)
        b.loader.place(records, rows)

    def _capture(self, key: tuple[object, ...], chk: CheckLayerInputs, cos: Tensor, first: int,
                 cfg: BlendConfig) -> _Bucket:  # fmt: skip
        from semcache.gpu.blend import CheckLayerInputs

        t_b, n_b, lead = int(key[0]), int(key[1]), int(key[2])  # type: ignore[call-overload]
        while len(self._buckets) >= self.max_graphs:
            self._buckets.popitem(last=False)
        run, dev = self.blender.runner, cos.device

        def zeros(like: Tensor, rows: int) -> Tensor:
            return torch.zeros((rows, *like.shape[1:]), dtype=like.dtype, device=dev)

        def maybe(like: Tensor | None, rows: int) -> Tensor | None:
            return None if like is None else zeros(like, rows)

        positions = torch.full((t_b,), PAD_POSITION, dtype=torch.int64, device=dev)
        act = torch.full((n_b,), t_b - 1, dtype=torch.int64, device=dev)
        qp = torch.full((n_b - lead,), -1, dtype=torch.int64, device=dev)
        loader = FusedKVLoader(run, [], [], t_b, torch.zeros(t_b, dtype=torch.int64, device=dev),
                               cfg.impl, first)  # fmt: skip
        static = CheckLayerInputs(zeros(chk.hidden, n_b), zeros(chk.q, n_b), maybe(chk.k, t_b),
                             maybe(chk.v, t_b), maybe(chk.k_rows, n_b), maybe(chk.v_rows, n_b))
        b = _Bucket(torch.cuda.CUDAGraph(), static, positions, zeros(cos, t_b), zeros(cos, t_b),
                    act, qp, loader, torch.empty(0))  # fmt: skip
        # real rows for the warm-up run: positions 0.. keep every padding row at PAD_POSITION
        b.positions[: t_b - 1].copy_(torch.arange(t_b - 1, device=dev))
        b.act[:lead].copy_(torch.arange(lead, device=dev))

        def replayable() -> Tensor:
            loader.done = {}
            return self.blender._query_mass(b.chk, b.act, b.qp, b.positions, b.cos, b.sin, loader,
                                            cfg)  # fmt: skip

        side = torch.cuda.Stream(device=dev)  # warm-up off the capture stream, as CUDA asks
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            replayable()
        torch.cuda.current_stream(dev).wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        with torch.cuda.graph(b.graph, pool=self._pool):
            b.mass = replayable()
        loader.done = {}  # the rotated keys live in the graph's pool; only the mass is read back
        b.positions.fill_(PAD_POSITION)
        self._buckets[key] = b
        self.captures += 1
        return b
