"""Each Triton kernel against its pure-torch reference (CUDA, or the Triton interpreter on CPU)."""

from __future__ import annotations

import math

import pytest
import torch
from semcache.gpu.model.rope import RopeConfig
from semcache.gpu.ops import dispatch as ops
from semcache.gpu.ops.attention_mass.reference import attention_mass_ref
from semcache.gpu.ops.attention_mass.triton import attention_mass
from semcache.gpu.ops.deviation.reference import token_deviation_ref
from semcache.gpu.ops.deviation.triton import token_deviation
from semcache.gpu.ops.partial_attention.plan import gqa_pack
from semcache.gpu.ops.partial_attention.reference import partial_attention_ref
from semcache.gpu.ops.partial_attention.triton import partial_attention, plan_partial_attention
from semcache.gpu.ops.rope_rerotate.reference import rerotate_k_ref
from semcache.gpu.ops.rope_rerotate.triton import rope_rerotate
from semcache.gpu.ops.scatter.reference import gather_rows_ref, scatter_rows_ref
from semcache.gpu.ops.scatter.triton import gather_rows, scatter_rows

pytestmark = pytest.mark.gpu

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float32, torch.bfloat16] + ([torch.float16] if DEVICE == "cuda" else [])
# (rms error / rms of the reference, max abs error) per dtype; the bf16 / fp16 bounds sit a few
# output ulps above the rounding of results of magnitude ~1, far below the O(1) error of a bug.
TOL = {torch.float32: (1e-5, 1e-4), torch.bfloat16: (1e-2, 4e-2), torch.float16: (2e-3, 5e-3)}
SIZES = [1, 63, 123, 431]
HEADS = [(9, 3), (8, 8)]
ROPES = {
    "llama3": RopeConfig(128, 128, 500000.0, "llama3", (("factor", 8.0), ("high_freq_factor", 4.0),
                         ("low_freq_factor", 1.0), ("original_max_position_embeddings", 8192.0))),
    "partial-yarn": RopeConfig(64, 32, 10000.0, "yarn", (
        ("attention_factor", 1.1386), ("beta_fast", 32.0), ("beta_slow", 1.0), ("factor", 4.0),
        ("original_max_position_embeddings", 2048.0), ("truncate", 1.0))),
    "default-d64": RopeConfig(64, 64, 10000.0),
}  # fmt: skip


