"""The Llama MLP's ``silu(gate) * up`` on the fused gate/up projection, in one pass."""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _silu_mul_kernel(GU, OUT, N_COLS, stride_g, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N_COLS
    g = tl.load(GU + row * stride_g + offs, mask=mask, other=0.0)
    u = tl.load(GU + row * stride_g + N_COLS + offs, mask=mask, other=0.0).to(tl.float32)
    gf = g.to(tl.float32)
    act = (gf / (1.0 + tl.exp(-gf))).to(g.dtype).to(tl.float32)  # rounded, as F.silu's output is
    tl.store(OUT + row * N_COLS + offs, (act * u).to(g.dtype), mask=mask)


def silu_mul(gate_up: Tensor) -> Tensor:
    """``silu(gate) * up`` for ``gate_up [T, 2I]`` (gate then up, last dim contiguous): ``[T, I]``."""
    assert gate_up.dim() == 2 and gate_up.stride(1) == 1 and gate_up.shape[1] % 2 == 0
    t, width = gate_up.shape
    n = width // 2
    out = torch.empty((t, n), dtype=gate_up.dtype, device=gate_up.device)
    if t == 0:
        return out
    block = 1024
    _silu_mul_kernel[(t, triton.cdiv(n, block))](gate_up, out, n, gate_up.stride(0), BLOCK=block)
    return out
