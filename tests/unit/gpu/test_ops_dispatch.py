"""The ops dispatch: every op's folder holds its kernel beside its reference, and ``route``
picks the Triton kernel, the CPU fast path or the reference as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from semcache.gpu.model.rope import RopeConfig
from semcache.gpu.ops import dispatch as ops

pytestmark = pytest.mark.unit

OPS_DIR = Path(__file__).resolve().parents[3] / "gpu" / "ops"


@pytest.mark.parametrize("name", sorted(ops.OPS))
def test_each_op_has_its_reference_and_kernel_side_by_side(name: str) -> None:
    op = ops.OPS[name]
    assert op.reference.__module__.endswith(".reference"), op.reference.__module__
    folder = op.reference.__module__.split(".")[-2]
    assert (OPS_DIR / folder / "reference.py").is_file()
    if op.folder is not None:
        assert op.folder == folder and (OPS_DIR / folder / "triton.py").is_file()
    if op.cpu is not None:
        assert op.cpu.__module__ == f"semcache.gpu.ops.{folder}.cpu"


def test_route_on_cpu_tensors() -> None:
    t = torch.zeros(3)
    assert ops.route("rms_norm", "auto", t) == ops.REFERENCE
    assert ops.route("rms_norm", "triton", t) == ops.TRITON
    assert ops.route("partial_attention", "auto", t) == ops.CPU
    assert ops.route("partial_attention", "auto", t, cpu_applies=False) == ops.REFERENCE
    assert ops.route("partial_attention", "torch", t) == ops.REFERENCE
    with pytest.raises(ValueError, match="impl must be one of"):
        ops.route("rms_norm", "cuda", t)


def test_the_cpu_fast_paths_compute_the_reference() -> None:
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(5, 4, 16, generator=g), torch.randn(9, 2, 16, generator=g)
    v = torch.randn(9, 2, 16, generator=g)
    q_pos, k_pos = torch.tensor([0, 2, 4, 7, 8]), torch.arange(9)
    plan = ops.plan_partial_attention(q_pos, k_pos, 2)
    fast = ops.partial_attention(q, k, v, q_pos, k_pos, 0.25, plan=plan)
    ref = ops.partial_attention(q, k, v, q_pos, k_pos, 0.25, impl="torch")
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)

    cfg = RopeConfig(head_dim=16, rotary_dim=16, theta=10000.0)
    kk, vv = torch.randn(3, 6, 2, 16, generator=g), torch.randn(3, 6, 2, 16, generator=g)
    delta = torch.full((6,), 37)
    outs = [torch.empty_like(kk) for _ in range(4)]
    ops.place_rotated(kk, vv, outs[0], outs[1], delta, cfg)  # one shift: the GEMM
    ops.place_rotated(kk, vv, outs[2], outs[3], delta, cfg, impl="torch")
    torch.testing.assert_close(outs[0], outs[2], atol=1e-5, rtol=1e-5)
    assert torch.equal(outs[1], vv) and torch.equal(outs[3], vv)
