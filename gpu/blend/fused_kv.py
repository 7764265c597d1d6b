"""Fused KV of a blend prefill: cached chunk KV placed at its new rows, re-rotated per layer."""

from __future__ import annotations

import torch
from semcache.gpu.chunks.store import ChunkKV
from semcache.gpu.model.runner import ModelRunner
from semcache.gpu.ops import dispatch as ops
from torch import Tensor


def new_buffer(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """An unset fused-KV buffer (the loader's one allocation; tests poison it through here)."""
    return torch.empty(shape, dtype=dtype, device=device)


class FusedKVLoader:
    """Places cached chunk KV at its new rows, re-rotated, one layer at a time.

    ``layer(l)`` returns ``[T, Hkv, D]`` K/V tensors for layer ``l`` whose chunk rows hold the
    re-rotated cached KV (other rows are unset, to be written with recomputed KV). Records
    already on the device are placed once per chunk, every layer in one pass that re-rotates K
    and copies V (``ops.place_rotated``). Otherwise (host records) the copies of layer
    ``l + PREFETCH`` are queued on a CUDA side stream when layer ``l`` is taken, so host->device
    loads overlap with compute and their launches interleave with the layer's, and each layer's
    keys are re-rotated when it is taken.
    """

    PREFETCH = 3

    def __init__(self, run: ModelRunner, records: list[ChunkKV], rows: list[tuple[int, int]],
                 total: int, delta: Tensor, impl: str, first: int,
                 filled: tuple[Tensor, Tensor] | None = None) -> None:  # fmt: skip
        """``filled``: ``[layers - first, T, Hkv, D]`` K/V buffers that already hold the records
        at their rows, re-rotated (``place``; ``records`` is then ignored). ``layer`` returns
        views of them, so the prefill's KV aliases them: their owner must copy a KV that is still
        in use out before it writes them again (``QueryPassGraphs.lend``)."""
        self.run, self.records, self.rows = run, records, rows
        self.delta, self.impl, self.first = delta, impl, first
        self.n = run.num_layers - self.first
        self.stream: torch.cuda.Stream | None = None
        self.events: dict[int, torch.cuda.Event] = {}
        self.done: dict[int, tuple[Tensor, Tensor]] = {}
        if filled is not None:
            self.k, self.v = filled
            self.resident = True
            return
        # not zeroed: every row a reader sees is a chunk row placed here or a row the blend carries,
        # written before it is read (non-chunk rows are always carried; the deviation score
        # reads the other rows only through a chunk mask)
        shape = (self.n, total, run.num_kv_heads, run.head_dim)
        self.k = new_buffer(shape, run.dtype, run.device)
        self.v = new_buffer(shape, run.dtype, run.device)
        self.resident = self.on_device(records, run.device)
        if self.resident:
            self.place(records, rows)
            return
        if run.device.type == "cuda":
            self.stream = torch.cuda.Stream(device=run.device)
            self.stream.wait_stream(torch.cuda.current_stream(run.device))
        for i in range(min(self.PREFETCH, self.n)):
            self._queue(i)

    @staticmethod
    def on_device(records: list[ChunkKV], device: torch.device) -> bool:
        """Whether every record is already in ``device``'s memory (then no per-layer loads)."""
        return all(rec.keys.device == device for rec in records)

    def place(self, records: list[ChunkKV], rows: list[tuple[int, int]]) -> None:
        """Place device-resident ``records`` at their ``rows``, keys re-rotated by ``delta``:
        one launch per chunk for every layer."""
        for rec, row in zip(records, rows, strict=True):
            self._place_layers(rec, row, 0, self.n)

    def _place_layers(self, rec: ChunkKV, row: tuple[int, int], i0: int, i1: int) -> None:
        """Loader layers ``[i0, i1)`` of ``rec`` at ``row``, keys re-rotated (one launch).
        A host record is uploaded first (asynchronously from pinned memory)."""
        dev, (a, b) = self.run.device, row
        lo, hi = self.first + i0, self.first + i1
        ops.place_rotated(rec.keys[lo:hi].to(dev, non_blocking=True),
                          rec.values[lo:hi].to(dev, non_blocking=True), self.k[i0:i1, a:b],
                          self.v[i0:i1, a:b], self.delta[a:b], self.run.rope,
                          impl=self.impl)  # fmt: skip

    def place_in_spans(self, records: list[ChunkKV], rows: list[tuple[int, int]],
                       spans: list[tuple[int, int]]) -> list[torch.cuda.Event | None]:  # fmt: skip
        """``place`` for records anywhere: device-resident ones are placed now; those in host
        memory are uploaded on a side stream span by span (``spans``: loader layer indices
        ``[i0, i1)``, in the order they will be read), each span placed re-rotated on arrival.

        Returns one event per span that a reader waits on before it uses those layers (None when
        nothing of the span is pending). Pinned host memory makes the uploads asynchronous.
        """
        dev = self.run.device
        host = [(rec, r) for rec, r in zip(records, rows, strict=True) if rec.keys.device != dev]
        resident = [(rec, r) for rec, r in zip(records, rows, strict=True) if rec.keys.device == dev]
        self.place([rec for rec, _ in resident], [r for _, r in resident])
        if not host:
            return [None] * len(spans)
        stream = torch.cuda.Stream(device=dev)
        stream.wait_stream(torch.cuda.current_stream(dev))  # the buffers' last readers first
        events: list[torch.cuda.Event | None] = []
        with torch.cuda.stream(stream):
            for i0, i1 in spans:
                for rec, row in host if i1 > i0 else ():
                    self._place_layers(rec, row, i0, i1)
                event = torch.cuda.Event()
                event.record(stream)
                events.append(event)
        return events

    def _queue(self, i: int) -> None:
        layer = self.first + i
        if self.stream is None:
            self._copy(layer, i)
            return
        with torch.cuda.stream(self.stream):
            self._copy(layer, i)
            event = torch.cuda.Event()
            event.record(self.stream)
        self.events[i] = event

    def _copy(self, layer: int, i: int) -> None:
        for rec, (a, b) in zip(self.records, self.rows, strict=True):
            self.k[i, a:b].copy_(rec.keys[layer], non_blocking=True)
            self.v[i, a:b].copy_(rec.values[layer], non_blocking=True)

    def layer(self, layer: int) -> tuple[Tensor, Tensor]:
        """Layer ``layer``'s fused K (re-rotated) and V; later calls return the same tensors."""
        i = layer - self.first
        if i in self.done:
            return self.done[i]
        if not self.resident and i + self.PREFETCH < self.n:
            self._queue(i + self.PREFETCH)
        if self.stream is not None:
            torch.cuda.current_stream(self.run.device).wait_event(self.events.pop(i))
        if self.resident:  # placed re-rotated
            self.done[i] = (self.k[i], self.v[i])
        else:
            self.done[i] = (ops.rerotate_k(self.k[i], self.delta, self.run.rope, impl=self.impl),
                            self.v[i])  # fmt: skip
        return self.done[i]
