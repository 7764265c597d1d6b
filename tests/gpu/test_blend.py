"""Chunk registry, chunk KV store and the blend pipeline on a tiny random Llama (CPU)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from semcache.gpu.blend import BlendConfig, Blender, ChunkEncoder
from semcache.gpu.blend.graphs import piece_bounds
from semcache.gpu.chunks.ids import ChunkRegistry, Segment, chunk_id
from semcache.gpu.chunks.store import ChunkKV, ChunkKVStore
from semcache.gpu.model.loader import random_model
from semcache.gpu.model.runner import ModelRunner
from transformers import LlamaConfig

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[2]
VOCAB = 101


def _tiny_runner(device: str = "cpu") -> ModelRunner:
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2)
    return ModelRunner(random_model(cfg, device, torch.float32, seed=3).model)


@pytest.fixture(scope="module")
def runner() -> ModelRunner:
    return _tiny_runner()


def _spy_selections(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """The chunk rows each ``ops.select_topk`` call of the blend returns, in call order."""
    from semcache.gpu.ops import dispatch as ops

    chosen: list[torch.Tensor] = []
    real_select = ops.select_topk

    def spy_select(scores: torch.Tensor, k: int, *args: object, **kw: object) -> torch.Tensor:
        chosen.append(real_select(scores, k, *args, **kw))  # type: ignore[arg-type]
        return chosen[-1]

    monkeypatch.setattr(ops, "select_topk", spy_select)
    return chosen


def _tokens(n: int, seed: int) -> tuple[int, ...]:
    return tuple(torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(seed)).tolist())


def _chunk(n: int, seed: int) -> Segment:
    ids = _tokens(n, seed)
    return Segment(ids, chunk_id(ids))


def _ids(segments: list[Segment]) -> list[int]:
    return [t for s in segments for t in s.token_ids]


# ----- registry and detection -------------------------------------------------------------------
def test_chunk_id_is_stable_and_distinct() -> None:
    assert chunk_id([1, 2, 3]) == chunk_id((1, 2, 3))
    assert chunk_id([1, 2, 3]) != chunk_id([1, 2, 4]) != chunk_id([3, 2, 1])
    with pytest.raises(ValueError):
        chunk_id([])


def test_find_locates_chunks_anywhere() -> None:
    reg = ChunkRegistry(window=4)
    a, b, c = _tokens(12, 1), _tokens(9, 2), _tokens(20, 3)
    ids = [reg.register(x) for x in (a, b, c)]
    assert reg.register(a) == ids[0] and len(reg) == 3
    seq = list(_tokens(5, 9)) + list(c) + [7] + list(a) + list(b) + list(_tokens(3, 8))
    found = reg.find(seq)
    assert [(m.chunk_id, m.start, m.end) for m in found] == [
        (ids[2], 5, 25), (ids[0], 26, 38), (ids[1], 38, 47)]
    segs = reg.segments(seq)
    assert _ids(segs) == seq
    assert [s.chunk_id for s in segs] == [None, ids[2], None, ids[0], ids[1], None]


def test_find_checks_every_token_not_only_the_hash_window() -> None:
    reg = ChunkRegistry(window=4)
    chunk = _tokens(10, 4)
    reg.register(chunk)
    altered = list(chunk)
    altered[-1] = (altered[-1] + 1) % VOCAB
    assert reg.find(altered) == []
    assert reg.find(list(chunk[:-1])) == []  # truncated at the end of the sequence


def test_find_prefers_the_longest_chunk_and_skips_short_ones() -> None:
    reg = ChunkRegistry(window=4)
    long = _tokens(16, 5)
    short_id = reg.register(long[:8])
    long_id = reg.register(long)
    tiny = reg.register(_tokens(3, 6))  # shorter than the window: explicit use only
    assert [m.chunk_id for m in reg.find(list(long))] == [long_id]
    assert [m.chunk_id for m in reg.find(list(long[:10]))] == [short_id]
    assert tiny in reg and reg.find(list(_tokens(3, 6))) == []


def test_store_is_lru_bounded_in_bytes() -> None:
    def record(seed: int) -> ChunkKV:
        ids = _tokens(4, seed)
        kv = torch.zeros(2, 4, 1, 8)
        return ChunkKV(ids, torch.arange(4), kv, kv.clone())

    one = record(0).nbytes
    store = ChunkKVStore(capacity_bytes=2 * one)
    store.put("a", record(0))
    store.put("b", record(1))
    assert store.get("a") is not None  # "b" is now least recently used
    store.put("c", record(2))
    assert "a" in store and "c" in store and "b" not in store and len(store) == 2
    with pytest.raises(TypeError):
        store.put("d", "not a record")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ChunkKV((1, 2), torch.arange(2), torch.zeros(2, 3, 1, 8), torch.zeros(2, 3, 1, 8))


# ----- blend pipeline ---------------------------------------------------------------------------
def test_full_ratio_equals_full_prefill(runner: ModelRunner) -> None:
    segs = [Segment(_tokens(5, 10)), _chunk(20, 11), _chunk(17, 12), Segment(_tokens(9, 13))]
    full, kv = runner.prefill(_ids(segs))
    res = Blender(runner, anchor_ids=[1, 2]).prefill(segs, BlendConfig(ratio=1.0))
    torch.testing.assert_close(res.logits, full, atol=1e-5, rtol=1e-5)
    for layer in range(runner.num_layers):
        torch.testing.assert_close(res.kv.keys[layer], kv.keys[layer], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(res.kv.values[layer], kv.values[layer], atol=1e-5, rtol=1e-5)
    assert res.stats.recomputed_chunk_tokens == res.stats.chunk_tokens == 37
    assert res.stats.encoded_chunks == 2


@pytest.mark.parametrize("check_layer", [0, 1])
def test_kv_only_prefill_writes_the_same_kv_without_logits(runner: ModelRunner,
                                                           check_layer: int) -> None:  # fmt: skip
    segs = [Segment(_tokens(6, 14)), _chunk(25, 15), _chunk(19, 16), Segment(_tokens(4, 17))]
    blender = Blender(runner)
    cfg = BlendConfig(ratio=0.2, check_layer=check_layer)
    want = blender.prefill(segs, cfg)
    got = blender.prefill(segs, cfg, logits=False)
    assert got.logits is None and want.logits is not None
    assert got.stats.recomputed_chunk_tokens == want.stats.recomputed_chunk_tokens
    assert (got.stats.reused_chunks, want.stats.encoded_chunks) == (2, 2)  # stored by the first
    for layer in range(runner.num_layers):  # the last layer's K/V too: only its output is skipped
        torch.testing.assert_close(got.kv.keys[layer], want.kv.keys[layer], atol=0, rtol=0)
        torch.testing.assert_close(got.kv.values[layer], want.kv.values[layer], atol=0, rtol=0)


def _filled(value: float):
    """A ``fused_kv.new_buffer`` whose buffers start as ``value`` instead of unset."""

    def new_buffer(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        return torch.full(shape, value, dtype=dtype, device=device)

    return new_buffer


@pytest.mark.parametrize(("select", "check_layer", "ratio"),
                         [("deviation", 1, 0.15), ("query", 0, 0.2), ("query", 1, 0.0), ("deviation", 2, 1.0)])
def test_unwritten_fused_rows_are_never_read(runner: ModelRunner, monkeypatch: pytest.MonkeyPatch,
                                             select: str, check_layer: int, ratio: float) -> None:  # fmt: skip
    """The fused buffers are not zeroed: with their rows starting as NaN the blend is unchanged."""
    from semcache.gpu.blend import fused_kv

    segs = [Segment(_tokens(6, 60)), _chunk(21, 61), Segment(_tokens(2, 62)), _chunk(18, 63),
            Segment(_tokens(7, 64))]
    blender = Blender(runner, anchor_ids=[1])
    cfg = BlendConfig(ratio=ratio, check_layer=check_layer, select=select)
    monkeypatch.setattr(fused_kv, "new_buffer", _filled(0.0))
    want = blender.prefill(segs, cfg)
    monkeypatch.setattr(fused_kv, "new_buffer", _filled(float("nan")))
    for logits in (True, False):
        got = blender.prefill(segs, cfg, logits=logits)
        if logits:
            torch.testing.assert_close(got.logits, want.logits, atol=0, rtol=0)
        for layer in range(runner.num_layers):
            torch.testing.assert_close(got.kv.keys[layer], want.kv.keys[layer], atol=0, rtol=0)
            torch.testing.assert_close(got.kv.values[layer], want.kv.values[layer], atol=0, rtol=0)


class _Store:
    """A ``LayerAttention`` over tensors of its own: keeps each layer's K/V, attends there."""

    def __init__(self, runner: ModelRunner) -> None:
        self.runner, self.k, self.v, self.calls = runner, {}, {}, []

    def __call__(self, layer, k, v, q, q_pos):  # type: ignore[no-untyped-def]
        self.calls.append((layer, q is None))
        self.k[layer], self.v[layer] = k.clone(), v.clone()
        if q is None:
            return None
        return self.runner.masked_attention(q, k, v, q_pos, torch.arange(k.shape[0]))


