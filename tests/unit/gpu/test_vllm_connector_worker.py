"""The connector's worker side on a tiny random Llama: what it writes into the paged cache."""

from __future__ import annotations

import pytest
import torch
from semcache.gpu.model.loader import random_model
from semcache.gpu.model.runner import ModelRunner
from semcache.gpu.vllm.plan import ChunkPlanner, ConnectorConfig, slot_mapping
from semcache.gpu.vllm.worker import BlendWorker
from transformers import LlamaConfig

pytestmark = pytest.mark.unit
VOCAB = 101
BLOCK = 8


@pytest.fixture(scope="module")
def runner() -> ModelRunner:
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2)
    return ModelRunner(random_model(cfg, dtype=torch.float32, seed=5).model)


def _ids(n: int, seed: int) -> list[int]:
    return torch.randint(2, VOCAB, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


class PagedCache:
    """A paged KV cache ``[blocks * BLOCK, Hkv, D]`` per layer in plain PyTorch (the worker's
    ``PagedKV``): written by slots like vLLM's op, attended in fp32 by true positions."""

    block_size = BLOCK

    def __init__(self, runner: ModelRunner, blocks: int) -> None:
        shape = (blocks * BLOCK, runner.num_kv_heads, runner.head_dim)
        self.k = [torch.full(shape, float("nan")) for _ in range(runner.num_layers)]
        self.v = [torch.full(shape, float("nan")) for _ in range(runner.num_layers)]
        self.scale, self.group = runner.scale, runner.num_heads // runner.num_kv_heads
        self.plans = 0

    def write(self, layer: int, keys: torch.Tensor, values: torch.Tensor, slots: torch.Tensor) -> None:
        self.k[layer][slots] = keys
        self.v[layer][slots] = values

    def plan(self, q_pos: torch.Tensor, block_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        self.plans += 1
        return q_pos.clone(), torch.tensor(slot_mapping(block_ids, BLOCK, 0, int(q_pos[-1]) + 1))

    def attend(self, layer: int, q: torch.Tensor, plan: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        q_pos, slots = plan
        k = self.k[layer][slots].repeat_interleave(self.group, dim=1).float()
        v = self.v[layer][slots].repeat_interleave(self.group, dim=1).float()
        logits = torch.einsum("qhd,khd->hqk", q.float(), k) * self.scale
        visible = torch.arange(slots.shape[0])[None, :] <= q_pos[:, None]
        logits = logits.masked_fill(~visible[None], float("-inf"))
        return torch.einsum("hqk,khd->qhd", logits.softmax(-1), v).to(q.dtype)

    def rows(self, block_ids: list[int], start: int, end: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        slots = torch.tensor(slot_mapping(block_ids, BLOCK, start, end))
        return [k[slots] for k in self.k], [v[slots] for v in self.v]


def _plan(ratio: float, num_computed: int = 0):  # type: ignore[no-untyped-def]
    system, question = _ids(5, 1), _ids(4, 2)
    chunks = [_ids(13, 3), _ids(11, 4)]
    planner = ChunkPlanner(ConnectorConfig(window=4, ratio=ratio))
    planner.register_from_params({"semcache": {"chunk_ids": chunks}})
    prompt = system + chunks[1] + chunks[0] + question  # another order than registered
    block_ids = [6, 2, 9, 4]
    assert planner.matched_tokens("r", prompt, num_computed, None) == 5 + 11 + 13 - num_computed
    planner.allocated("r", block_ids, 5 + 11 + 13 - num_computed)
    [spec] = planner.take({"r": block_ids})
    return prompt, spec


def test_ratio_one_writes_the_full_prefill_kv_of_the_span(runner: ModelRunner) -> None:
    prompt, spec = _plan(1.0)
    cache = PagedCache(runner, 10)
    worker = BlendWorker(runner, ConnectorConfig(window=4), anchor_ids=[1])
    slots = torch.tensor(slot_mapping(spec.block_ids, BLOCK, spec.start, spec.end))
    outcome = worker.load(spec, cache)
    assert (outcome.written, outcome.chunk_tokens, outcome.encoded_chunks) == (29, 24, 2)
    assert cache.plans == 2  # one kernel batch for the full layer, one for the carried rows
    _, full = runner.prefill(prompt[:spec.end])
    keys, values = cache.rows(list(spec.block_ids), 0, spec.end)
    for layer in range(runner.num_layers):
        torch.testing.assert_close(keys[layer], full.keys[layer], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(values[layer], full.values[layer], rtol=1e-4, atol=1e-5)
    # nothing outside the span's slots was touched
    written = set(slots.tolist())
    untouched = [s for s in range(10 * BLOCK) if s not in written]
    assert torch.isnan(cache.k[0][untouched]).all()


def test_reuse_writes_only_after_the_local_prefix_hit(runner: ModelRunner) -> None:
    worker = BlendWorker(runner, ConnectorConfig(window=4), anchor_ids=[1])
    prompt, spec = _plan(0.15, num_computed=BLOCK)
    assert (spec.start, spec.end) == (BLOCK, 29)
    cache = PagedCache(runner, 10)
    # the engine's own KV of its prefix-cache hit: queries of the span attend over it
    _, full = runner.prefill(prompt[:29])
    own = torch.tensor(slot_mapping(list(spec.block_ids), BLOCK, 0, BLOCK))
    for layer in range(runner.num_layers):
        cache.write(layer, full.keys[layer][:BLOCK], full.values[layer][:BLOCK], own)
    before = [k[own].clone() for k in cache.k]
    first = worker.load(spec, cache)
    assert (first.encoded_chunks, first.reused_chunks) == (2, 0)
    again = worker.load(spec, cache)
    assert (again.encoded_chunks, again.reused_chunks) == (0, 2)
    # the ratio counts the chunk tokens the worker writes (from the hit's end on), + the last token
    assert again.chunk_tokens == 24 - (BLOCK - 5)
    assert again.recomputed_chunk_tokens == round(0.15 * again.chunk_tokens) + 1
    # the engine-owned first block stays as it was
    assert all(torch.equal(k[own], b) for k, b in zip(cache.k, before, strict=True))
    keys, _ = cache.rows(list(spec.block_ids), BLOCK, 29)
    assert all(torch.isfinite(k).all() for k in keys)
    # layers before the check layer are recomputed for every token: layer 0 equals a full prefill
    k1 = cache.rows(list(spec.block_ids), BLOCK, 29)[0][0]
    assert (k1 - full.keys[0][BLOCK:29]).abs().max() < 1e-4
