"""The Llama MLP's ``silu(gate) * up``, in pure torch."""

from __future__ import annotations

import torch
from torch import Tensor


def silu_mul_ref(gate_up: Tensor) -> Tensor:
    """``silu(gate) * up`` for ``gate_up [T, 2I]`` holding ``gate`` then ``up``: ``[T, I]``."""
    gate, up = gate_up.chunk(2, dim=-1)
    return torch.nn.functional.silu(gate) * up
