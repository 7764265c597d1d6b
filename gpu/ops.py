"""Dispatch between the Triton kernels and the pure-torch references.

Every op takes ``impl``: ``"auto"`` (Triton when the tensors are on CUDA and triton imports,
else the torch reference, except that partial attention with a plan and the placement of a chunk
with a single shift take faster torch formulations of the same maths), ``"torch"`` (always the
reference) or ``"triton"`` (always the kernel; CPU tensors then need the Triton interpreter,
``TRITON_INTERPRET=1`` set before triton is imported). Shapes follow
:mod:`semcache.gpu.reference`.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

import torch
from semcache.gpu import cpu_attention, reference, rope
from semcache.gpu.rope import RopeConfig
from torch import Tensor

IMPLS = ("auto", "torch", "triton")


@functools.cache
def _triton_available() -> bool:
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return True


def _kernel(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"semcache.gpu.kernels.{name}")
    except ImportError as exc:
        raise ImportError(
            f"the Triton kernels need triton: pip install semcache[gpu] ({exc})"
        ) from exc


def _use_triton(impl: str, t: Tensor) -> bool:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        return t.is_cuda and _triton_available()
    return impl == "triton"


def uses_triton(impl: str, t: Tensor) -> bool:
    """Whether an op called with ``impl`` on tensors like ``t`` runs its Triton kernel."""
    return _use_triton(impl, t)


@functools.lru_cache(maxsize=64)
def _inv_freq(cfg: RopeConfig, device: torch.device) -> Tensor:
    return cfg.inv_freq(device)


def rerotate_k(k: Tensor, delta: Tensor, cfg: RopeConfig, *, impl: str = "auto") -> Tensor:
    """Rotate cached keys ``k [T, H, D]`` by ``delta [T]`` positions (no attention factor)."""
    if not _use_triton(impl, k):
        return reference.rerotate_k_ref(k, delta, cfg)
    if k.dim() != 3 or k.shape[-1] != cfg.head_dim:
        raise ValueError(f"k must be [T, H, {cfg.head_dim}], got {tuple(k.shape)}")
    if delta.shape != (k.shape[0],) or delta.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"delta must be int [{k.shape[0]}], got {delta.dtype} {tuple(delta.shape)}")
    kern = _kernel("rope_rerotate")
    inv_freq = _inv_freq(cfg, k.device)
    return kern.rope_rerotate(k.contiguous(), delta.contiguous(), inv_freq, cfg.rotary_dim)


def place_rotated(k: Tensor, v: Tensor, k_out: Tensor, v_out: Tensor, delta: Tensor,
                  cfg: RopeConfig, *, impl: str = "auto") -> None:  # fmt: skip
    """Place one chunk's cached K/V at new rows in one pass: ``k_out = rerotate(k, delta)``,
    ``v_out = v``.

    ``k, v [L, n, H, D]`` (L layers at the same stored positions), ``k_out, v_out`` equal-shaped
    views (rows of a larger fused cache, any layer and row strides), ``delta [n]``.
    """
    if k.dim() != 4 or v.shape != k.shape or k_out.shape != k.shape or v_out.shape != k.shape:
        raise ValueError(f"need k, v, k_out, v_out of one [L, n, H, D] shape, got {tuple(k.shape)}, "
                         f"{tuple(v.shape)}, {tuple(k_out.shape)}, {tuple(v_out.shape)}")  # fmt: skip
    if delta.shape != (k.shape[1],) or delta.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"delta must be int [{k.shape[1]}], got {delta.dtype} {tuple(delta.shape)}")
    if not _use_triton(impl, k):
        n_layers, n = k.shape[:2]
        shift = int(delta[0]) if n and impl != "torch" and k.device.type == "cpu" else None
        if shift is not None and bool((delta == shift).all()):
            # one shift for the chunk (always, in a blend): one GEMM with the rotation matrix
            # instead of the reference's elementwise passes (about 4x faster on a CPU). In bf16
            # the GEMM runs in bf16 (fp32 accumulation, AMX where there is one) with no fp32
            # copies of the keys: 4 chunks of a 618-token span 12 -> 5 ms on one core, at a
            # mean relative error of 2.0e-3 against 1.65e-3 for the fp32 GEMM and the
            # reference (the rounding of the bf16 result alone)
            rot = rope.rotation_matrix(cfg, shift, k.device)
            flat = k.reshape(-1, k.shape[-1])
            if k.dtype == torch.bfloat16:
                k_out.copy_((flat @ rot.T.to(torch.bfloat16)).view(k.shape))
            else:
                k_out.copy_((flat.to(torch.float32) @ rot.T).view(k.shape))
            v_out.copy_(v)
            return
        flat = k.reshape(n_layers * n, *k.shape[2:])
        k_out.copy_(reference.rerotate_k_ref(flat, delta.repeat(n_layers), cfg).view_as(k))
        v_out.copy_(v)
        return
    if k.shape[-1] != cfg.head_dim:
        raise ValueError(f"k head_dim {k.shape[-1]} != cfg.head_dim {cfg.head_dim}")
    if k_out.stride(-1) != 1 or v_out.stride(-1) != 1:
        raise ValueError("k_out and v_out need a contiguous last dim (they are written in place)")
    kern = _kernel("rope_rerotate")
    kern.rope_rerotate(k if k.stride(-1) == 1 else k.contiguous(), delta.contiguous(),
                       _inv_freq(cfg, k.device), cfg.rotary_dim, out=k_out,
                       v=v if v.stride(-1) == 1 else v.contiguous(), v_out=v_out)  # fmt: skip


def token_deviation(cached: Tensor, fresh: Tensor, *, impl: str = "auto") -> Tensor:
    """Per-token L2 norm over heads and dims of ``fresh - cached`` (``[T, H, D]``): ``[T]`` fp32."""
    if not _use_triton(impl, cached):
        return reference.token_deviation_ref(cached, fresh)
    if cached.dim() != 3 or fresh.shape != cached.shape or fresh.dtype != cached.dtype:
        raise ValueError(f"cached {cached.dtype} {tuple(cached.shape)} and fresh {fresh.dtype} "
                         f"{tuple(fresh.shape)} must be equal-shaped [T, H, D] of one dtype")  # fmt: skip
    kern = _kernel("deviation")
    return kern.token_deviation(cached.contiguous(), fresh.contiguous())


def select_topk(scores: Tensor, k: int, candidates: Tensor | None = None, *,
                impl: str = "auto") -> Tensor:  # fmt: skip
    """Ascending int64 indices of the ``min(k, #candidates)`` highest ``scores [T]``.

    Both impls use ``torch.topk``: the scores are one fp32 per token, too few for a kernel to pay.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return reference.select_topk_ref(scores, k, candidates)


def plan_partial_attention(q_pos: Tensor, k_pos: Tensor, group: int = 1, *,
                           impl: str = "auto") -> Any:  # fmt: skip
    """What :func:`partial_attention` reuses across layers for the same positions.

    Build it once per request and pass it as ``plan=`` to every layer's call. On CUDA with
    Triton: query order and key-block ranges (it saves about ten small launches per call).
    Elsewhere: the position mask of ``cpu_attention`` (``group`` is unused there). None for
    empty problems. ``impl`` must be the one the attention calls will use.
    """
    if q_pos.numel() == 0 or k_pos.numel() == 0:
        return None
    if not _use_triton(impl, q_pos):
        return cpu_attention.plan_cpu_attention(q_pos, k_pos)
    plan_mod = _kernel("attention_plan")
    pack = plan_mod.gqa_pack(group)
    return plan_mod.plan_partial_attention(q_pos.to(torch.int64), k_pos.to(torch.int64),
                                           plan_mod.DEFAULT_BLOCK_M // pack, pack=pack)  # fmt: skip


def partial_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_pos: Tensor,
    k_pos: Tensor,
    scale: float,
    *,
    impl: str = "auto",
    plan: Any = None,
    lse_out: Tensor | None = None,
) -> Tensor:
    """Selected queries ``q [Nq, Hq, D]`` over fused ``k, v [Nk, Hkv, D]``, mask ``k_pos <= q_pos``.

    ``plan`` (optional, from :func:`plan_partial_attention` for the same positions): on the
    Triton path its schedule; without Triton a ``CpuAttentionPlan`` selects SDPA over its mask
    (``semcache.gpu.cpu_attention``), and without a plan the fp32 reference runs.
    ``lse_out [Nq, Hq]`` fp32 (Triton path only) receives each row's log2-sum-exp, which
    :func:`attention_mass` can take instead of computing it again.
    """
    if lse_out is not None and not _use_triton(impl, q):
        raise ValueError("lse_out needs the Triton path (see uses_triton)")
    if not _use_triton(impl, q):
        if isinstance(plan, cpu_attention.CpuAttentionPlan) and impl != "torch":
            return cpu_attention.cpu_attention(q, k, v, scale, plan)
        return reference.partial_attention_ref(q, k, v, q_pos, k_pos, scale)
    if q.dim() != 3 or k.dim() != 3 or v.shape != k.shape or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"need q [Nq, Hq, D], k = v [Nk, Hkv, D]; got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"Hq={q.shape[1]} must be a multiple of Hkv={k.shape[1]}")
    if q_pos.shape != (q.shape[0],) or k_pos.shape != (k.shape[0],):
        raise ValueError(f"q_pos {tuple(q_pos.shape)} / k_pos {tuple(k_pos.shape)} do not match")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    kern = _kernel("partial_attention")
    return kern.partial_attention(
        q.contiguous(),
        k.contiguous(),
        v.contiguous(),
        q_pos.to(torch.int64),
        k_pos.to(torch.int64),
        float(scale),
        plan=plan,
        pack=_kernel("attention_plan").gqa_pack(q.shape[1] // k.shape[1]),
        lse_out=lse_out,
    )


def visibility_bias(q_pos: Tensor, k_pos: Tensor, group: int) -> Tensor:
    """The mask bias ``attention_mass`` takes precomputed (``reference.visibility_bias``)."""
    return reference.visibility_bias(q_pos, k_pos, group)


def attention_mass(q: Tensor, k: Tensor, q_pos: Tensor, k_pos: Tensor, scale: float,
                   bias: Tensor | None = None, *, impl: str = "auto",
                   lse: Tensor | None = None) -> Tensor:  # fmt: skip
    """Attention ``[Nk]`` that keys receive from a few queries (``reference.attention_mass_ref``).

    The reference is one batched matmul and a softmax over materialised fp32 scores; the kernel
    (``kernels.attention_mass``) streams them in four launches. ``bias`` (``visibility_bias``)
    only serves the reference: pass it when the same positions serve several calls. ``lse``
    (Triton path only) is the rows' log2-sum-exp from ``partial_attention(lse_out=...)`` over the
    same keys; the kernel then skips computing it.
    """
    if q_pos.shape != (q.shape[0],) or k_pos.shape != (k.shape[0],):
        raise ValueError(f"q_pos {tuple(q_pos.shape)} / k_pos {tuple(k_pos.shape)} do not match")
    if not _use_triton(impl, q):
        if lse is not None:
            raise ValueError("lse needs the Triton path (see uses_triton)")
        return reference.attention_mass_ref(q, k, q_pos, k_pos, scale, bias)
    if q.dim() != 3 or k.dim() != 3 or q.shape[2] != k.shape[2] or q.shape[1] % k.shape[1]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} heads do not match")
    return _kernel("attention_mass").attention_mass(
        q.contiguous() if q.stride(2) != 1 else q, k.contiguous() if k.stride(2) != 1 else k,
        q_pos, k_pos.to(q_pos.dtype), scale, lse=lse,
    )  # fmt: skip


def scatter_rows(dst: Tensor, idx: Tensor, src: Tensor, *, impl: str = "auto") -> None:
    """In place ``dst[idx[i]] = src[i]``: ``dst [T, H, D]``, ``idx [n]``, ``src [n, H, D]``."""
    if not _use_triton(impl, dst):
        reference.scatter_rows_ref(dst, idx, src)
        return
    if dst.dim() != 3 or src.dim() != 3 or src.shape[1:] != dst.shape[1:]:
        raise ValueError(f"dst {tuple(dst.shape)} and src {tuple(src.shape)} rows differ")
    if idx.shape != (src.shape[0],):
        raise ValueError(f"idx has shape {tuple(idx.shape)}, expected ({src.shape[0]},)")
    if dst.stride(2) != 1:
        raise ValueError("dst's last dim must be contiguous (it is written in place)")
    _kernel("scatter").scatter_rows(dst, idx.contiguous(), src.to(dst.dtype).contiguous())


def gather_rows(src: Tensor, idx: Tensor, *, impl: str = "auto") -> Tensor:
    """Rows of ``src [T, H, D]`` at ``idx [n]``: a new ``[n, H, D]`` tensor."""
    if not _use_triton(impl, src):
        return reference.gather_rows_ref(src, idx)
    if src.dim() != 3 or idx.dim() != 1:
        raise ValueError(
            f"need src [T, H, D] and idx [n], got {tuple(src.shape)}, {tuple(idx.shape)}"
        )
    return _kernel("scatter").gather_rows(src.contiguous(), idx.contiguous())


# ----- the runner's layer ops: fewer, fused launches on CUDA, the HF maths elsewhere -------------


def rms_norm(x: Tensor, weight: Tensor, eps: float, *, impl: str = "auto") -> Tensor:
    """Llama RMSNorm of ``x [T, C]`` with ``weight [C]`` (``reference.rms_norm_ref``)."""
    if not _use_triton(impl, x):
        return reference.rms_norm_ref(x, weight, eps)
    if x.dim() != 2 or weight.shape != (x.shape[1],):
        raise ValueError(f"need x [T, C] and weight [C], got {tuple(x.shape)}, {tuple(weight.shape)}")
    return _kernel("rms_norm").rms_norm(x.contiguous(), weight.contiguous(), eps)


def rope_qkv(qkv: Tensor, cos: Tensor, sin: Tensor, num_heads: int, num_kv_heads: int, *,
             impl: str = "auto") -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Split the fused projection ``qkv [T, (Hq + 2 Hkv) * D]`` into rotated Q, rotated K and V.

    ``cos/sin [T, D]`` in the model dtype, full rotary dims. Returns ``[T, Hq, D]``,
    ``[T, Hkv, D]``, ``[T, Hkv, D]``.
    """
    t = qkv.shape[0]
    d = qkv.shape[1] // (num_heads + 2 * num_kv_heads)
    if qkv.dim() != 2 or d * (num_heads + 2 * num_kv_heads) != qkv.shape[1]:
        raise ValueError(f"qkv {tuple(qkv.shape)} does not split into {num_heads}+2x{num_kv_heads} heads")
    if not _use_triton(impl, qkv):
        q, k, v = qkv.split((num_heads * d, num_kv_heads * d, num_kv_heads * d), dim=-1)
        q, k = q.view(t, num_heads, d), k.view(t, num_kv_heads, d)
        return (reference.apply_rope_ref(q, cos, sin), reference.apply_rope_ref(k, cos, sin),
                v.reshape(t, num_kv_heads, d).contiguous())  # fmt: skip
    return _kernel("rope_apply").rope_apply(qkv.contiguous(), cos.contiguous(), sin.contiguous(),
                                            num_heads, num_kv_heads)  # fmt: skip


def silu_mul(gate_up: Tensor, *, impl: str = "auto") -> Tensor:
    """``silu(gate) * up`` of the fused MLP projection ``gate_up [T, 2I]``: ``[T, I]``."""
    if not _use_triton(impl, gate_up):
        return reference.silu_mul_ref(gate_up)
    if gate_up.dim() != 2 or gate_up.shape[1] % 2:
        raise ValueError(f"gate_up must be [T, 2I], got {tuple(gate_up.shape)}")
    return _kernel("silu_mul").silu_mul(gate_up.contiguous())