@pytest.mark.parametrize(("select", "check_layer"), [("deviation", 1), ("query", 0), ("query", 1)])
def test_external_attention_store_gets_every_layer_and_the_same_kv(runner: ModelRunner, select: str,
                                                                   check_layer: int) -> None:  # fmt: skip
    segs = [Segment(_tokens(5, 70)), _chunk(19, 71), _chunk(23, 72), Segment(_tokens(6, 73))]
    blender = Blender(runner)
    cfg = BlendConfig(ratio=0.2, check_layer=check_layer, select=select)
    want = blender.prefill(segs, cfg, logits=False)
    store = _Store(runner)
    got = blender.prefill(segs, cfg, logits=False, attention=store)
    n = runner.num_layers
    # the full layers first, then (query pass, if any, then) the main pass from the check layer
    assert store.calls[:check_layer] == [(layer, False) for layer in range(check_layer)]
    assert store.calls[-(n - check_layer):] == [(layer, layer == n - 1) for layer in range(check_layer, n)]
    assert got.stats.recomputed_chunk_tokens == want.stats.recomputed_chunk_tokens
    assert (got.stats.reused_chunks, want.stats.encoded_chunks) == (2, 2)
    for layer in range(runner.num_layers):
        torch.testing.assert_close(store.k[layer], want.kv.keys[layer], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(store.v[layer], want.kv.values[layer], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got.kv.keys[layer], want.kv.keys[layer], atol=1e-5, rtol=1e-5)


class _PrefixStore(_Store):
    """``_Store`` that already holds a full prefill's KV of the first ``m`` positions and keeps
    them: only rows from ``m`` on are written."""

    def __init__(self, runner: ModelRunner, kv, m: int) -> None:  # type: ignore[no-untyped-def]
        super().__init__(runner)
        self.m = m
        self.k = {layer: kv.keys[layer].clone() for layer in range(runner.num_layers)}
        self.v = {layer: kv.values[layer].clone() for layer in range(runner.num_layers)}

    def __call__(self, layer, k, v, q, q_pos):  # type: ignore[no-untyped-def]
        self.calls.append((layer, q is None))
        self.k[layer][self.m:], self.v[layer][self.m:] = k[self.m:], v[self.m:]
        if q is None:
            return None
        return self.runner.masked_attention(q, self.k[layer], self.v[layer], q_pos,
                                            torch.arange(k.shape[0]))  # fmt: skip


@pytest.mark.parametrize("m", [7, 20])  # inside the first plain run / inside the first chunk
def test_rows_the_store_already_holds_are_neither_computed_nor_selected(
        runner: ModelRunner, monkeypatch: pytest.MonkeyPatch, m: int) -> None:  # fmt: skip
    segs = [Segment(_tokens(8, 80)), _chunk(22, 81), _chunk(17, 82), Segment(_tokens(5, 83))]
    _, full = runner.prefill(_ids(segs))
    blender = Blender(runner)
    cfg = BlendConfig(ratio=1.0, select="deviation")
    # r = 1 from m on over the exact KV before m: the full prefill's KV, rows before m untouched
    store = _PrefixStore(runner, full, m)
    res = blender.prefill(segs, cfg, logits=False, attention=store, computed=m)
    assert res.stats.chunk_tokens == res.stats.recomputed_chunk_tokens == 22 + 17 - max(0, m - 8)
    for layer in range(runner.num_layers):
        torch.testing.assert_close(store.k[layer], full.keys[layer], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(store.v[layer], full.values[layer], atol=1e-5, rtol=1e-5)
    # a ratio counts only the chunk tokens from m on, and picks none before it
    chosen = _spy_selections(monkeypatch)
    part = blender.prefill(segs, BlendConfig(ratio=0.3, select="deviation"), logits=False,
                           attention=_PrefixStore(runner, full, m), computed=m)  # fmt: skip
    assert part.stats.recomputed_chunk_tokens == round(0.3 * (39 - max(0, m - 8)))
    assert int(chosen[0].min()) >= m
    with pytest.raises(ValueError, match="attention store"):
        blender.prefill(segs, cfg, computed=m)
    with pytest.raises(ValueError, match="deviation"):
        blender.prefill(segs, BlendConfig(select="query"), attention=store, computed=m)


def test_decoding_from_fused_kv_continues_full_prefill(runner: ModelRunner) -> None:
    segs = [Segment(_tokens(4, 20)), _chunk(15, 21), Segment(_tokens(6, 22))]
    full, kv = runner.prefill(_ids(segs))
    res = Blender(runner).prefill(segs, BlendConfig(ratio=1.0, check_layer=2))
    assert runner.greedy(res.logits, res.kv, 5) == runner.greedy(full, kv, 5)


def test_prompt_without_chunks_equals_prefill(runner: ModelRunner) -> None:
    segs = [Segment(_tokens(11, 30)), Segment(_tokens(7, 31))]
    full, _ = runner.prefill(_ids(segs))
    res = Blender(runner).prefill(segs, BlendConfig(ratio=0.15))
    torch.testing.assert_close(res.logits, full, atol=1e-5, rtol=1e-5)
    assert res.stats.chunk_tokens == 0 and res.stats.effective_ratio == 0.0


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.5])
def test_ratio_accounting(runner: ModelRunner, ratio: float) -> None:
    chunks = [_chunk(30, 40), _chunk(25, 41), _chunk(22, 42)]
    segs = [Segment(_tokens(3, 43)), *chunks, Segment(_tokens(5, 44))]
    res = Blender(runner).prefill(segs, BlendConfig(ratio=ratio, boundary_tokens=2))
    assert res.stats.chunk_tokens == 77
    assert res.stats.recomputed_chunk_tokens == round(ratio * 77)
    assert torch.isfinite(res.logits).all()


