"""The runner's fused layer kernels (RMSNorm, RoPE + Q/K/V split, SiLU * up) against the HF maths."""

from __future__ import annotations

import pytest
import torch
from semcache.gpu.model.rope import RopeConfig, cos_sin
from semcache.gpu.ops import dispatch as ops
from semcache.gpu.ops.rms_norm.reference import rms_norm_ref
from semcache.gpu.ops.rms_norm.triton import rms_norm
from semcache.gpu.ops.rope_apply.reference import apply_rope_ref
from semcache.gpu.ops.rope_apply.triton import rope_apply
from semcache.gpu.ops.silu_mul.reference import silu_mul_ref
from semcache.gpu.ops.silu_mul.triton import silu_mul

from tests.gpu.test_kernels import DEVICE, DTYPES, SIZES, TOL, dt_id, randn


def assert_matches(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> None:
    """RMS error ratio, and the largest error relative to max(|ref|, 1).

    These outputs reach magnitudes of 10-100, where one bf16 ulp is 0.06-0.5, so the absolute
    bound of the KV kernels' tests becomes relative here; a wrong formula still misses it by 10x.
    """
    rms_tol, max_tol = TOL[dtype]
    out, ref = out.float(), ref.float()
    assert torch.isfinite(out).all(), "kernel output has NaN/inf (unwritten or broken)"
    err = (out - ref).abs()
    rms_ratio = err.pow(2).mean().sqrt().item() / max(ref.pow(2).mean().sqrt().item(), 1e-12)
    max_rel = (err / ref.abs().clamp_min(1.0)).max().item()
    assert rms_ratio <= rms_tol and max_rel <= max_tol, (rms_ratio, max_rel)

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("c", [64, 576, 1000], ids=lambda c: f"C{c}")
@pytest.mark.parametrize("t", SIZES, ids=lambda t: f"T{t}")
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_rms_norm(c: int, t: int, dtype: torch.dtype) -> None:
    x = randn(t, c, dtype=dtype, seed=t + c) * 3
    w = 1 + 0.1 * randn(c, dtype=dtype, seed=c)  # norm weights sit near 1, outputs O(1)
    assert_matches(rms_norm(x, w, 1e-5), rms_norm_ref(x, w, 1e-5), dtype)


@pytest.mark.parametrize("heads", [(9, 3), (4, 4)], ids=lambda h: f"H{h[0]}-{h[1]}")
@pytest.mark.parametrize("t", SIZES, ids=lambda t: f"T{t}")
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_rope_apply_splits_and_rotates(heads: tuple[int, int], t: int, dtype: torch.dtype) -> None:
    hq, hkv, d = heads[0], heads[1], 64
    cfg = RopeConfig(d, d, 10000.0)
    positions = torch.randint(0, 5000, (t,), generator=torch.Generator().manual_seed(t)).to(DEVICE)
    cos, sin = cos_sin(cfg, positions, dtype)
    base = randn(t, (hq + 2 * hkv) * d + 8, dtype=dtype, seed=t)
    qkv = base[:, 8:]  # a row stride wider than the row, as a slice of a wider projection
    q, k, v = rope_apply(qkv, cos, sin, hq, hkv)
    rq, rk, rv = qkv.split((hq * d, hkv * d, hkv * d), dim=-1)
    assert_matches(q, apply_rope_ref(rq.reshape(t, hq, d), cos, sin), dtype)
    assert_matches(k, apply_rope_ref(rk.reshape(t, hkv, d), cos, sin), dtype)
    assert torch.equal(v, rv.reshape(t, hkv, d)), "V must be copied exactly"
    assert q.is_contiguous() and k.is_contiguous() and v.is_contiguous()


def test_rope_apply_equals_the_generic_rotation_at_positions() -> None:
    # the fused kernel applied at position p equals rotating by delta = p from position 0
    d, t = 64, 37
    cfg = RopeConfig(d, d, 10000.0)
    positions = torch.arange(t, device=DEVICE) * 11
    cos, sin = cos_sin(cfg, positions, torch.float32)
    qkv = randn(t, 3 * d, dtype=torch.float32, seed=3)
    q, k, _ = rope_apply(qkv, cos, sin, 1, 1)
    k_ref = ops.rerotate_k(qkv[:, d:2 * d].reshape(t, 1, d).contiguous(), positions, cfg, impl="torch")
    assert_matches(k, k_ref, torch.float32)


@pytest.mark.parametrize("n", [64, 1536, 2000], ids=lambda n: f"I{n}")
@pytest.mark.parametrize("t", SIZES, ids=lambda t: f"T{t}")
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_silu_mul(n: int, t: int, dtype: torch.dtype) -> None:
    gate_up = randn(t, 2 * n, dtype=dtype, seed=t + n) * 4
    assert_matches(silu_mul(gate_up), silu_mul_ref(gate_up), dtype)


def test_ops_dispatch_checks_shapes() -> None:
    x = randn(5, 64, dtype=torch.float32, seed=0)
    with pytest.raises(ValueError):
        ops.rms_norm(x, torch.ones(63, device=DEVICE), 1e-5, impl="triton")
    with pytest.raises(ValueError):
        ops.rope_qkv(randn(5, 101, dtype=torch.float32, seed=1), x, x, 2, 1, impl="triton")
    with pytest.raises(ValueError):
        ops.silu_mul(randn(5, 7, dtype=torch.float32, seed=2), impl="triton")
