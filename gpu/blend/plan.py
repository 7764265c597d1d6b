"""The host side of a blend prefill: where each segment sits and what is computed, as plain
numbers and numpy arrays (no model, no device), so it is tested without a GPU."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
from semcache.gpu.blend.config import BlendConfig
from semcache.gpu.chunks.ids import Segment


@dataclass(frozen=True, slots=True)
class BlendPlan:
    """One prompt's layout for the blend. Rows are positions ``0..total-1``."""

    token_ids: np.ndarray  # [total] int64
    segment_rows: list[tuple[int, int]]  # [start, end) of every segment, in order
    chunk_rows: list[tuple[int, int]]  # [start, end) of the chunk segments (placed whole)
    flags: np.ndarray  # [2, total] int64: is_chunk (from ``computed`` on), forced (boundary)
    plain_rows: np.ndarray  # [n] int64 ascending: the non-chunk rows from ``computed`` on
    computed: int  # rows already in the caller's attention store: neither computed nor selected
    n_chunk: int  # chunk tokens from ``computed`` on: what ``ratio`` counts
    n_select: int  # chunk tokens recomputed (the last prompt token included when it is one)
    last_is_chunk: bool  # the last prompt token is a chunk token (always computed: its logits)
    n_query: int  # question tokens: the non-chunk rows after the last chunk
    by_query: bool  # the query pass scores the chunk tokens
    first: int  # the first layer whose cached chunk KV any pass reads

    @property
    def total(self) -> int:
        return int(self.token_ids.shape[0])


def checked(segment: Segment) -> Segment:
    """``segment`` if it is a non-empty ``Segment`` (a chunk id is checked against its tokens on
    a store miss, ``Blender.chunk_kv``)."""
    if not isinstance(segment, Segment):
        raise TypeError(f"segments must be Segment instances, got {type(segment).__name__}")
    if not segment.token_ids:
        raise ValueError("empty segment")
    return segment


def plan_blend(segments: Sequence[Segment], cfg: BlendConfig, num_layers: int,
               computed: int = 0, external_attention: bool = False) -> BlendPlan:  # fmt: skip
    """The plan of a blend prefill of ``segments`` under ``cfg`` (validated here)."""
    c = cfg.layer
    if c >= num_layers:
        raise ValueError(f"check_layer {c} >= num_layers {num_layers}")
    segs = [checked(s) for s in segments]
    if not segs:
        raise ValueError("no segments to prefill")
    ids = np.fromiter(chain.from_iterable(s.token_ids for s in segs), dtype=np.int64)
    total, m = int(ids.shape[0]), computed
    if not 0 <= m < total:
        raise ValueError(f"computed must be in [0, {total}), got {m}")
    if m and not external_attention:
        raise ValueError("computed > 0 needs an attention store that holds those rows")
    if m and cfg.select == "query":  # its attention mass reads the fused KV of every row
        raise ValueError("computed > 0 works with select='deviation' only")
    seg_rows, rows, plain = [], [], []
    flags = np.zeros((2, total), dtype=np.int64)
    start = 0
    for s in segs:
        end = start + len(s.token_ids)
        seg_rows.append((start, end))
        if s.chunk_id is not None:
            rows.append((start, end))
            flags[0, max(start, m):end] = 1
            flags[1, start:min(end, start + cfg.boundary_tokens)] = 1
        elif end > m:
            plain.append((max(start, m), end))
        start = end
    plain_rows = np.concatenate([np.arange(a, b) for a, b in plain] or [np.zeros(0, np.int64)])
    n_chunk = sum(max(0, b - max(a, m)) for a, b in rows)
    last_is_chunk = bool(rows) and rows[-1][1] == total
    n_select = min(n_chunk, int(round(cfg.ratio * n_chunk)) + int(last_is_chunk))
    n_query = sum(b - a for a, b in plain if not rows or a >= rows[-1][1])
    by_query = cfg.select == "query" and n_query > 0 and n_select > 0
    first = c + 1 if by_query and c > 0 else c
    return BlendPlan(ids, seg_rows, rows, flags, plain_rows, m, n_chunk, n_select, last_is_chunk,
                     n_query, by_query, first)  # fmt: skip
