"""The vLLM connector's scheduler-side planning, version check and paged slots (no vLLM needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from semcache.gpu.chunks.ids import chunk_id
from semcache.gpu.vllm.compat import UnsupportedVLLMError, check_vllm
from semcache.gpu.vllm.launch import kv_transfer_config, source_shim
from semcache.gpu.vllm.plan import ChunkPlanner, ConnectorConfig, slot_mapping

pytestmark = pytest.mark.unit

WORDS = {"alpha": [11, 12, 13, 14, 15, 16], "beta": [21, 22, 23, 24, 25], "gamma": [31, 32, 33, 34, 35, 36, 37]}


def tokenize(text: str) -> list[int]:
    return [t for w in text.split() for t in WORDS[w]]


def planner(**cfg: object) -> ChunkPlanner:
    return ChunkPlanner(ConnectorConfig(window=4, **cfg), tokenize)  # type: ignore[arg-type]


SYSTEM = [1, 2, 3]
QUESTION = [7, 8, 9]


def test_span_ends_at_last_chunk_in_any_order() -> None:
    p = planner()
    assert p.matched_tokens("r0", SYSTEM + WORDS["alpha"] + WORDS["beta"] + QUESTION, 0,
                            {"semcache": {"chunks": ["alpha", "beta"]}}) == 3 + 6 + 5
    # a later request, other order, no parameters: the registry finds both chunks
    prompt = SYSTEM + WORDS["beta"] + [5] + WORDS["alpha"] + QUESTION
    span = p.span(prompt)
    assert span is not None and span.end == 3 + 5 + 1 + 6 and span.ratio == 0.15
    assert [s.chunk_id for s in span.segments] == [None, chunk_id(WORDS["beta"]), None, chunk_id(WORDS["alpha"])]
    assert [t for s in span.segments for t in s.token_ids] == prompt[:span.end]


def test_unregistered_and_unchanged_prompts_load_nothing() -> None:
    p = planner()
    assert p.matched_tokens("r0", SYSTEM + WORDS["gamma"] + QUESTION, 0, None) == 0
    p.allocated("r0", [4, 5], 0)
    assert p.take({"r0": [4, 5]}) == []
    # a chunk that ends the prompt is not reused: vLLM must compute the last token itself
    p.register_from_params({"semcache": {"chunk_ids": [WORDS["gamma"]]}})
    assert p.matched_tokens("r1", SYSTEM + WORDS["gamma"], 0, None) == 0


def test_local_prefix_hit_moves_the_start_and_specs_use_scheduled_blocks() -> None:
    p = planner(ratio=0.3)
    prompt = SYSTEM + WORDS["alpha"] + WORDS["gamma"] + QUESTION
    params = {"semcache": {"chunks": ["alpha gamma"], "ratio": 0.5}}  # one chunk of 13 tokens
    assert p.matched_tokens("r", prompt, 4, params) == 16 - 4
    p.allocated("r", [9, 3], 12)
    [spec] = p.take({"r": [9, 3, 8]})
    assert (spec.start, spec.end, spec.ratio, spec.block_ids) == (4, 16, 0.5, (9, 3, 8))
    assert p.take({"r": [9, 3, 8]}) == []  # taken once


def test_gate_ratio_is_a_floor_and_bad_params_are_refused() -> None:
    p = ChunkPlanner(ConnectorConfig(window=4, ratio=0.2), tokenize, min_ratio=0.4)
    p.register_from_params({"semcache": {"chunks": ["alpha"]}})
    span = p.span(SYSTEM + WORDS["alpha"] + QUESTION, ratio=0.1)
    assert span is not None and span.ratio == 0.4
    for bad in ({"semcache": {"chunks": "alpha"}}, {"semcache": {"chunk_ids": [[1, "x"]]}},
                {"semcache": {"ratio": 2}}, {"semcache": {"ratio": True}}, {"semcache": []}):
        with pytest.raises(ValueError):
            p.register_from_params(bad)
    assert p.register_from_params({"other": 1}) is None
    with pytest.raises(ValueError, match="unknown semcache connector settings"):
        ConnectorConfig.from_extra({"ratio": 0.1, "typo": 1})
    with pytest.raises(ValueError, match="ratio"):
        ConnectorConfig.from_extra({"ratio": 1.5})


def test_slot_mapping() -> None:
    assert slot_mapping([7, 2], 4, 2, 7) == [30, 31, 8, 9, 10]
    assert slot_mapping([5], 128, 0, 0) == []
    with pytest.raises(ValueError, match="blocks"):
        slot_mapping([7], 4, 0, 5)


def test_version_check() -> None:
    check_vllm("0.32.0", "cpu")
    check_vllm("0.32.0+cpu", "cpu")
    with pytest.raises(UnsupportedVLLMError, match=r"supports vLLM 0\.32\.0, found vLLM 0\.33\.1"):
        check_vllm("0.33.1", "cpu")
    with pytest.raises(UnsupportedVLLMError, match="cpu platform"):
        check_vllm("0.32.0", "cuda")


def test_launch_helpers(tmp_path: Path) -> None:
    shim = source_shim(tmp_path / "src")
    assert (shim / "semcache" / "gpu" / "vllm_connector.py").is_file()
    assert (shim / "semcache" / "__init__.py").resolve().parent.name == "semcache"
    cfg = kv_transfer_config({"ratio": 0.2})
    assert '"kv_connector_module_path": "semcache.gpu.vllm_connector"' in cfg and '"ratio": 0.2' in cfg