def test_reordered_and_fully_cached_prompts(runner: ModelRunner) -> None:
    a, b, c = _chunk(12, 50), _chunk(18, 51), _chunk(9, 52)
    blender = Blender(runner)
    first = blender.prefill([Segment(_tokens(4, 53)), a, b, c, Segment(_tokens(4, 54))])
    assert first.stats.encoded_chunks == 3
    again = blender.prefill([c, a, b, a], BlendConfig(ratio=0.2))  # reordered, repeated, no text
    assert again.stats.reused_chunks == 4 and again.stats.encoded_chunks == 0
    assert len(again.kv) == 51 and torch.isfinite(again.logits).all()
    # the last prompt token is always computed, and counted, even when it is a chunk token
    naive = blender.prefill([b, c], BlendConfig(ratio=0.0))
    assert naive.stats.recomputed_chunk_tokens == 1


def test_auto_detection_matches_explicit_segments(runner: ModelRunner) -> None:
    reg = ChunkRegistry(window=4)
    blender = Blender(runner, registry=reg)
    a, b = _chunk(14, 60), _chunk(11, 61)
    reg.register(a.token_ids)
    reg.register(b.token_ids)
    segs = [Segment(_tokens(6, 62)), b, a, Segment(_tokens(5, 63))]
    cfg = BlendConfig(ratio=0.3)
    explicit = blender.prefill(segs, cfg)
    detected = blender.prefill_tokens(_ids(segs), cfg)
    assert detected.stats.chunk_tokens == 25 and detected.stats.reused_chunks == 2
    torch.testing.assert_close(detected.logits, explicit.logits)


