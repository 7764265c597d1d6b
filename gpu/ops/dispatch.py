"""One dispatch for every op: the Triton kernel, a CPU fast path or the pure-torch reference.

Every op takes ``impl``: ``"auto"`` (Triton when the tensors are on CUDA and triton imports,
else the op's CPU fast path where one exists and applies, else the reference), ``"torch"``
(always the reference) or ``"triton"`` (always the kernel; CPU tensors then need the Triton
interpreter, ``TRITON_INTERPRET=1`` set before triton is imported). ``OPS`` lists each op's
implementations; ``route`` picks one. Shapes follow each op's ``reference.py``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from semcache.gpu.model.rope import RopeConfig
from semcache.gpu.ops.attention_mass.reference import attention_mass_ref, visibility_bias
from semcache.gpu.ops.checks import check_shift
from semcache.gpu.ops.deviation.reference import token_deviation_ref
from semcache.gpu.ops.partial_attention.cpu import (
    CpuAttentionPlan,
    cpu_attention,
    plan_cpu_attention,
)
from semcache.gpu.ops.partial_attention.reference import partial_attention_ref
from semcache.gpu.ops.rms_norm.reference import rms_norm_ref
from semcache.gpu.ops.rope_apply.reference import rope_qkv_ref
from semcache.gpu.ops.rope_rerotate.cpu import place_rotated_cpu, single_shift
from semcache.gpu.ops.rope_rerotate.reference import place_rotated_ref, rerotate_k_ref
from semcache.gpu.ops.scatter.reference import gather_rows_ref, scatter_rows_ref
from semcache.gpu.ops.silu_mul.reference import silu_mul_ref
from semcache.gpu.ops.topk.reference import select_topk_ref
from torch import Tensor

IMPLS = ("auto", "torch", "triton")
TRITON, CPU, REFERENCE = "triton", "cpu", "reference"


@dataclass(frozen=True, slots=True)
class Op:
    """An op's implementations: its reference, its CPU fast path (if any) and the folder whose
    ``triton.py`` holds its launcher (None: no kernel pays, the reference runs everywhere)."""

    reference: Callable[..., Any]
    cpu: Callable[..., Any] | None = None
    folder: str | None = None


OPS: dict[str, Op] = {
    "rerotate_k": Op(rerotate_k_ref, folder="rope_rerotate"),
    "place_rotated": Op(place_rotated_ref, place_rotated_cpu, "rope_rerotate"),
    "token_deviation": Op(token_deviation_ref, folder="deviation"),
    "select_topk": Op(select_topk_ref),
    "partial_attention": Op(partial_attention_ref, cpu_attention, "partial_attention"),
    "attention_mass": Op(attention_mass_ref, folder="attention_mass"),
    "scatter_rows": Op(scatter_rows_ref, folder="scatter"),
    "gather_rows": Op(gather_rows_ref, folder="scatter"),
    "rms_norm": Op(rms_norm_ref, folder="rms_norm"),
    "rope_qkv": Op(rope_qkv_ref, folder="rope_apply"),
    "silu_mul": Op(silu_mul_ref, folder="silu_mul"),
}


@functools.cache
def triton_available() -> bool:
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return True


def uses_triton(impl: str, t: Tensor) -> bool:
    """Whether an op called with ``impl`` on tensors like ``t`` runs its Triton kernel."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        return t.is_cuda and triton_available()
    return impl == "triton"


def route(name: str, impl: str, t: Tensor, cpu_applies: bool = True) -> str:
    """Which implementation of op ``name`` runs: ``TRITON``, ``CPU`` or ``REFERENCE``.

    ``cpu_applies``: the call's arguments suit the op's CPU fast path (e.g. one shift per chunk).
    """
    if uses_triton(impl, t):
        return TRITON
    if OPS[name].cpu is not None and impl != "torch" and cpu_applies:
        return CPU
    return REFERENCE


@functools.cache
def kernel_module(folder: str) -> Any:
    """``semcache.gpu.ops.<folder>.triton``, imported on first use (triton is optional)."""
    try:
        return importlib.import_module(f"semcache.gpu.ops.{folder}.triton")
    except ImportError as exc:
        raise ImportError(f"the Triton kernels need triton: pip install semcache[gpu] ({exc})") from exc


def attention_plan_module() -> Any:
    """``semcache.gpu.ops.partial_attention.plan``: the kernel's schedule (imports triton)."""
    return importlib.import_module("semcache.gpu.ops.partial_attention.plan")


