"""vLLM's CPU RMSNorm and RoPE ops as the connector runner's ``LayerKernels``.

Inside vLLM's process its CPU ops are loaded; ``rms_norm`` (one pass, fp32 inside) and
``rotary_embedding`` (Q and K rotated in place, neox layout) each replace several PyTorch
elementwise ops per layer (figures in ``docs/design/gpu_vllm.md``). They round once where the
PyTorch forms round after each op, so results differ from those within bf16 rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor


class VllmCpuKernels:
    """``LayerKernels`` (``semcache.gpu.model.runner``) from ``torch.ops._C`` of vLLM's CPU build."""

    def __init__(self) -> None:
        import vllm._custom_ops  # noqa: F401 - loads vLLM's ops into torch.ops._C

        self.ops = torch.ops._C
        # (cos rows kept alive, so their memory is not reused while cached; table; positions)
        self._table: tuple[Tensor, Tensor, Tensor] | None = None

    def rms_norm(self, x: Tensor, weight: Tensor, eps: float) -> Tensor:
        x = x.contiguous()
        out = torch.empty_like(x)
        self.ops.rms_norm(out, x, weight.to(x.dtype), eps)
        return out

    def _rope_table(self, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
        """vLLM's ``cos_sin_cache`` for the rows of ``cos/sin [T, D]``, indexed by row.

        The blend passes the same row tables to every layer: built once per table."""
        kept = self._table
        if (kept is not None and kept[0].data_ptr() == cos.data_ptr()
                and kept[0].shape == cos.shape and kept[0].stride() == cos.stride()):
            return kept[1], kept[2]
        half = cos.shape[-1] // 2
        table = torch.cat((cos[:, :half], sin[:, :half]), dim=-1).contiguous()
        rows = torch.arange(cos.shape[0], dtype=torch.int64)
        self._table = (cos, table, rows)
        return table, rows

    def rope_qkv(self, qkv: Tensor, cos: Tensor, sin: Tensor, num_heads: int,
                 num_kv_heads: int) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        t = qkv.shape[0]
        d = qkv.shape[1] // (num_heads + 2 * num_kv_heads)
        if qkv.dim() != 2 or d * (num_heads + 2 * num_kv_heads) != qkv.shape[1] or cos.shape != (t, d):
            raise ValueError(f"qkv {tuple(qkv.shape)} with cos {tuple(cos.shape)} does not split "
                             f"into {num_heads}+2x{num_kv_heads} heads")  # fmt: skip
        qkv = qkv.contiguous()
        table, rows = self._rope_table(cos, sin)
        q = qkv[:, :num_heads * d]
        k = qkv[:, num_heads * d:(num_heads + num_kv_heads) * d]
        self.ops.rotary_embedding(rows, q, k, d, table, True)  # in place, neox (rotate-half) layout
        v = qkv[:, (num_heads + num_kv_heads) * d:]
        return q.view(t, num_heads, d), k.view(t, num_kv_heads, d), v.reshape(t, num_kv_heads, d).contiguous()