def test_stored_record_with_other_tokens_is_not_reused(runner: ModelRunner) -> None:
    store = ChunkKVStore()
    blender = Blender(runner, store)
    a, b = _chunk(10, 70), _chunk(10, 71)
    store.put(a.chunk_id, ChunkEncoder(runner).encode(b.token_ids))  # wrong tokens under a's id
    res = blender.prefill([a, Segment(_tokens(3, 72))])
    assert res.stats.reused_chunks == 0 and res.stats.encoded_chunks == 1
    record = store.get(a.chunk_id)
    assert record is not None and record.token_ids == a.token_ids


def test_rerotated_chunk_keys_match_keys_computed_at_target_positions(runner: ModelRunner) -> None:
    """Layer-0 keys depend only on token and position: stored+re-rotated == computed in place."""
    from semcache.gpu.ops import dispatch as ops

    chunk = _tokens(16, 80)
    stored = ChunkEncoder(runner, anchor_ids=[3]).encode(chunk)  # positions 1..16
    assert stored.positions.tolist() == list(range(1, 17))
    _, placed = runner.prefill(chunk, start=37)
    moved = ops.rerotate_k(stored.keys[0], torch.full((16,), 36), runner.rope)
    torch.testing.assert_close(moved, placed.keys[0], atol=1e-5, rtol=1e-5)


