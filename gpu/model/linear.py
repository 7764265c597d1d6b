"""The runner's linear maps, with weights prepacked for oneDNN when running bf16 on a CPU.

In bf16 on a CPU, ``F.linear`` makes oneDNN reorder the weight on every call; reordering once
(``torch.ops.mkldnn._reorder_linear_weight``, then ``_linear_pointwise``) is bit-identical and
faster for a blend's GEMMs (``docs/design/gpu_ops.md``). These ops are private to PyTorch, so
they are probed once, with ``F.linear`` as the fallback; fp32 is not packed.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

# rows oneDNN is told to expect when reordering (any row count is accepted later)
_ROWS_HINT = 128


def _ops() -> object | None:
    mkldnn = getattr(torch.ops, "mkldnn", None)
    if mkldnn is None or not torch.backends.mkldnn.is_available():
        return None
    try:
        mkldnn._reorder_linear_weight  # noqa: B018 - resolving the op is the check
        mkldnn._linear_pointwise  # noqa: B018
    except (AttributeError, RuntimeError):
        return None
    return mkldnn


@functools.cache
def prepack_works() -> bool:
    """Whether the packed bf16 ops exist here and agree with ``F.linear`` on a small probe."""
    mkldnn = _ops()
    if mkldnn is None:
        return False
    try:
        g = torch.Generator().manual_seed(0)
        w = torch.randn(48, 32, generator=g).to(torch.bfloat16)
        x = torch.randn(5, 32, generator=g).to(torch.bfloat16)
        h = torch.randn(5, 48, generator=g).to(torch.bfloat16)
        packed = mkldnn._reorder_linear_weight(w, _ROWS_HINT)
        y = mkldnn._linear_pointwise(x, packed, None, "none", [], "")
        r = mkldnn._linear_pointwise.binary(x, h, packed, None, "add")
    except RuntimeError:
        return False
    want = F.linear(x.float(), w.float())
    return bool(torch.allclose(y.float(), want, atol=0.1, rtol=0.02)
                and torch.allclose(r.float(), want + h.float(), atol=0.1, rtol=0.02))  # fmt: skip


def prepack_pays(device: torch.device, dtype: torch.dtype) -> bool:
    """The default: pack bf16 weights on a CPU with AMX or AVX-512 BF16, where it was measured."""
    if device.type != "cpu" or dtype != torch.bfloat16:
        return False
    cpu = getattr(torch, "cpu", None)
    try:
        fast = bool(cpu._is_amx_tile_supported() or cpu._is_avx512_bf16_supported())  # type: ignore[union-attr]
    except AttributeError:
        return False
    return fast and prepack_works()


class Projection:
    """``x @ weight.T + bias`` for rows ``x [T, in]``, packed for oneDNN when ``pack``."""

    __slots__ = ("bias", "packed", "weight")

    def __init__(self, weight: Tensor, bias: Tensor | None, pack: bool) -> None:
        self.weight, self.bias = weight, bias
        self.packed: Tensor | None = None
        if pack:
            if weight.device.type != "cpu" or weight.dtype != torch.bfloat16:
                raise ValueError(f"only bf16 CPU weights are packed, got {weight.dtype} on {weight.device}")
            if not prepack_works():
                raise RuntimeError("oneDNN's packed linear ops are not available in this torch build")
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), _ROWS_HINT)

    def __call__(self, x: Tensor) -> Tensor:
        if self.packed is None:
            return F.linear(x, self.weight, self.bias)
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def residual(self, hidden: Tensor, x: Tensor) -> Tensor:
        """``hidden + self(x)``, the sum in the GEMM's epilogue where there is no bias (one
        rounding instead of two)."""
        if self.bias is not None:
            return hidden + self(x)
        if self.packed is None:
            return torch.addmm(hidden, x, self.weight.t())
        return torch.ops.mkldnn._linear_pointwise.binary(x, hidden, self.packed, None, "add")
