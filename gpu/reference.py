"""Pure-torch references for the KV-reuse kernels: the ground truth the kernels are tested against.

All tensors describe one sequence (no batch dim). KV is ``[T, H, D]``; positions are int64 ``[T]``.
Math runs in float32; outputs take the input dtype unless stated otherwise.
"""

from __future__ import annotations

import torch
from semcache.gpu.rope import RopeConfig, rotate
from torch import Tensor


def _check_kv(name: str, t: Tensor) -> None:
    if t.dim() != 3:
        raise ValueError(f"{name} must be [T, H, D], got shape {tuple(t.shape)}")


def _check_index(name: str, idx: Tensor, n: int | None = None) -> None:
    if idx.dim() != 1 or idx.dtype.is_floating_point or idx.dtype == torch.bool:
        raise TypeError(f"{name} must be a 1-D integer tensor, got {idx.dtype} {tuple(idx.shape)}")
    if n is not None and idx.shape[0] != n:
        raise ValueError(f"{name} has {idx.shape[0]} entries, expected {n}")


def rerotate_k_ref(k: Tensor, delta: Tensor, cfg: RopeConfig) -> Tensor:
    """Re-rotate cached keys ``k [T, H, D]`` by ``delta [T]`` (= new_pos - old_pos).

    A pure rotation: no attention factor, since the cached K already carries it.
    """
    _check_kv("k", k)
    if k.shape[-1] != cfg.head_dim:
        raise ValueError(f"k head_dim {k.shape[-1]} != cfg.head_dim {cfg.head_dim}")
    _check_index("delta", delta, k.shape[0])
    freqs = delta.to(torch.float32)[:, None] * cfg.inv_freq(k.device)[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return rotate(k, emb.cos(), emb.sin(), cfg.rotary_dim)


def token_deviation_ref(cached: Tensor, fresh: Tensor) -> Tensor:
    """Per-token L2 norm over heads and dims of ``fresh - cached`` (both ``[T, H, D]``): ``[T]`` fp32."""
    _check_kv("cached", cached)
    if fresh.shape != cached.shape:
        raise ValueError(f"fresh {tuple(fresh.shape)} and cached {tuple(cached.shape)} differ")
    diff = fresh.to(torch.float32) - cached.to(torch.float32)
    return diff.square().sum(dim=(1, 2)).sqrt()


def select_topk_ref(scores: Tensor, k: int, candidates: Tensor | None = None) -> Tensor:
    """Indices of the ``k`` highest ``scores [T]`` among ``candidates [T] bool`` (all if None).

    Returns ``min(k, #candidates)`` int64 indices in ascending order.
    """
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D, got shape {tuple(scores.shape)}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if candidates is None:
        pool = torch.arange(scores.shape[0], device=scores.device)
    else:
        if candidates.dtype != torch.bool or candidates.shape != scores.shape:
            raise TypeError(
                f"candidates must be bool {tuple(scores.shape)}, got "
                f"{candidates.dtype} {tuple(candidates.shape)}"
            )
        pool = torch.nonzero(candidates, as_tuple=True)[0]
    kk = min(k, pool.shape[0])
    top = torch.topk(scores[pool].to(torch.float32), kk, sorted=False).indices
    idx = pool[top]
    return torch.sort(idx).values.to(torch.int64)


def partial_attention_ref(
    q: Tensor, k: Tensor, v: Tensor, q_pos: Tensor, k_pos: Tensor, scale: float
) -> Tensor:
    """Attention of selected queries over the full fused KV with an exact causal mask.

    Shapes: ``q [Nq, Hq, D]``, ``k, v [Nk, Hkv, D]`` with ``Hq % Hkv == 0`` (GQA: query head ``h``
    reads KV head ``h // (Hq // Hkv)``), ``q_pos [Nq]``, ``k_pos [Nk]``. Key ``j`` is visible to
    query ``i`` iff ``k_pos[j] <= q_pos[i]``. Softmax in fp32; a query that sees no key gets zeros.
    Returns ``[Nq, Hq, D]`` in ``q.dtype``.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_kv(name, t)
    nq, hq, d = q.shape
    nk, hkv, _ = k.shape
    if v.shape != k.shape or k.shape[-1] != d:
        raise ValueError(f"k {tuple(k.shape)} / v {tuple(v.shape)} do not match q {tuple(q.shape)}")
    if hq % hkv:
        raise ValueError(f"Hq={hq} must be a multiple of Hkv={hkv}")
    _check_index("q_pos", q_pos, nq)
    _check_index("k_pos", k_pos, nk)
    group = hq // hkv
    kf = k.to(torch.float32).repeat_interleave(group, dim=1)
    vf = v.to(torch.float32).repeat_interleave(group, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q.to(torch.float32), kf) * scale
    visible = k_pos[None, :] <= q_pos[:, None]
    scores = scores.masked_fill(~visible[None], float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    out = torch.einsum("hqk,khd->qhd", probs, vf)
    return out.to(q.dtype)


def visibility_bias(q_pos: Tensor, k_pos: Tensor, group: int) -> Tensor:
    """``[Nq * group, Nk]`` fp32: 0 where ``k_pos <= q_pos``, else -inf (rows repeat per head)."""
    visible = (k_pos[None, :] <= q_pos[:, None]).repeat_interleave(group, dim=0)
    zero = torch.zeros((), dtype=torch.float32, device=q_pos.device)
    return torch.where(visible, zero, torch.full_like(zero, float("-inf")))


def attention_mass_ref(q: Tensor, k: Tensor, q_pos: Tensor, k_pos: Tensor, scale: float,
                       bias: Tensor | None = None) -> Tensor:  # fmt: skip
    """Attention each key receives from queries ``q [Nq, Hq, D]``: ``[Nk]`` fp32.

    The softmax of every (query, head) row over the keys it may see (``k_pos <= q_pos``), summed
    over queries and heads; the result sums to ``Nq * Hq``. Query head ``h`` reads KV head
    ``h // (Hq // Hkv)``. The logits are a matmul in the inputs' dtype, then fp32. ``bias``
    (``visibility_bias``, the same for every layer of a request) may be passed in precomputed.
    """
    _check_kv("q", q)
    _check_kv("k", k)
    n, hq, d = q.shape
    hkv = k.shape[1]
    if hq % hkv or k.shape[2] != d:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} heads do not match")
    if bias is None:
        bias = visibility_bias(q_pos, k_pos, hq // hkv)
    return grouped_probs(q, k, scale, bias).sum(dim=(0, 1))


def grouped_probs(q: Tensor, k: Tensor, scale: float, bias: Tensor) -> Tensor:
    """Softmax ``[Hkv, Nq * group, Nk]`` fp32 of ``q [Nq, Hq, D]`` over ``k [Nk, Hkv, D]``.

    The query heads that share a KV head are the rows of one matrix (row ``i * group + j`` is
    query ``i``, head ``kvh * group + j``), so each KV head is one ``bmm`` in the inputs' dtype.
    ``bias`` is ``visibility_bias``; a row that sees no key gets zeros.
    """
    n, hq, d = q.shape
    hkv = k.shape[1]
    g = hq // hkv
    qg = q.reshape(n, hkv, g, d).permute(1, 0, 2, 3).reshape(hkv, n * g, d)
    scores = torch.bmm(qg, k.permute(1, 2, 0)).float()  # a new tensor: updated in place
    return scores.mul_(scale).add_(bias).softmax(dim=-1).nan_to_num_(0.0)


def scatter_rows_ref(dst: Tensor, idx: Tensor, src: Tensor) -> None:
    """In place: ``dst[idx[i]] = src[i]`` for ``dst [T, H, D]``, ``idx [n]``, ``src [n, H, D]``."""
    _check_kv("dst", dst)
    _check_kv("src", src)
    _check_index("idx", idx, src.shape[0])
    if src.shape[1:] != dst.shape[1:]:
        raise ValueError(f"src rows {tuple(src.shape[1:])} != dst rows {tuple(dst.shape[1:])}")
    dst[idx] = src.to(dst.dtype)


def gather_rows_ref(src: Tensor, idx: Tensor) -> Tensor:
    """``src[idx]``: rows of ``src [T, H, D]`` at ``idx [n]`` as a new ``[n, H, D]`` tensor."""
    _check_kv("src", src)
    _check_index("idx", idx)
    return src[idx]


# ----- layer elementwise ops (the runner's fused paths) -------------------------------------------
# These follow the transformers Llama modules op for op, including where results are rounded to the
# model dtype, so that the runner's torch path is the HF maths and the kernels are checked against it.


def rms_norm_ref(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """Llama RMSNorm of ``x [T, C]``: normalise in fp32, round to ``x.dtype``, times ``weight [C]``."""
    xf = x.to(torch.float32)
    normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


def apply_rope_ref(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """HF ``x * cos + rotate_half(x) * sin`` for ``x [T, H, D]`` and ``cos/sin [T, D]`` (model dtype)."""
    _check_kv("x", x)
    half = x.shape[-1] // 2
    c, s = cos[:, None, :], sin[:, None, :]
    return x * c + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * s


def silu_mul_ref(gate_up: Tensor) -> Tensor:
    """``silu(gate) * up`` for ``gate_up [T, 2I]`` holding ``gate`` then ``up``: ``[T, I]``."""
    gate, up = gate_up.chunk(2, dim=-1)
    return torch.nn.functional.silu(gate) * up
