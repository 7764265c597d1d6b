"""RoPE on the fused Q/K/V projection as the transformers Llama modules compute it."""

from __future__ import annotations

import torch
from semcache.gpu.ops.checks import check_kv
from torch import Tensor


def apply_rope_ref(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """HF ``x * cos + rotate_half(x) * sin`` for ``x [T, H, D]`` and ``cos/sin [T, D]`` (model dtype)."""
    check_kv("x", x)
    half = x.shape[-1] // 2
    c, s = cos[:, None, :], sin[:, None, :]
    return x * c + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * s


def rope_qkv_ref(qkv: Tensor, cos: Tensor, sin: Tensor, num_heads: int,
                 num_kv_heads: int) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Split ``qkv [T, (Hq + 2 Hkv) * D]`` into rotated Q ``[T, Hq, D]``, rotated K and V."""
    t = qkv.shape[0]
    d = qkv.shape[1] // (num_heads + 2 * num_kv_heads)
    q, k, v = qkv.split((num_heads * d, num_kv_heads * d, num_kv_heads * d), dim=-1)
    q, k = q.view(t, num_heads, d), k.view(t, num_kv_heads, d)
    return (apply_rope_ref(q, cos, sin), apply_rope_ref(k, cos, sin),
            v.reshape(t, num_kv_heads, d).contiguous())  # fmt: skip