def test_invalid_inputs(runner: ModelRunner) -> None:
    blender = Blender(runner)
    with pytest.raises(ValueError, match="ratio"):
        BlendConfig(ratio=1.5)
    with pytest.raises(ValueError, match="check_layer"):
        BlendConfig(check_layer=-1)
    with pytest.raises(ValueError, match="deviation.*check_layer"):
        BlendConfig(check_layer=0, select="deviation")
    assert BlendConfig().check_layer == 0 and BlendConfig(select="deviation").check_layer == 1
    with pytest.raises(ValueError, match="check_layer 4"):
        blender.prefill([_chunk(5, 90)], BlendConfig(check_layer=4))
    with pytest.raises(ValueError, match="does not match"):
        blender.prefill([Segment((1, 2, 3), chunk_id([4, 5, 6]))])
    blender.chunk_kv(Segment((4, 5, 6), chunk_id([4, 5, 6])))  # now stored under that id
    with pytest.raises(ValueError, match="does not match"):  # other tokens under a stored id
        blender.prefill([Segment((1, 2, 3), chunk_id([4, 5, 6]))])
    assert blender.store.get(chunk_id([4, 5, 6])).token_ids == (4, 5, 6)
    with pytest.raises(ValueError, match="no segments"):
        blender.prefill([])


def test_speed_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "reuse.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "chunk_reuse.py"), "--device", "cpu",
         "--context", "512", "--layers", "2", "--runs", "1", "--warmup", "0", "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    result = json.loads(out.read_text())
    ctx = result["contexts"][0]
    assert ctx["context"] == 512 and set(ctx["blend_gpu"]) == {"0.05", "0.1", "0.15", "0.2"}
    assert all(ctx[m]["median_ms"] > 0 for m in ("full", "prefix"))


