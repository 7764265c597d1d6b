"""Scheduler side of the vLLM connector: chunk detection and the per-request load plan.

The planner reports the span ``[local_hit, end)``, ``end`` being the end of the last registered
chunk found in the prompt (``ChunkRegistry.find``); the worker blends ``[0, end)`` and vLLM
computes the rest. The question lies past the span, so the connector selects by deviation
(``docs/design/gpu_vllm.md`` has the measurement against a query pass). Chunks are registered by
the request's ``kv_transfer_params = {"semcache": {"chunks": [...]}}`` (or ``"chunk_ids"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from semcache.gpu.chunks.ids import ChunkRegistry

PARAMS_KEY = "semcache"
DEFAULT_RATIO = 0.15


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """Settings from ``kv_transfer_config.kv_connector_extra_config``, validated once."""

    ratio: float = DEFAULT_RATIO
    gate: str | None = None  # a quality-gate JSON file written by `semcache engine calibrate`
    check_layer: int = 1
    select: str = "deviation"  # the span ends before the question (module docstring)
    score: str = "kv"
    boundary_tokens: int = 0
    window: int = 16
    chunk_store_bytes: int = 2 << 30
    max_chunks_per_request: int = 64
    hook_log: str | None = None  # JSON-lines file recording every hook call
    vllm_kernels: bool = True  # vLLM's CPU RMSNorm/RoPE ops in the blend (semcache.gpu.vllm.kernels)

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"ratio must be in [0, 1], got {self.ratio!r}")
        if self.window < 1 or self.chunk_store_bytes < 1 or self.max_chunks_per_request < 1:
            raise ValueError("window, chunk_store_bytes and max_chunks_per_request must be >= 1")

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any] | None) -> ConnectorConfig:
        """Build from the ``kv_connector_extra_config`` dict; unknown keys are refused."""
        data = dict(extra or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown semcache connector settings {unknown}; known: {sorted(known)}")
        return cls(**data)

    def design(self) -> dict[str, Any]:
        """The blend settings a quality gate must have been calibrated with."""
        from semcache.gpu.blend.config import blend_design

        return blend_design(self.check_layer, self.select, self.score, self.boundary_tokens)


@dataclass(frozen=True, slots=True)
class SpanSegment:
    """A run of the planned span: plain tokens (``chunk_id`` None) or a registered chunk."""

    token_ids: tuple[int, ...]
    chunk_id: str | None = None


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """What the worker writes for one request: KV of positions ``[start, end)`` into ``block_ids``.

    ``segments`` cover positions ``[0, end)``; positions before ``start`` are already in vLLM's
    cache (its own prefix-cache hit) and are computed but not written.
    """

    req_id: str
    segments: tuple[SpanSegment, ...]
    start: int
    end: int
    block_ids: tuple[int, ...]
    ratio: float


@dataclass(frozen=True, slots=True)
class Span:
    segments: tuple[SpanSegment, ...]
    end: int
    ratio: float


@dataclass(slots=True)
class ChunkPlanner:
    """Registry of chunks plus the pending span of each waiting request."""

    config: ConnectorConfig
    tokenize: Callable[[str], list[int]] | None = None
    min_ratio: float = 0.0
    registry: ChunkRegistry = field(init=False)
    _spans: dict[str, Span] = field(default_factory=dict)
    _pending: dict[str, LoadSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.registry = ChunkRegistry(window=self.config.window)

    def register_from_params(self, params: Mapping[str, Any] | None) -> float | None:
        """Register the chunks a request declares; returns its ratio override (or None).

        Malformed parameters raise ``ValueError``.
        """
        if not params or PARAMS_KEY not in params:
            return None
        ours = params[PARAMS_KEY]
        if not isinstance(ours, Mapping):
            raise ValueError(f"kv_transfer_params.{PARAMS_KEY} must be an object")
        texts = ours.get("chunks") or []
        id_lists = ours.get("chunk_ids") or []
        if not isinstance(texts, list) or not all(isinstance(t, str) and t for t in texts):
            raise ValueError("semcache.chunks must be a list of non-empty strings")
        if not isinstance(id_lists, list) or not all(
                isinstance(ids, list) and ids and all(isinstance(t, int) for t in ids) for ids in id_lists):
            raise ValueError("semcache.chunk_ids must be a list of non-empty lists of token ids")
        if len(texts) + len(id_lists) > self.config.max_chunks_per_request:
            raise ValueError(f"at most {self.config.max_chunks_per_request} chunks per request")
        if texts and self.tokenize is None:
            raise ValueError("chunk texts need a tokenizer; pass chunk_ids instead")
        for text in texts:
            assert self.tokenize is not None
            self.registry.register(self.tokenize(text))
        for ids in id_lists:
            self.registry.register(ids)
        ratio = ours.get("ratio")
        if ratio is None:
            return None
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
            raise ValueError(f"semcache.ratio must be a number in [0, 1], got {ratio!r}")
        return float(ratio)

    def span(self, prompt_ids: Sequence[int], ratio: float | None = None) -> Span | None:
        """The reusable span of ``prompt_ids``: up to the end of the last chunk found, or None.

        The last prompt token is never inside the span (vLLM must compute at least one token).
        """
        matches = [m for m in self.registry.find(prompt_ids) if m.end < len(prompt_ids)]
        if not matches:
            return None
        segments: list[SpanSegment] = []
        pos = 0
        for m in matches:
            if m.start > pos:
                segments.append(SpanSegment(tuple(prompt_ids[pos:m.start])))
            segments.append(SpanSegment(tuple(prompt_ids[m.start:m.end]), m.chunk_id))
            pos = m.end
        used = self.config.ratio if ratio is None else ratio
        return Span(tuple(segments), pos, max(used, self.min_ratio))

    # ----- the vLLM scheduler hooks, on plain values -------------------------------------
    def matched_tokens(self, req_id: str, prompt_ids: Sequence[int], num_computed: int,
                       params: Mapping[str, Any] | None) -> int:
        """Tokens beyond ``num_computed`` that the connector will supply (0 for none)."""
        ratio = self.register_from_params(params)
        found = self.span(prompt_ids, ratio)
        if found is None or found.end <= num_computed:
            self._spans.pop(req_id, None)
            return 0
        self._spans[req_id] = found
        return found.end - num_computed

    def allocated(self, req_id: str, block_ids: Sequence[int], num_external: int) -> None:
        """Blocks are allocated: turn the request's span into a load spec for the next step."""
        found = self._spans.pop(req_id, None)
        if found is None or num_external <= 0:
            return
        start = found.end - num_external
        self._pending[req_id] = LoadSpec(req_id, found.segments, start, found.end,
                                         tuple(int(b) for b in block_ids), found.ratio)

    def take(self, scheduled_new: Mapping[str, Sequence[int]]) -> list[LoadSpec]:
        """Load specs of the newly scheduled requests (``req_id -> block ids``), removed here.

        The block ids vLLM schedules the request with are the ones written to.
        """
        out = []
        for req_id, block_ids in scheduled_new.items():
            spec = self._pending.pop(req_id, None)
            if spec is not None:
                out.append(LoadSpec(spec.req_id, spec.segments, spec.start, spec.end,
                                    tuple(int(b) for b in block_ids), spec.ratio))
        return out

    def finished(self, req_id: str) -> None:
        self._spans.pop(req_id, None)
        self._pending.pop(req_id, None)


def slot_mapping(block_ids: Sequence[int], block_size: int, start: int, end: int) -> list[int]:
    """Paged-cache slots of positions ``[start, end)`` of a request holding ``block_ids``."""
    if block_size < 1 or not 0 <= start <= end:
        raise ValueError(f"need block_size >= 1 and 0 <= start <= end, got {block_size}, {start}, {end}")
    if end > len(block_ids) * block_size:
        raise ValueError(f"positions up to {end} need {-(-end // block_size)} blocks, "
                         f"the request holds {len(block_ids)}")
    return [int(block_ids[p // block_size]) * block_size + p % block_size for p in range(start, end)]