def launcher(name: str) -> Callable[..., Any]:
    """Op ``name``'s Triton launcher (same name as the op, in its folder's ``triton.py``)."""
    folder = OPS[name].folder
    assert folder is not None, f"{name} has no kernel"
    return getattr(kernel_module(folder), name)


@functools.lru_cache(maxsize=64)
def inv_freq(cfg: RopeConfig, device: torch.device) -> Tensor:
    return cfg.inv_freq(device)


# ----- the blend's ops ---------------------------------------------------------------------------
def rerotate_k(k: Tensor, delta: Tensor, cfg: RopeConfig, *, impl: str = "auto") -> Tensor:
    """Rotate cached keys ``k [T, H, D]`` by ``delta [T]`` positions (no attention factor)."""
    if route("rerotate_k", impl, k) != TRITON:
        return rerotate_k_ref(k, delta, cfg)
    if k.dim() != 3 or k.shape[-1] != cfg.head_dim:
        raise ValueError(f"k must be [T, H, {cfg.head_dim}], got {tuple(k.shape)}")
    check_shift(delta, k.shape[0])
    rope_rerotate = kernel_module("rope_rerotate").rope_rerotate
    return rope_rerotate(k.contiguous(), delta.contiguous(), inv_freq(cfg, k.device), cfg.rotary_dim)


def place_rotated(k: Tensor, v: Tensor, k_out: Tensor, v_out: Tensor, delta: Tensor,
                  cfg: RopeConfig, *, impl: str = "auto") -> None:  # fmt: skip
    """Place one chunk's cached K/V at new rows in one pass: ``k_out = rerotate(k, delta)``,
    ``v_out = v``. ``k, v [L, n, H, D]`` (L layers at the same stored positions), ``k_out, v_out``
    equal-shaped views (rows of a larger fused cache, any layer and row strides), ``delta [n]``."""
    if k.dim() != 4 or v.shape != k.shape or k_out.shape != k.shape or v_out.shape != k.shape:
        raise ValueError(f"need k, v, k_out, v_out of one [L, n, H, D] shape, got {tuple(k.shape)}, "
                         f"{tuple(v.shape)}, {tuple(k_out.shape)}, {tuple(v_out.shape)}")  # fmt: skip
    check_shift(delta, k.shape[1])
    shift = single_shift(delta) if k.device.type == "cpu" and impl != "torch" else None
    path = route("place_rotated", impl, k, cpu_applies=shift is not None)
    if path == CPU:
        assert shift is not None
        place_rotated_cpu(k, v, k_out, v_out, shift, cfg)
    elif path == REFERENCE:
        place_rotated_ref(k, v, k_out, v_out, delta, cfg)
    else:
        if k.shape[-1] != cfg.head_dim:
            raise ValueError(f"k head_dim {k.shape[-1]} != cfg.head_dim {cfg.head_dim}")
        if k_out.stride(-1) != 1 or v_out.stride(-1) != 1:
            raise ValueError("k_out and v_out need a contiguous last dim (they are written in place)")
        kernel_module("rope_rerotate").rope_rerotate(
            k if k.stride(-1) == 1 else k.contiguous(), delta.contiguous(),
            inv_freq(cfg, k.device), cfg.rotary_dim, out=k_out,
            v=v if v.stride(-1) == 1 else v.contiguous(), v_out=v_out)  # fmt: skip


def token_deviation(cached: Tensor, fresh: Tensor, *, impl: str = "auto") -> Tensor:
    """Per-token L2 norm over heads and dims of ``fresh - cached`` (``[T, H, D]``): ``[T]`` fp32."""
    if route("token_deviation", impl, cached) != TRITON:
        return token_deviation_ref(cached, fresh)
    if cached.dim() != 3 or fresh.shape != cached.shape or fresh.dtype != cached.dtype:
        raise ValueError(f"cached {cached.dtype} {tuple(cached.shape)} and fresh {fresh.dtype} "
                         f"{tuple(fresh.shape)} must be equal-shaped [T, H, D] of one dtype")  # fmt: skip
    return launcher("token_deviation")(cached.contiguous(), fresh.contiguous())


