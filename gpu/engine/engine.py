"""The engine: one Llama-family model, its chunk registry and chunk KV store, one request at a time.

A request is laid out as ``[prefix][chunks...][suffix]`` (``semcache.gpu.engine.prompt``). When
the layout holds chunks (explicit or detected), the prompt is prefilled by the blend pipeline
(chunk KV reused, re-rotated, ``ratio`` of the chunk tokens recomputed); otherwise by a plain
prefill. Decoding then runs token by token on the resulting KV. A lock serialises requests: the
runner keeps per-request KV and the CPU has no spare cores for a second one.

The recompute ratio comes from the request, else the engine's ``EngineConfig.ratio``, else the
quality gate's; a gate (``semcache.gpu.engine.quality_gate``) refuses any ratio below its calibrated one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from semcache.gpu.blend import BlendConfig, Blender, blend_design
from semcache.gpu.chunks.anchor import ANCHOR_CONTEXT, anchor_ids, anchor_version
from semcache.gpu.chunks.ids import ChunkRegistry, PromptLayout
from semcache.gpu.chunks.store import ChunkKVStore
from semcache.gpu.engine.decoding import SamplingParams, TextStream, next_token
from semcache.gpu.engine.prompt import chat_layout, completion_layout
from semcache.gpu.engine.quality_gate import QualityGate
from semcache.gpu.model.loader import LoadedModel
from semcache.gpu.model.runner import ModelRunner

DEFAULT_RATIO = 0.15


@dataclass(slots=True)
class EngineConfig:
    """Engine settings; ``ratio=None`` takes the gate's ratio (or ``DEFAULT_RATIO`` without one)."""

    ratio: float | None = None
    check_layer: int | None = None  # None: the blend's default for ``select``
    select: str = "query"
    score: str = "kv"
    boundary_tokens: int = 0
    impl: str = "auto"
    anchor_context: str = ANCHOR_CONTEXT  # the passage chunk KV is computed after
    chunk_store_bytes: int = 2 << 30
    max_tokens_cap: int = 2048
    chunk_separator: str = "\n\n"

    def __post_init__(self) -> None:
        if self.ratio is not None and not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"ratio must be in [0, 1], got {self.ratio}")
        if self.max_tokens_cap < 1:
            raise ValueError(f"max_tokens_cap must be >= 1, got {self.max_tokens_cap}")
        # validates check_layer, select, score, boundary_tokens and impl; resolves check_layer
        self.check_layer = self.blend(0.0).check_layer

    def blend(self, ratio: float) -> BlendConfig:
        return BlendConfig(ratio=ratio, check_layer=self.check_layer, select=self.select,
                           score=self.score, boundary_tokens=self.boundary_tokens, impl=self.impl)


@dataclass(slots=True)
class PrefillReport:
    """Token accounting and timing of one request's prefill (see ``protocol.SemcacheUsage``)."""

    prompt_tokens: int
    chunks: int
    chunk_tokens: int
    reused_tokens: int
    encoded_tokens: int
    recomputed_tokens: int
    ratio: float
    ttft_ms: float = 0.0
    prefill_ms: float = 0.0


@dataclass(slots=True)
class Generation:
    """A finished request: text, generated ids, why it ended, and its prefill report."""

    text: str
    token_ids: list[int]
    finish_reason: str
    report: PrefillReport


@dataclass(slots=True)
class GenerationStream:
    """Text deltas of a running request; ``report`` is set once the first token exists.

    Iterating holds the engine lock until the end; ``close()`` releases it early.
    """

    _events: Iterator[str]
    report: PrefillReport | None = None
    finish_reason: str | None = None
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    cancelled: bool = False

    def __iter__(self) -> Iterator[str]:
        return self._events

    def close(self) -> None:
        """Stop generating and release the engine lock (safe from another thread)."""
        self.cancelled = True  # a step running in another thread ends at its next check
        close = getattr(self._events, "close", None)
        if close is not None:
            try:
                close()
            except ValueError:  # the generator is running in another thread: it stops itself
                pass


