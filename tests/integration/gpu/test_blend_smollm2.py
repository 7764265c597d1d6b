"""The blend pipeline end to end on the real SmolLM2-135M-Instruct (CPU, fp32)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from semcache.gpu.blend import BlendConfig, Blender, ChunkEncoder
from semcache.gpu.chunks.ids import ChunkRegistry, PromptLayout, build_prompt
from semcache.gpu.model.runner import ModelRunner
from semcache.gpu.ops import dispatch as ops

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]

CHUNKS = (
    "The for statement iterates over the items of any sequence or iterable, in the order that "
    "they appear. The optional else clause runs when the loop ends without a break.",
    "A with statement wraps the execution of a block with methods defined by a context manager: "
    "__enter__ runs before the block and __exit__ runs after it, even when it raises.",
    "Dictionaries map hashable keys to arbitrary values. Since Python 3.7 they preserve insertion "
    "order, and the | operator merges two dictionaries into a new one.",
)
SYSTEM = "You are a helpful assistant. Answer using the documents below."
QUESTION = "What does the else clause of a for loop do?"


@pytest.fixture(scope="module")
def runner_and_tokenizer() -> tuple[ModelRunner, object]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from semcache.gpu.model.loader import load_smollm2

    loaded = load_smollm2()
    return ModelRunner(loaded.model), loaded.tokenizer


@pytest.fixture(scope="module")
def layout(runner_and_tokenizer: tuple[ModelRunner, object]) -> PromptLayout:
    return build_prompt(runner_and_tokenizer[1], SYSTEM, CHUNKS, QUESTION)


@pytest.fixture(scope="module")
def blender(runner_and_tokenizer: tuple[ModelRunner, object]) -> Blender:
    runner, tok = runner_and_tokenizer
    return Blender(runner, anchor_ids=[tok.bos_token_id])  # type: ignore[attr-defined]


def test_runner_matches_hf_forward(runner_and_tokenizer: tuple[ModelRunner, object],
                                   layout: PromptLayout) -> None:
    runner, _ = runner_and_tokenizer
    ids = layout.token_ids[:120]
    with torch.no_grad():
        ref = runner.model(torch.tensor([ids])).logits[0]
    logits, _ = runner.prefill(ids, all_logits=True)
    torch.testing.assert_close(logits, ref, atol=2e-4, rtol=1e-4)


def test_layout_keeps_chunks_between_system_and_user_turn(
        runner_and_tokenizer: tuple[ModelRunner, object], layout: PromptLayout) -> None:
    _, tok = runner_and_tokenizer
    segs = layout.segments
    assert [s.chunk_id is not None for s in segs] == [False, True, True, True, False]
    assert tok.decode(segs[0].token_ids).startswith("<|im_start|>system\n")  # type: ignore[attr-defined]
    assert tok.decode(segs[1].token_ids) == CHUNKS[0] + "\n\n"  # type: ignore[attr-defined]
    assert "<|im_start|>user\n" + QUESTION in tok.decode(segs[-1].token_ids)  # type: ignore[attr-defined]


def test_full_ratio_equals_full_prefill(runner_and_tokenizer: tuple[ModelRunner, object],
                                       layout: PromptLayout, blender: Blender) -> None:
    runner, _ = runner_and_tokenizer
    full, kv = runner.prefill(layout.token_ids)
    res = blender.prefill(list(layout.segments), BlendConfig(ratio=1.0))
    torch.testing.assert_close(res.logits, full, atol=2e-4, rtol=1e-4)
    assert res.stats.effective_ratio == 1.0
    assert runner.greedy(res.logits, res.kv, 8) == runner.greedy(full, kv, 8)


def test_prompt_without_registered_chunks_equals_prefill(
        runner_and_tokenizer: tuple[ModelRunner, object], layout: PromptLayout,
        blender: Blender) -> None:
    runner, _ = runner_and_tokenizer
    ids = layout.token_ids
    res = blender.prefill_tokens(ids, BlendConfig(ratio=0.15))  # empty registry: nothing found
    assert res.stats.chunk_tokens == 0
    torch.testing.assert_close(res.logits, runner.prefill(ids)[0], atol=2e-4, rtol=1e-4)


def test_detected_chunks_reordered_and_fully_cached(
        runner_and_tokenizer: tuple[ModelRunner, object], blender: Blender) -> None:
    _, tok = runner_and_tokenizer
    registry = ChunkRegistry()
    first = build_prompt(tok, SYSTEM, CHUNKS, QUESTION, registry)
    reordered = build_prompt(tok, SYSTEM, CHUNKS[::-1], QUESTION, registry)
    found = registry.segments(reordered.token_ids)
    assert [s.chunk_id for s in found if s.chunk_id] == reordered.chunk_ids == first.chunk_ids[::-1]
    res = blender.prefill(found, BlendConfig(ratio=0.15))
    assert res.stats.chunk_tokens == sum(len(s.token_ids) for s in found if s.chunk_id)
    assert torch.isfinite(res.logits).all()
    only_chunks = [s for s in found if s.chunk_id]
    cached = blender.prefill(only_chunks, BlendConfig(ratio=0.15))
    assert cached.stats.reused_chunks == 3 and torch.isfinite(cached.logits).all()


def test_rerotated_keys_match_keys_at_target_positions(
        runner_and_tokenizer: tuple[ModelRunner, object], layout: PromptLayout) -> None:
    runner, tok = runner_and_tokenizer
    chunk = layout.segments[2].token_ids
    start = len(layout.segments[0].token_ids) + len(layout.segments[1].token_ids)
    stored = ChunkEncoder(runner, [tok.bos_token_id]).encode(chunk)  # type: ignore[attr-defined]
    _, placed = runner.prefill(list(layout.token_ids[: start + len(chunk)]))
    delta = torch.arange(start, start + len(chunk)) - stored.positions
    moved = ops.rerotate_k(stored.keys[0], delta, runner.rope)
    torch.testing.assert_close(moved, placed.keys[0][start:], atol=1e-4, rtol=1e-5)
    back = ops.rerotate_k(moved, -delta, runner.rope)
    assert (back - stored.keys[0]).abs().max() <= 1e-5 * max(1.0, stored.keys[0].abs().max().item())


def test_reuse_stays_close_to_full_prefill(runner_and_tokenizer: tuple[ModelRunner, object],
                                          layout: PromptLayout, blender: Blender) -> None:
    runner, _ = runner_and_tokenizer
    full, _ = runner.prefill(layout.token_ids)
    reuse = blender.prefill(list(layout.segments), BlendConfig(ratio=0.15))
    p = torch.log_softmax(full, -1)
    kl = (p.exp() * (p - torch.log_softmax(reuse.logits, -1))).sum()
    assert int(reuse.logits.argmax()) == int(full.argmax())
    assert kl < 0.1


def test_quality_benchmark_smoke_with_the_precision_floor(tmp_path: Path) -> None:
    """Two prompts end to end on SmolLM2: r = 1 scores as full prefill; bf16 prefill is scored."""
    out = tmp_path / "quality.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "chunk_quality.py"), "--limit", "2",
         "--ratios", "0,1.0", "--new-tokens", "4", "--threads", "1", "--precision-floor",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["prompts"] == 2 and set(result["ratios"]) == {"0.0", "1.0"}
    exact = result["ratios"]["1.0"]
    assert exact["agreement"] == 1.0 and abs(exact["kl"]) < 1e-4
    floor = result["full_prefill_bf16"]
    assert floor["prompts"] == 2 and 0.0 <= floor["agreement"] <= 1.0 and floor["kl"] > 0
    assert len(result["per_prompt_full_prefill_bf16"]) == 2 and out.with_suffix(".png").exists()