def select_topk(scores: Tensor, k: int, candidates: Tensor | None = None, *,
                impl: str = "auto") -> Tensor:  # fmt: skip
    """Ascending int64 indices of the ``min(k, #candidates)`` highest ``scores [T]`` (every
    ``impl`` runs ``torch.topk``: one fp32 per token is too little work for a kernel)."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return select_topk_ref(scores, k, candidates)


def plan_partial_attention(q_pos: Tensor, k_pos: Tensor, group: int = 1, *,
                           impl: str = "auto") -> Any:  # fmt: skip
    """What :func:`partial_attention` reuses across layers for the same positions (build it once
    per request). With Triton: query order and key-block ranges. Elsewhere: the position mask of
    the CPU path (``group`` unused). None for empty problems; ``impl`` as the attention calls'."""
    if q_pos.numel() == 0 or k_pos.numel() == 0:
        return None
    if not uses_triton(impl, q_pos):
        return plan_cpu_attention(q_pos, k_pos)
    plan_mod = attention_plan_module()
    pack = plan_mod.gqa_pack(group)
    return plan_mod.plan_partial_attention(q_pos.to(torch.int64), k_pos.to(torch.int64),
                                           plan_mod.DEFAULT_BLOCK_M // pack, pack=pack)  # fmt: skip


def partial_attention(q: Tensor, k: Tensor, v: Tensor, q_pos: Tensor, k_pos: Tensor, scale: float,
                      *, impl: str = "auto", plan: Any = None,
                      lse_out: Tensor | None = None) -> Tensor:  # fmt: skip
    """Selected queries ``q [Nq, Hq, D]`` over fused ``k, v [Nk, Hkv, D]``, mask ``k_pos <= q_pos``.

    ``plan`` (from :func:`plan_partial_attention`): the kernel's schedule, or the CPU path's mask
    (without one the fp32 reference runs). ``lse_out [Nq, Hq]`` fp32 (Triton path only) receives
    each row's log2-sum-exp, which :func:`attention_mass` can take instead of computing it again.
    """
    path = route("partial_attention", impl, q, cpu_applies=isinstance(plan, CpuAttentionPlan))
    if lse_out is not None and path != TRITON:
        raise ValueError("lse_out needs the Triton path (see uses_triton)")
    if path == CPU:
        return cpu_attention(q, k, v, scale, plan)
    if path == REFERENCE:
        return partial_attention_ref(q, k, v, q_pos, k_pos, scale)
    if q.dim() != 3 or k.dim() != 3 or v.shape != k.shape or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"need q [Nq, Hq, D], k = v [Nk, Hkv, D]; got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")  # fmt: skip
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"Hq={q.shape[1]} must be a multiple of Hkv={k.shape[1]}")
    if q_pos.shape != (q.shape[0],) or k_pos.shape != (k.shape[0],):
        raise ValueError(f"q_pos {tuple(q_pos.shape)} / k_pos {tuple(k_pos.shape)} do not match")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    pack = attention_plan_module().gqa_pack(q.shape[1] // k.shape[1])
    return launcher("partial_attention")(
        q.contiguous(), k.contiguous(), v.contiguous(), q_pos.to(torch.int64),
        k_pos.to(torch.int64), float(scale), plan=plan, pack=pack, lse_out=lse_out)  # fmt: skip


def attention_mass(q: Tensor, k: Tensor, q_pos: Tensor, k_pos: Tensor, scale: float,
                   bias: Tensor | None = None, *, impl: str = "auto",
                   lse: Tensor | None = None) -> Tensor:  # fmt: skip
    """Attention ``[Nk]`` that keys receive from a few queries (``attention_mass_ref``).

    ``bias`` (``visibility_bias``) only serves the reference: pass it when the same positions
    serve several calls. ``lse`` (Triton path only): the rows' log2-sum-exp from
    ``partial_attention(lse_out=...)`` over the same keys, which the kernel then skips computing.
    """
    if q_pos.shape != (q.shape[0],) or k_pos.shape != (k.shape[0],):
        raise ValueError(f"q_pos {tuple(q_pos.shape)} / k_pos {tuple(k_pos.shape)} do not match")
    if route("attention_mass", impl, q) != TRITON:
        if lse is not None:
            raise ValueError("lse needs the Triton path (see uses_triton)")
        return attention_mass_ref(q, k, q_pos, k_pos, scale, bias)
    if q.dim() != 3 or k.dim() != 3 or q.shape[2] != k.shape[2] or q.shape[1] % k.shape[1]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} heads do not match")
    return launcher("attention_mass")(
        q.contiguous() if q.stride(2) != 1 else q, k.contiguous() if k.stride(2) != 1 else k,
        q_pos, k_pos.to(q_pos.dtype), scale, lse=lse)  # fmt: skip