def dt_id(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def assert_matches(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> None:
    rms_tol, max_tol = TOL[dtype]
    out, ref = out.float(), ref.float()
    assert torch.isfinite(out).all(), "kernel output has NaN/inf (unwritten or broken)"
    err = out - ref
    max_err = err.abs().max().item() if err.numel() else 0.0
    ref_rms = ref.pow(2).mean().sqrt().item() if ref.numel() else 0.0
    rms_ratio = err.pow(2).mean().sqrt().item() / max(ref_rms, 1e-12) if err.numel() else 0.0
    assert rms_ratio <= rms_tol and max_err <= max_tol, (rms_ratio, max_err)


def randn(*shape: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(device=DEVICE, dtype=dtype)


@pytest.mark.parametrize("rope", list(ROPES))
@pytest.mark.parametrize("t", SIZES, ids=lambda t: f"T{t}")
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_rope_rerotate(rope: str, t: int, dtype: torch.dtype) -> None:
    cfg = ROPES[rope]
    k = randn(t, 3, cfg.head_dim, dtype=dtype, seed=t)
    g = torch.Generator().manual_seed(t + 1)
    delta = torch.randint(-6000, 6000, (t,), generator=g).to(DEVICE)
    out = torch.full_like(k, float("nan"))
    rope_rerotate(k, delta, cfg.inv_freq(DEVICE), cfg.rotary_dim, out=out)
    assert_matches(out, rerotate_k_ref(k, delta, cfg), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dt_id)
def test_rope_rerotate_in_place_and_strided(dtype: torch.dtype) -> None:
    cfg = ROPES["partial-yarn"]
    base = randn(63, 4, cfg.head_dim, dtype=dtype, seed=5)
    k = base[:, 1:3]  # non-contiguous heads view
    delta = torch.arange(63, device=DEVICE) * 37 - 1000
    ref = rerotate_k_ref(k, delta, cfg)
    rope_rerotate(k, delta, cfg.inv_freq(DEVICE), cfg.rotary_dim, out=k)
    assert_matches(k, ref, dtype)


@pytest.mark.parametrize("rope", ["llama3", "partial-yarn"])
@pytest.mark.parametrize("t", [1, 45], ids=lambda t: f"T{t}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dt_id)
def test_rope_rerotate_places_layers_and_values(rope: str, t: int, dtype: torch.dtype) -> None:
    """Chunk placement: every layer's keys re-rotated and its values copied, into rows of a
    larger cache (layer and row strides of the destination differ from the source's)."""
    cfg = ROPES[rope]
    layers, heads, total, at = 3, 4, t + 17, 9
    k = randn(layers, t, heads, cfg.head_dim, dtype=dtype, seed=t)
    v = randn(layers, t, heads, cfg.head_dim, dtype=dtype, seed=t + 3)
    delta = torch.randint(-5000, 5000, (t,), generator=torch.Generator().manual_seed(t)).to(DEVICE)
    fused_k = torch.full((layers, total, heads, cfg.head_dim), float("nan"), dtype=dtype,
                         device=DEVICE)  # fmt: skip
    fused_v = torch.full_like(fused_k, float("nan"))
    rope_rerotate(k, delta, cfg.inv_freq(DEVICE), cfg.rotary_dim, out=fused_k[:, at:at + t],
                  v=v, v_out=fused_v[:, at:at + t])  # fmt: skip
    for layer in range(layers):
        assert_matches(fused_k[layer, at:at + t], rerotate_k_ref(k[layer], delta, cfg), dtype)
    assert torch.equal(fused_v[:, at:at + t], v)
    outside = torch.cat((fused_k[:, :at], fused_k[:, at + t:], fused_v[:, :at], fused_v[:, at + t:]), 1)
    assert outside.isnan().all(), "rows outside the chunk were written"


def test_place_rotated_dispatch_matches_reference() -> None:
    cfg = ROPES["default-d64"]
    k = randn(2, 30, 3, 64, dtype=torch.float32, seed=1)
    v = randn(2, 30, 3, 64, dtype=torch.float32, seed=2)
    delta = torch.arange(30, device=DEVICE) * 11 - 100
    outs = {}
    for impl in ("triton", "torch"):
        k_out, v_out = torch.zeros(2, 40, 3, 64, device=DEVICE), torch.zeros(2, 40, 3, 64, device=DEVICE)
        ops.place_rotated(k, v, k_out[:, 5:35], v_out[:, 5:35], delta, cfg, impl=impl)
        outs[impl] = (k_out, v_out)
    for layer in range(2):
        assert_matches(outs["torch"][0][layer, 5:35], rerotate_k_ref(k[layer], delta, cfg),
                       torch.float32)  # fmt: skip
    assert_matches(outs["triton"][0], outs["torch"][0], torch.float32)
    assert torch.equal(outs["triton"][1], outs["torch"][1])
    assert torch.equal(outs["torch"][1][:, 5:35], v)
    with pytest.raises(ValueError, match="shape"):
        ops.place_rotated(k, v[:1], k, v, delta, cfg)
    with pytest.raises(TypeError, match="delta"):
        ops.place_rotated(k, v, k, v, delta[:-1], cfg)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dt_id)
@pytest.mark.parametrize("rope", list(ROPES))
def test_place_rotated_one_shift_on_cpu_matches_reference(rope: str, dtype: torch.dtype) -> None:
    """The CPU path for a chunk's single shift (a rotation-matrix GEMM) against the reference,
    with llama3 / yarn scaling and partial rotary dims; the reference keeps mixed shifts."""
    cfg = ROPES[rope]
    g = torch.Generator().manual_seed(7)
    k, v = (torch.randn(3, 23, 2, cfg.head_dim, generator=g).to(dtype) for _ in range(2))
    for delta in (torch.full((23,), 517), torch.full((23,), -38), torch.arange(23) * 5 - 40):
        k_out = torch.full((3, 30, 2, cfg.head_dim), float("nan"), dtype=dtype)
        v_out = torch.full_like(k_out, float("nan"))
        ops.place_rotated(k, v, k_out[:, 4:27], v_out[:, 4:27], delta, cfg, impl="auto")
        for layer in range(3):
            assert_matches(k_out[layer, 4:27], rerotate_k_ref(k[layer], delta, cfg), dtype)
        assert torch.equal(v_out[:, 4:27], v)
        assert k_out[:, :4].isnan().all() and k_out[:, 27:].isnan().all()
    there, back = torch.empty_like(k), torch.empty_like(k)
    ops.place_rotated(k, v, there, torch.empty_like(v), torch.full((23,), 300), cfg)
    ops.place_rotated(there, v, back, torch.empty_like(v), torch.full((23,), -300), cfg)
    assert_matches(back, k, dtype)  # forth and back


@pytest.mark.parametrize("d", [64, 128], ids=lambda d: f"D{d}")
@pytest.mark.parametrize("t", SIZES, ids=lambda t: f"T{t}")
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_token_deviation(d: int, t: int, dtype: torch.dtype) -> None:
    cached = randn(t, 3, d, dtype=dtype, seed=t)
    fresh = randn(t, 3, d, dtype=dtype, seed=t + 7)
    fresh[: t // 2] = cached[: t // 2]  # zero deviation on some tokens
    out = torch.full((t,), float("nan"), device=DEVICE)
    token_deviation(cached, fresh, out=out)
    ref = token_deviation_ref(cached, fresh)
    assert_matches(out, ref, torch.float32)  # fp32 sums of the same rounded inputs


def make_attention_case(t: int, hq: int, hkv: int, d: int, dtype: torch.dtype, layout: str,
                        frac: float = 0.2):  # fmt: skip
    q_full = randn(t, hq, d, dtype=dtype, seed=t + d)
    k = randn(t, hkv, d, dtype=dtype, seed=t + d + 1)
    v = randn(t, hkv, d, dtype=dtype, seed=t + d + 2)
    g = torch.Generator().manual_seed(t)
    n_sel = max(1, math.ceil(frac * t))
    sel = torch.randperm(t, generator=g)[:n_sel].to(DEVICE)  # unsorted selection
    k_pos = torch.arange(t, device=DEVICE) + 17
    if layout == "shuffled-kv":  # keys not in position order: skipping must stay exact
        perm = torch.randperm(t, generator=g).to(DEVICE)
        k, v, k_pos = k[perm], v[perm], k_pos[perm]
        q_pos = k_pos[sel]
    else:
        q_pos = k_pos[sel]
    return q_full[sel].contiguous(), k, v, q_pos, k_pos


def run_attention_case(t: int, hq: int, hkv: int, d: int, dtype: torch.dtype, layout: str,
                       use_plan: bool = False, num_splits: int | None = None,
                       pack: int = 1) -> None:  # fmt: skip
    q, k, v, q_pos, k_pos = make_attention_case(t, hq, hkv, d, dtype, layout)
    bm, bn = (16, 32) if t < 200 else (64, 64)  # small T still spans several key blocks
    bm *= pack if bm < 32 else 1  # tiles of >= 16 rows; small T still spans several query blocks
    plan = plan_partial_attention(q_pos, k_pos, bm // pack, bn, pack) if use_plan else None
    out = torch.full_like(q, float("nan"))
    partial_attention(q, k, v, q_pos, k_pos, d**-0.5, block_m=bm, block_n=bn, out=out, plan=plan,
                      num_splits=num_splits, pack=pack)  # fmt: skip
    assert_matches(out, partial_attention_ref(q, k, v, q_pos, k_pos, d**-0.5), dtype)


@pytest.mark.parametrize("hq,hkv", HEADS, ids=lambda h: str(h))
@pytest.mark.parametrize("d", [64, 128], ids=lambda d: f"D{d}")
@pytest.mark.parametrize("t", SIZES, ids=lambda t: f"T{t}")
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_partial_attention(hq: int, hkv: int, d: int, t: int, dtype: torch.dtype) -> None:
    run_attention_case(t, hq, hkv, d, dtype, "sorted-kv")


@pytest.mark.parametrize("t", SIZES, ids=lambda t: f"T{t}")
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_partial_attention_keys_out_of_position_order(t: int, dtype: torch.dtype) -> None:
    run_attention_case(t, 9, 3, 64, dtype, "shuffled-kv", use_plan=True)


@pytest.mark.parametrize("splits", [2, 3], ids=lambda s: f"splits{s}")
@pytest.mark.parametrize("t", [123, 431], ids=lambda t: f"T{t}")
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_partial_attention_split_keys(splits: int, t: int, dtype: torch.dtype) -> None:
    run_attention_case(t, 9, 3, 64, dtype, "sorted-kv", num_splits=splits)


@pytest.mark.parametrize("hq,hkv,pack", [(8, 2, 4), (8, 2, 2), (12, 3, 4), (6, 6, 1)],
                         ids=lambda x: str(x))  # fmt: skip
@pytest.mark.parametrize("case", ["plain", "splits", "shuffled-kv"])
@pytest.mark.parametrize("t", [77, 431], ids=lambda t: f"T{t}")
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_partial_attention_packed_gqa_heads(hq: int, hkv: int, pack: int, case: str, t: int,
                                            dtype: torch.dtype) -> None:  # fmt: skip
    run_attention_case(t, hq, hkv, 64, dtype, "shuffled-kv" if case == "shuffled-kv" else "sorted-kv",
                       use_plan=case != "splits", num_splits=3 if case == "splits" else None,
                       pack=pack)  # fmt: skip


def test_gqa_pack_is_a_power_of_two_dividing_the_group() -> None:
    assert [gqa_pack(g) for g in (1, 2, 3, 4, 6, 7, 8, 16)] == [1, 2, 1, 4, 2, 1, 4, 4]


def test_partial_attention_pack_must_divide_the_group() -> None:
    q, k, v, q_pos, k_pos = make_attention_case(40, 6, 2, 16, torch.float32, "sorted-kv")
    with pytest.raises(AssertionError, match="GQA group"):
        partial_attention(q, k, v, q_pos, k_pos, 0.25, block_m=16, pack=2)


@pytest.mark.parametrize("splits", [1, 2], ids=lambda s: f"splits{s}")
def test_partial_attention_query_seeing_no_key_gets_zeros(splits: int) -> None:
    q, k, v, _, k_pos = make_attention_case(63, 8, 8, 64, torch.float32, "sorted-kv")
    q_pos = torch.full((q.shape[0],), 5, device=DEVICE)  # below every key position (>= 17)
    q_pos[::2] = 40
    out = torch.full_like(q, float("nan"))
    partial_attention(q, k, v, q_pos, k_pos, 0.125, block_m=16, block_n=16, out=out,
                      num_splits=splits)  # fmt: skip
    assert torch.equal(out[1::2], torch.zeros_like(out[1::2]))
    assert_matches(out, partial_attention_ref(q, k, v, q_pos, k_pos, 0.125), torch.float32)


def make_mass_case(nq: int, t: int, hq: int, hkv: int, d: int, dtype: torch.dtype):
    q = randn(nq, hq, d, dtype=dtype, seed=nq + t + d)
    k = randn(t, hkv, d, dtype=dtype, seed=nq + t + d + 1)
    k_pos = torch.arange(t, device=DEVICE) + 3
    # question-like queries near the end, plus one in the middle that sees only part of the keys
    q_pos = torch.arange(t - nq, t, device=DEVICE) + 3
    q_pos[0] = t // 2
    return q, k, q_pos, k_pos


def assert_mass_matches(out: torch.Tensor, q, k, q_pos, k_pos, scale: float) -> None:
    # the reference on fp32 copies of the inputs: both sides then differ only by rounding
    ref = attention_mass_ref(q.float(), k.float(), q_pos, k_pos, scale)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    tol = 1e-4 if q.dtype == torch.float32 else 3e-2
    assert torch.allclose(out, ref, rtol=tol, atol=tol * float(ref.max())), (out - ref).abs().max()
    # every row that sees a key hands out exactly one unit of attention
    rows_seen = int((q_pos >= k_pos.min()).sum()) * q.shape[1]
    assert abs(float(out.sum()) - rows_seen) < 1e-3 * rows_seen


@pytest.mark.parametrize("hq,hkv", HEADS, ids=lambda h: str(h))
@pytest.mark.parametrize("d", [64, 128], ids=lambda d: f"D{d}")
@pytest.mark.parametrize("t", SIZES[1:], ids=lambda t: f"T{t}")
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_attention_mass(hq: int, hkv: int, d: int, t: int, dtype: torch.dtype) -> None:
    nq = min(t, 21)
    q, k, q_pos, k_pos = make_mass_case(nq, t, hq, hkv, d, dtype)
    out = attention_mass(q, k, q_pos, k_pos, d**-0.5, block_m=16, block_n=32)
    assert_mass_matches(out, q, k, q_pos, k_pos, d**-0.5)


@pytest.mark.parametrize("splits", [2, 5], ids=lambda s: f"splits{s}")
@pytest.mark.parametrize("t", [123, 431], ids=lambda t: f"T{t}")
def test_attention_mass_split_keys(splits: int, t: int) -> None:
    q, k, q_pos, k_pos = make_mass_case(17, t, 9, 3, 64, torch.float32)
    q_pos[1] = 1  # sees no key (>= 3): empty in every split
    out = attention_mass(q, k, q_pos, k_pos, 0.125, block_m=16, block_n=16, num_splits=splits)
    assert_mass_matches(out, q, k, q_pos, k_pos, 0.125)


@pytest.mark.parametrize("splits", [1, 3], ids=lambda s: f"splits{s}")
@pytest.mark.parametrize("hq,hkv,pack", [(8, 2, 4), (9, 3, 1)], ids=lambda x: str(x))
def test_partial_attention_lse_out_feeds_attention_mass(splits: int, hq: int, hkv: int,
                                                        pack: int) -> None:  # fmt: skip
    t, d, scale = 301, 64, 0.125
    q, k, q_pos, k_pos = make_mass_case(19, t, hq, hkv, d, torch.float32)
    q_pos[2] = 1  # sees no key (>= 3)
    v = randn(t, hkv, d, dtype=torch.float32, seed=5)
    lse = torch.full((q.shape[0], hq), float("nan"), device=DEVICE)
    partial_attention(q, k, v, q_pos, k_pos, scale, block_m=16 * pack, block_n=32, pack=pack,
                      num_splits=splits, lse_out=lse)  # fmt: skip
    # the reference: log2 of the sum of exp2(scaled logits) over the visible keys
    logits = torch.einsum("qhd,khd->hqk", q, k.repeat_interleave(hq // hkv, dim=1)) * scale
    logits = logits.masked_fill(k_pos[None, None, :] > q_pos[None, :, None], float("-inf"))
    ref = (torch.logsumexp(logits, dim=-1) / math.log(2)).T
    assert torch.equal(torch.isinf(lse), torch.isinf(ref)) and bool(torch.isinf(lse[2]).all())
    seen = torch.isfinite(ref)
    assert torch.allclose(lse[seen], ref[seen], rtol=1e-5, atol=1e-4)
    with_lse = attention_mass(q, k, q_pos, k_pos, scale, block_m=16, block_n=32, lse=lse)
    assert_mass_matches(with_lse, q, k, q_pos, k_pos, scale)
    own = attention_mass(q, k, q_pos, k_pos, scale, block_m=16, block_n=32)
    assert torch.allclose(with_lse, own, rtol=1e-5, atol=1e-5)


def test_lse_needs_the_triton_path() -> None:
    q, k, q_pos, k_pos = make_mass_case(3, 40, 4, 2, 16, torch.float32)
    lse = torch.empty((3, 4), device=DEVICE)
    with pytest.raises(ValueError, match="Triton"):
        ops.partial_attention(q, k, k, q_pos, k_pos, 0.25, impl="torch", lse_out=lse)
    with pytest.raises(ValueError, match="Triton"):
        ops.attention_mass(q, k, q_pos, k_pos, 0.25, impl="torch", lse=lse)


def test_attention_mass_query_seeing_no_key_adds_nothing_and_runs_repeat_exactly() -> None:
    q, k, q_pos, k_pos = make_mass_case(9, 63, 8, 2, 64, torch.float32)
    q_pos[:4] = 1  # below every key position (>= 3)
    out = attention_mass(q, k, q_pos, k_pos, 0.125, block_m=16, block_n=16)
    assert torch.isfinite(out).all()
    assert_mass_matches(out, q, k, q_pos, k_pos, 0.125)
    again = attention_mass(q, k, q_pos, k_pos, 0.125, block_m=16, block_n=16)
    assert torch.equal(out, again)  # fixed summation order: a selection never flips on a rerun
    empty = attention_mass(q[:0], k, q_pos[:0], k_pos, 0.125)
    assert torch.equal(empty, torch.zeros(63, device=DEVICE))


@pytest.mark.parametrize("t", SIZES, ids=lambda t: f"T{t}")
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_scatter_and_gather_rows(t: int, dtype: torch.dtype) -> None:
    src = randn(t, 3, 64, dtype=dtype, seed=t)
    g = torch.Generator().manual_seed(t)
    idx = torch.randperm(t, generator=g)[: max(1, t // 3)].to(DEVICE)
    out = torch.full((idx.shape[0], 3, 64), float("nan"), device=DEVICE, dtype=dtype)
    gather_rows(src, idx, out=out)
    assert torch.equal(out, gather_rows_ref(src, idx))
    dst = randn(t, 3, 64, dtype=dtype, seed=t + 3)
    expected = dst.clone()
    rows = randn(idx.shape[0], 3, 64, dtype=dtype, seed=t + 4)
    scatter_rows(dst, idx, rows)
    scatter_rows_ref(expected, idx, rows)
    assert torch.equal(dst, expected)


def test_ops_dispatch_matches_reference() -> None:
    cfg = ROPES["default-d64"]
    k = randn(63, 3, 64, dtype=torch.float32, seed=0)
    delta = torch.arange(63, device=DEVICE)
    for impl in ("triton", "torch", "auto"):
        assert_matches(ops.rerotate_k(k, delta, cfg, impl=impl), rerotate_k_ref(k, delta, cfg),
                       torch.float32)  # fmt: skip
    assert ops.select_topk(ops.token_deviation(k, k * 2, impl="triton"), 5).shape == (5,)
    q_pos, k_pos = torch.arange(50, 63, device=DEVICE), torch.arange(63, device=DEVICE)
    masses = [ops.attention_mass(k[50:], k, q_pos, k_pos, 0.125, impl=i) for i in ("triton", "torch")]
    assert torch.allclose(masses[0], masses[1], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="impl"):
        ops.rerotate_k(k, delta, cfg, impl="cuda")


@pytest.mark.cuda
@pytest.mark.parametrize("pack", [1, 4], ids=lambda p: f"pack{p}")
@pytest.mark.parametrize("frac", [0.05, 0.15])
def test_partial_attention_full_size_llama8b(frac: float, pack: int) -> None:
    t, hq, hkv, d = 8192, 32, 8, 128
    q, k, v, q_pos, k_pos = make_attention_case(t, hq, hkv, d, torch.bfloat16, "sorted-kv", frac)
    out = torch.full_like(q, float("nan"))
    partial_attention(q, k, v, q_pos, k_pos, d**-0.5, out=out, block_m=64 if pack == 1 else 128,
                      pack=pack)  # fmt: skip
    assert_matches(out, partial_attention_ref(q, k, v, q_pos, k_pos, d**-0.5), torch.bfloat16)


@pytest.mark.cuda
def test_rerotate_full_size() -> None:
    cfg = ROPES["llama3"]
    k = randn(8192, 8, 128, dtype=torch.bfloat16, seed=0)
    delta = torch.randint(-8192, 8192, (8192,), device=DEVICE)
    out = torch.full_like(k, float("nan"))
    rope_rerotate(k, delta, cfg.inv_freq(DEVICE), cfg.rotary_dim, out=out)
    assert_matches(out, rerotate_k_ref(k, delta, cfg), torch.bfloat16)


@pytest.mark.cuda
def test_place_rotated_full_size() -> None:
    """One 1,024-token chunk of a Llama-3-8B shape, 31 layers, into an 8K fused cache."""
    cfg = ROPES["llama3"]
    k = randn(31, 1024, 8, 128, dtype=torch.bfloat16, seed=0)
    v = randn(31, 1024, 8, 128, dtype=torch.bfloat16, seed=1)
    delta = torch.full((1024,), 3000, device=DEVICE)
    fused_k = torch.zeros(31, 8192, 8, 128, dtype=torch.bfloat16, device=DEVICE)
    fused_v = torch.zeros_like(fused_k)
    ops.place_rotated(k, v, fused_k[:, 4096:5120], fused_v[:, 4096:5120], delta, cfg)
    for layer in (0, 30):
        assert_matches(fused_k[layer, 4096:5120], rerotate_k_ref(k[layer], delta, cfg), torch.bfloat16)
    assert torch.equal(fused_v[:, 4096:5120], v)


@pytest.mark.cuda
def test_attention_mass_full_size_llama8b() -> None:
    q, k, q_pos, k_pos = make_mass_case(64, 8192, 32, 8, 128, torch.bfloat16)
    assert_mass_matches(attention_mass(q, k, q_pos, k_pos, 128**-0.5), q, k, q_pos, k_pos,
                        128**-0.5)  # fmt: skip