class Engine:
    """Serves one model with chunk reuse; see the module docstring."""

    def __init__(self, loaded: LoadedModel, config: EngineConfig | None = None,
                 gate: QualityGate | None = None) -> None:
        if loaded.tokenizer is None:
            raise ValueError("the engine needs a model with a tokenizer (random models have none)")
        self.config = config if config is not None else EngineConfig()
        self.name = loaded.name
        self.tokenizer = loaded.tokenizer
        self.runner = ModelRunner(loaded.model)
        self.registry = ChunkRegistry()
        self.store = ChunkKVStore(self.config.chunk_store_bytes)
        anchor = anchor_ids(self.tokenizer, context=self.config.anchor_context)
        self.blender = Blender(self.runner, self.store, self.registry, anchor_ids=anchor)
        self.gate = gate
        if gate is not None:
            gate.check_design(self.name, self.blend_design())
        self.default_ratio = (self._checked_ratio(self.config.ratio) if self.config.ratio is not None
                              else gate.ratio if gate is not None else DEFAULT_RATIO)
        self.max_positions = int(getattr(self.runner.config, "max_position_embeddings", 1 << 30))
        self.stop_ids = _stop_ids(loaded)
        self._lock = threading.Lock()

    @classmethod
    def from_model(cls, model: str = "smollm2", device: str = "cpu", dtype: torch.dtype | None = None,
                   config: EngineConfig | None = None, gate: QualityGate | None = None) -> Engine:
        """Load ``model`` (``"smollm2"`` or a local HF folder) and build an engine around it."""
        from semcache.gpu.model.loader import load_model

        if dtype is None:
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        return cls(load_model(model, device, dtype), config, gate)

    def blend_design(self) -> dict[str, Any]:
        """The blend settings a quality gate must have been calibrated with."""
        c = self.config
        return blend_design(c.check_layer, c.select, c.score, c.boundary_tokens,
                            anchor_version(c.anchor_context))

    def _resolve_ratio(self, ratio: float | None) -> float:
        return self.default_ratio if ratio is None else self._checked_ratio(ratio)

    def _checked_ratio(self, ratio: float) -> float:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ratio must be a number in [0, 1], got {ratio!r}")
        if self.gate is not None:
            self.gate.check(float(ratio))
        return float(ratio)

    # ----- layouts ---------------------------------------------------------------------------
    def layout(self, messages: Sequence[Mapping[str, str]] | None = None, prompt: str | None = None,
               chunks: Sequence[str] | None = None) -> PromptLayout:
        """Token layout of a chat (``messages``) or completion (``prompt``) request."""
        if (messages is None) == (prompt is None):
            raise ValueError("pass exactly one of messages (chat) or prompt (completion)")
        sep = self.config.chunk_separator
        if messages is not None:
            return chat_layout(self.tokenizer, messages, chunks or (), self.registry, sep)
        assert prompt is not None
        return completion_layout(self.tokenizer, prompt, chunks or (), self.registry, sep)

    # ----- generation ------------------------------------------------------------------------
    def generate(self, messages: Sequence[Mapping[str, str]] | None = None, *,
                 prompt: str | None = None, chunks: Sequence[str] | None = None,
                 max_tokens: int = 16, temperature: float = 0.0, top_p: float = 1.0,
                 stop: Sequence[str] | None = None, seed: int | None = None,
                 ratio: float | None = None) -> Generation:
        """Run a request to the end. Greedy at ``temperature=0``; see ``stream`` for the rest."""
        s = self.stream(messages, prompt=prompt, chunks=chunks, max_tokens=max_tokens,
                        temperature=temperature, top_p=top_p, stop=stop, seed=seed, ratio=ratio)
        for _ in s:
            pass
        assert s.report is not None and s.finish_reason is not None
        return Generation(s.text, s.token_ids, s.finish_reason, s.report)

    def stream(self, messages: Sequence[Mapping[str, str]] | None = None, *,
               prompt: str | None = None, chunks: Sequence[str] | None = None,
               max_tokens: int = 16, temperature: float = 0.0, top_p: float = 1.0,
               stop: Sequence[str] | None = None, seed: int | None = None,
               ratio: float | None = None) -> GenerationStream:
        """Start a request and return its text deltas as a ``GenerationStream``.

        Arguments are checked here (``ValueError``/``TypeError``); the model runs while the
        stream is iterated. ``chunks`` are placed between the system message and the next turn
        (chat) or before the prompt (completion); ``ratio`` must not be below the quality gate.
        """
        started = time.perf_counter()
        if stop is not None and isinstance(stop, str):
            stop = [stop]
        params = SamplingParams(max_tokens, float(temperature), float(top_p), tuple(stop or ()), seed)
        if params.max_tokens > self.config.max_tokens_cap:
            raise ValueError(f"max_tokens {params.max_tokens} exceeds the engine cap "
                             f"{self.config.max_tokens_cap}")
        used_ratio = self._resolve_ratio(ratio)
        layout = self.layout(messages, prompt, chunks)
        n_prompt = len(layout.token_ids)
        if n_prompt + params.max_tokens > self.max_positions:
            raise ValueError(f"prompt ({n_prompt} tokens) + max_tokens ({params.max_tokens}) exceeds "
                             f"the model's {self.max_positions} positions")
        out = GenerationStream(iter(()))
        out._events = self._run(out, layout, params, used_ratio, started)
        return out

    def _run(self, out: GenerationStream, layout: PromptLayout, params: SamplingParams,
             ratio: float, started: float) -> Iterator[str]:
        with self._lock:
            t0 = time.perf_counter()
            logits, kv, report = self._prefill(layout, ratio)
            gen = params.generator(self.runner.device)
            token = next_token(logits, params, gen)
            now = time.perf_counter()
            report.prefill_ms = (now - t0) * 1e3
            report.ttft_ms = (now - started) * 1e3
            out.report = report
            text = TextStream(self.tokenizer, params.stop)
            finish = "length"
            while True:
                if token in self.stop_ids:
                    finish = "stop"
                    break
                out.token_ids.append(token)
                delta = text.push(token)
                out.text = text.text[: text.emitted]
                if out.cancelled:
                    finish = "cancelled"
                    break
                if delta:
                    yield delta
                if text.stopped:
                    finish = "stop"
                    break
                if len(out.token_ids) >= params.max_tokens:
                    break
                token = next_token(self.runner.decode_step(token, kv), params, gen)
            rest = "" if text.stopped or out.cancelled else text.flush()
            out.text = text.text[: text.emitted]
            out.finish_reason = finish
            if rest:
                yield rest

    @torch.inference_mode()
    def _prefill(self, layout: PromptLayout, ratio: float) -> tuple[torch.Tensor, Any, PrefillReport]:
        segments = list(layout.segments)
        chunk_segs = [s for s in segments if s.chunk_id is not None]
        n_prompt = sum(len(s.token_ids) for s in segments)
        if not chunk_segs or ratio >= 1.0:  # r = 1 recomputes everything: a plain prefill is exact
            logits, kv = self.runner.prefill(layout.token_ids)
            n_chunk = sum(len(s.token_ids) for s in chunk_segs)
            return logits, kv, PrefillReport(n_prompt, len(chunk_segs), n_chunk, 0, 0, n_prompt, ratio)
        cached = sum(len(s.token_ids) for s in chunk_segs if s.chunk_id in self.store)
        res = self.blender.prefill(segments, self.config.blend(ratio))
        st = res.stats
        report = PrefillReport(
            prompt_tokens=n_prompt, chunks=len(chunk_segs), chunk_tokens=st.chunk_tokens,
            reused_tokens=cached, encoded_tokens=st.chunk_tokens - cached,
            recomputed_tokens=n_prompt - st.chunk_tokens + st.recomputed_chunk_tokens, ratio=ratio)
        assert res.logits is not None  # asked for (the default)
        return res.logits, res.kv, report

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` (no special tokens added)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))


def _stop_ids(loaded: LoadedModel) -> frozenset[int]:
    ids: set[int] = set()
    eos = getattr(loaded.tokenizer, "eos_token_id", None)
    if eos is not None:
        ids.add(int(eos))
    gen_eos = getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)
    if isinstance(gen_eos, int):
        ids.add(gen_eos)
    elif isinstance(gen_eos, (list, tuple)):
        ids.update(int(t) for t in gen_eos)
    return frozenset(ids)