def scatter_rows(dst: Tensor, idx: Tensor, src: Tensor, *, impl: str = "auto") -> None:
    """In place ``dst[idx[i]] = src[i]``: ``dst [T, H, D]``, ``idx [n]``, ``src [n, H, D]``."""
    if route("scatter_rows", impl, dst) != TRITON:
        scatter_rows_ref(dst, idx, src)
        return
    if dst.dim() != 3 or src.dim() != 3 or src.shape[1:] != dst.shape[1:]:
        raise ValueError(f"dst {tuple(dst.shape)} and src {tuple(src.shape)} rows differ")
    if idx.shape != (src.shape[0],):
        raise ValueError(f"idx has shape {tuple(idx.shape)}, expected ({src.shape[0]},)")
    if dst.stride(2) != 1:
        raise ValueError("dst's last dim must be contiguous (it is written in place)")
    launcher("scatter_rows")(dst, idx.contiguous(), src.to(dst.dtype).contiguous())


def gather_rows(src: Tensor, idx: Tensor, *, impl: str = "auto") -> Tensor:
    """Rows of ``src [T, H, D]`` at ``idx [n]``: a new ``[n, H, D]`` tensor."""
    if route("gather_rows", impl, src) != TRITON:
        return gather_rows_ref(src, idx)
    if src.dim() != 3 or idx.dim() != 1:
        raise ValueError(f"need src [T, H, D] and idx [n], got {tuple(src.shape)}, {tuple(idx.shape)}")
    return launcher("gather_rows")(src.contiguous(), idx.contiguous())


# ----- the runner's layer ops: fewer, fused launches on CUDA, the HF maths elsewhere -------------
def rms_norm(x: Tensor, weight: Tensor, eps: float, *, impl: str = "auto") -> Tensor:
    """Llama RMSNorm of ``x [T, C]`` with ``weight [C]`` (``rms_norm_ref``)."""
    if route("rms_norm", impl, x) != TRITON:
        return rms_norm_ref(x, weight, eps)
    if x.dim() != 2 or weight.shape != (x.shape[1],):
        raise ValueError(f"need x [T, C] and weight [C], got {tuple(x.shape)}, {tuple(weight.shape)}")
    return launcher("rms_norm")(x.contiguous(), weight.contiguous(), eps)


def rope_qkv(qkv: Tensor, cos: Tensor, sin: Tensor, num_heads: int, num_kv_heads: int, *,
             impl: str = "auto") -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Split the fused projection ``qkv [T, (Hq + 2 Hkv) * D]`` into rotated Q ``[T, Hq, D]``,
    rotated K and V ``[T, Hkv, D]``. ``cos/sin [T, D]`` in the model dtype, full rotary dims."""
    d = qkv.shape[1] // (num_heads + 2 * num_kv_heads)
    if qkv.dim() != 2 or d * (num_heads + 2 * num_kv_heads) != qkv.shape[1]:
        raise ValueError(f"qkv {tuple(qkv.shape)} does not split into {num_heads}+2x{num_kv_heads} heads")
    if route("rope_qkv", impl, qkv) != TRITON:
        return rope_qkv_ref(qkv, cos, sin, num_heads, num_kv_heads)
    return kernel_module("rope_apply").rope_apply(qkv.contiguous(), cos.contiguous(),
                                                  sin.contiguous(), num_heads, num_kv_heads)  # fmt: skip


def silu_mul(gate_up: Tensor, *, impl: str = "auto") -> Tensor:
    """``silu(gate) * up`` of the fused MLP projection ``gate_up [T, 2I]``: ``[T, I]``."""
    if route("silu_mul", impl, gate_up) != TRITON:
        return silu_mul_ref(gate_up)
    if gate_up.dim() != 2 or gate_up.shape[1] % 2:
        raise ValueError(f"gate_up must be [T, 2I], got {tuple(gate_up.shape)}")
    return launcher("silu_mul")(gate_up.contiguous())


__all__ = ["IMPLS", "OPS", "attention_mass", "gather_rows", "partial_attention", "place_rotated",
           "plan_partial_attention", "rerotate_k", "rms_norm", "rope_qkv", "route", "scatter_rows",
           "select_topk", "silu_mul", "token_deviation", "uses_triton", "visibility_bias"]