# ----- query-driven selection and the anchor ----------------------------------------------------
@pytest.mark.parametrize("hq,hkv,n,t", [(4, 2, 3, 17), (6, 3, 1, 9), (2, 2, 5, 31)])
def test_attention_mass_matches_explicit_softmax(hq: int, hkv: int, n: int, t: int) -> None:
    from semcache.gpu.ops import dispatch as ops

    g = torch.Generator().manual_seed(hq * 100 + t)
    q, k = torch.randn(n, hq, 8, generator=g), torch.randn(t, hkv, 8, generator=g)
    k_pos = torch.randperm(t, generator=g)
    q_pos = torch.randint(0, t, (n,), generator=g)
    expected = torch.zeros(t)
    for i in range(n):
        for h in range(hq):
            logits = (k[:, h // (hq // hkv)] @ q[i, h]) * 0.3
            logits[k_pos > q_pos[i]] = float("-inf")
            expected += logits.softmax(0)
    mass = ops.attention_mass(q, k, q_pos, k_pos, 0.3)
    torch.testing.assert_close(mass, expected, atol=1e-5, rtol=1e-5)
    assert mass[k_pos > q_pos.max()].abs().max() == 0  # never-visible keys get nothing
    torch.testing.assert_close(mass.sum(), torch.tensor(float(n * hq)))


def test_encoder_with_cached_anchor_equals_prefill_after_anchor(runner: ModelRunner) -> None:
    anchor, chunk = _tokens(9, 100), _tokens(13, 101)
    encoder = ChunkEncoder(runner, anchor_ids=anchor)
    for _ in range(2):  # the second encoding reuses the anchor KV, which must stay unchanged
        stored = encoder.encode(chunk)
        _, kv = runner.prefill(anchor + chunk)
        assert stored.positions.tolist() == list(range(9, 22))
        for layer in range(runner.num_layers):
            torch.testing.assert_close(stored.keys[layer], kv.keys[layer][9:], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(stored.values[layer], kv.values[layer][9:], atol=1e-5,
                                       rtol=1e-5)  # fmt: skip
    assert len(encoder.anchor_kv) == 9  # type: ignore[arg-type]


@pytest.mark.parametrize("check_layer", [0, 1])
def test_query_selection_recomputes_what_the_question_reads(runner: ModelRunner, check_layer: int,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunk tokens chosen are the top-k of the question's attention in the query pass."""
    from semcache.gpu.ops import dispatch as ops

    segs = [Segment(_tokens(4, 110)), _chunk(30, 111), _chunk(26, 112), Segment(_tokens(6, 113))]
    chosen: list[torch.Tensor] = []
    masses: list[torch.Tensor] = []
    real_select, real_mass = ops.select_topk, ops.attention_mass

    def spy_select(scores: torch.Tensor, k: int, *args: object, **kw: object) -> torch.Tensor:
        out = real_select(scores, k, *args, **kw)  # type: ignore[arg-type]
        chosen.append(out)
        return out

    def spy_mass(*args: object, **kw: object) -> torch.Tensor:
        out = real_mass(*args, **kw)  # type: ignore[arg-type]
        masses.append(out)
        return out

    monkeypatch.setattr(ops, "select_topk", spy_select)
    monkeypatch.setattr(ops, "attention_mass", spy_mass)
    res = Blender(runner).prefill(segs, BlendConfig(ratio=0.2, check_layer=check_layer))
    assert len(masses) == runner.num_layers - 1 - check_layer  # every layer after the check layer
    total = torch.stack(masses).sum(0)
    chunk_rows = torch.arange(4, 60)
    expected = chunk_rows[total[4:60].topk(round(0.2 * 56)).indices]
    assert sorted(chosen[0].tolist()) == sorted(expected.tolist())
    assert res.stats.recomputed_chunk_tokens == round(0.2 * 56)
    # deviation selection chooses differently on the same prompt, through the same pipeline
    chosen.clear()
    Blender(runner).prefill(segs, BlendConfig(ratio=0.2, select="deviation"))
    assert sorted(chosen[0].tolist()) != sorted(expected.tolist())
    with pytest.raises(ValueError, match="select"):
        BlendConfig(select="attention")


def test_kernel_blend_matches_the_reference_blend(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Triton path (on CUDA, else the interpreter) selects the tokens the reference selects.

    Its query pass reuses each layer's attention log-sum-exp for the mass of that layer; the
    reference computes the mass from its own softmax.
    """
    chosen = _spy_selections(monkeypatch)
    runner = _tiny_runner("cuda" if torch.cuda.is_available() else "cpu")  # CPU: the interpreter
    segs = [Segment(_tokens(4, 150)), _chunk(30, 151), _chunk(26, 152), Segment(_tokens(6, 153))]
    got = Blender(runner).prefill(segs, BlendConfig(ratio=0.2, impl="triton"))
    want = Blender(runner).prefill(segs, BlendConfig(ratio=0.2, impl="torch"))
    assert torch.equal(torch.sort(chosen[0]).values, torch.sort(chosen[1]).values)
    torch.testing.assert_close(got.logits, want.logits, atol=1e-4, rtol=1e-4)


def test_check_layer_zero_keeps_exact_layer0_kv_and_reuses_the_rest(runner: ModelRunner) -> None:
    """Layer-0 K/V depend on the token and its position only: reused chunk KV is exact there."""
    segs = [Segment(_tokens(4, 120)), _chunk(24, 121), _chunk(19, 122), Segment(_tokens(5, 123))]
    _, full = runner.prefill(_ids(segs))
    blender = Blender(runner, anchor_ids=[1, 2])
    res = blender.prefill(segs, BlendConfig(ratio=0.0, check_layer=0))
    torch.testing.assert_close(res.kv.keys[0], full.keys[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(res.kv.values[0], full.values[0], atol=1e-5, rtol=1e-5)
    # later layers hold the chunks' own KV (computed after the anchor) at naive reuse
    record, hit = blender.chunk_kv(segs[2])
    assert hit
    torch.testing.assert_close(res.kv.values[1][28:47], record.values[1], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(res.kv.values[1][28:47], full.values[1][28:47], atol=1e-3)
    exact = blender.prefill(segs, BlendConfig(ratio=1.0, check_layer=0))
    torch.testing.assert_close(exact.logits, runner.prefill(_ids(segs))[0], atol=1e-5, rtol=1e-5)


def test_check_layer_zero_without_a_question_recomputes_each_chunks_first_tokens(
        runner: ModelRunner, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    chosen = _spy_selections(monkeypatch)
    segs = [Segment(_tokens(3, 130)), _chunk(20, 131), _chunk(20, 132)]  # ends inside a chunk
    res = Blender(runner).prefill(segs, BlendConfig(ratio=0.1, check_layer=0))
    # 4 slots for r = 0.1 of 40 and 1 for the last token: the last token, then the chunks' starts
    assert sorted(chosen[0].tolist()) == [3, 4, 23, 24, 42]
    assert res.stats.recomputed_chunk_tokens == 5


@pytest.mark.cuda
@pytest.mark.parametrize("where", ["gpu", "pinned"])
@pytest.mark.parametrize("check_layer", [0, 1])
def test_query_pass_graphs_match_the_eager_pass_across_one_bucket(check_layer: int,
                                                                  where: str) -> None:  # fmt: skip
    """Prompts of one bucket share a graph (captured in pieces), and stale rows of a longer prompt
    never leak. Records in pinned host memory are uploaded piece by piece."""
    run = _tiny_runner("cuda")
    graphed, eager = Blender(run), Blender(run, cuda_graphs=False)
    assert graphed.graphs is not None and eager.graphs is None
    a, b, c = _chunk(40, 140), _chunk(33, 141), _chunk(21, 142)
    prompts = [
        [Segment(_tokens(5, 143)), a, b, Segment(_tokens(7, 144))],
        [Segment(_tokens(5, 143)), b, a, Segment(_tokens(9, 145))],  # reordered, longer question
        [Segment(_tokens(5, 143)), c, Segment(_tokens(4, 146))],  # shorter: rows left from above
        [Segment(_tokens(5, 143)), b, a, Segment(_tokens(7, 147))],  # the first one's length
    ]
    first = None
    for segs in prompts:
        for blender in (graphed, eager):
            for s in segs:
                if s.chunk_id is not None:
                    record = blender.chunk_kv(s)[0]
                    blender.store.put(s.chunk_id, record.to(run.device) if where == "gpu"
                                      else record.to("cpu", pin_memory=True))  # fmt: skip
        cfg = BlendConfig(ratio=0.2, check_layer=check_layer)
        got, want = graphed.prefill(segs, cfg), eager.prefill(segs, cfg)
        if first is None:  # held while the bucket serves the other prompts
            first = (got.kv, [t.clone() for t in got.kv.keys + got.kv.values])
        torch.testing.assert_close(got.logits, want.logits, atol=1e-4, rtol=1e-4)
        for layer in range(run.num_layers):  # the same tokens were recomputed
            torch.testing.assert_close(got.kv.values[layer], want.kv.values[layer], atol=1e-4,
                                       rtol=1e-4)  # fmt: skip
    assert graphed.graphs.captures == 1 and graphed.graphs.replays == 4
    # a prefill's KV views the bucket's buffers until the bucket is reused: a KV still held then
    # is copied out first, so the first prompt's KV kept its values through three more prompts
    assert first is not None and graphed.graphs.reclaimed > 0
    for now, then in zip(first[0].keys + first[0].values, first[1], strict=True):
        assert torch.equal(now, then)
    pieces = [len(bucket.graphs) for bucket in graphed.graphs._buckets.values()]
    assert pieces == [run.num_layers - check_layer]  # 4 shares, so one layer each here


def test_query_graph_pieces_start_small_and_cover_every_layer() -> None:
    assert piece_bounds(32) == [0, 2, 8, 20, 32]  # a Llama-3-8B pass at check layer 0
    assert piece_bounds(31) == [0, 2, 8, 19, 31]
    assert piece_bounds(4) == [0, 1, 2, 3, 4]
    assert piece_bounds(3) == [0, 1, 2, 3]  # fewer steps than shares: one step per piece
    assert piece_bounds(1) == [0, 1]
    for n in range(1, 40):
        bounds = piece_bounds(n)
        assert bounds[0] == 0 and bounds[-1] == n
        assert all(a < b for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    with pytest.raises(ValueError, match="n_steps"):
        piece_bounds(0)
