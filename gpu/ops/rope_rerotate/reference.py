"""Re-rotation of cached keys to new positions, in pure torch."""

from __future__ import annotations

import torch
from semcache.gpu.model.rope import RopeConfig, rotate
from semcache.gpu.ops.checks import check_index, check_kv
from torch import Tensor


def rerotate_k_ref(k: Tensor, delta: Tensor, cfg: RopeConfig) -> Tensor:
    """Re-rotate cached keys ``k [T, H, D]`` by ``delta [T]`` (= new_pos - old_pos).

    A pure rotation: no attention factor, since the cached K already carries it.
    """
    check_kv("k", k)
    if k.shape[-1] != cfg.head_dim:
        raise ValueError(f"k head_dim {k.shape[-1]} != cfg.head_dim {cfg.head_dim}")
    check_index("delta", delta, k.shape[0])
    freqs = delta.to(torch.float32)[:, None] * cfg.inv_freq(k.device)[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return rotate(k, emb.cos(), emb.sin(), cfg.rotary_dim)


def place_rotated_ref(k: Tensor, v: Tensor, k_out: Tensor, v_out: Tensor, delta: Tensor,
                      cfg: RopeConfig) -> None:  # fmt: skip
    """``k_out = rerotate(k, delta)``, ``v_out = v`` for ``k, v [L, n, H, D]`` (every layer)."""
    n_layers, n = k.shape[:2]
    flat = k.reshape(n_layers * n, *k.shape[2:])
    k_out.copy_(rerotate_k_ref(flat, delta.repeat(n_layers), cfg).view_as(k))
    v_out.copy_(v)
