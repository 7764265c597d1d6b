"""A model runner for Llama-family HF models with its own layer loop and its own KV tensors.

It drives the HF modules directly and applies RoPE itself, so no transformers cache API is
involved (it differs between versions). KV per layer is ``[T, Hkv, D]`` for one sequence. The
layer pieces (``embed``, ``qkv``, ``finish_layer``, ``logits``) are public so the blend runs the
same maths on a subset of tokens. Q/K/V and gate/up are fused at load time (views, no copies),
and on CUDA the norms, RoPE and ``silu(gate) * up`` are one Triton kernel each: short passes are
launch-bound (``docs/design/gpu_ops.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from semcache.gpu.model.linear import Projection, prepack_pays
from semcache.gpu.model.loader import check_arch
from semcache.gpu.model.rope import RopeConfig, cos_sin, rotate
from semcache.gpu.ops import dispatch as ops
from torch import Tensor


@dataclass(slots=True, weakref_slot=True)
class KVCache:
    """Per-layer keys/values ``[T, Hkv, D]`` (RoPE applied to keys) and token positions ``[T]``."""

    keys: list[Tensor]
    values: list[Tensor]
    positions: Tensor

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    def append(self, layer: int, k: Tensor, v: Tensor) -> None:
        """Append rows to one layer (positions are appended separately by ``extend_positions``)."""
        self.keys[layer] = torch.cat((self.keys[layer], k), dim=0)
        self.values[layer] = torch.cat((self.values[layer], v), dim=0)

    def extend_positions(self, positions: Tensor) -> None:
        self.positions = torch.cat((self.positions, positions))

    def next_position(self) -> int:
        return int(self.positions.max().item()) + 1 if len(self) else 0


def as_ids(token_ids: Sequence[int] | Tensor, device: torch.device) -> Tensor:
    """Token ids as an int64 1-D tensor on ``device``."""
    if isinstance(token_ids, Tensor):
        ids = token_ids.to(device=device, dtype=torch.int64)
    else:  # through numpy: torch.as_tensor of a long Python list costs ~2 ms at 8K tokens
        ids = torch.from_numpy(np.asarray(token_ids, dtype=np.int64)).to(device)
    if ids.dim() != 1 or ids.numel() == 0:
        raise ValueError(f"token ids must be a non-empty 1-D sequence, got shape {tuple(ids.shape)}")
    return ids


class LayerKernels(Protocol):
    """Another implementation of a layer's RMSNorm and RoPE (``ops.rms_norm``,
    ``ops.rope_qkv``, same contracts), e.g. a serving engine's own CPU ops
    (``semcache.gpu.vllm.kernels``) when the runner runs inside that engine."""

    def rms_norm(self, x: Tensor, weight: Tensor, eps: float) -> Tensor: ...

    def rope_qkv(self, qkv: Tensor, cos: Tensor, sin: Tensor, num_heads: int,
                 num_kv_heads: int) -> tuple[Tensor, Tensor, Tensor]: ...  # fmt: skip


class ModelRunner:
    """Runs a Llama-family causal LM layer by layer over one sequence."""

    def __init__(self, model: Any, prepack: bool | None = None,
                 kernels: LayerKernels | None = None) -> None:  # fmt: skip
        """``model``: a transformers ``*ForCausalLM`` of the Llama family, in eval mode.

        ``prepack``: hold the projection weights packed for oneDNN (``semcache.gpu.model.linear``;
        bf16 on a CPU only). Default: where it pays, on CPUs with AMX or AVX-512 BF16.
        ``kernels``: RMSNorm and RoPE for ``impl="auto"`` (default: ``ops``); ``impl="torch"``
        always runs the plain-PyTorch forms.
        """
        config = model.config
        check_arch(config)
        self.model = model
        self.config = config
        self.layers = list(model.model.layers)
        self.num_layers = len(self.layers)
        attn = self.layers[0].self_attn
        self.head_dim = int(attn.head_dim)
        self.num_heads = int(config.num_attention_heads)
        self.num_kv_heads = int(config.num_key_value_heads)
        self.scale = float(attn.scaling)
        self.rope = RopeConfig.from_hf_config(config)
        self.sliding_window = _sliding_window(config)
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.prepacked = prepack_pays(self.device, self.dtype) if prepack is None else bool(prepack)
        self.weights = [_LayerWeights.fuse(layer, config, self.prepacked) for layer in self.layers]
        self.lm_head = _projection(model.lm_head, self.prepacked)
        self.kernels = kernels
        self._position_tables: tuple[Tensor, Tensor, Tensor] | None = None  # position_tables

    # ----- building blocks -------------------------------------------------------------------
    def check_length(self, max_position: int) -> None:
        """Full attention is exact only inside a sliding window, if the model has one."""
        if self.sliding_window is not None and max_position >= self.sliding_window:
            raise ValueError(
                f"sequence reaches position {max_position}, past the model's sliding window "
                f"{self.sliding_window}; the runner implements full attention only"
            )

    def position_tables(self, start: int, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """Positions ``start..start+n-1`` and their ``rope_tables``, cached across calls.

        The tables are computed once for positions ``0..m-1`` (``m`` the next power of two past
        the largest position asked for) and sliced: the values equal ``rope_tables`` of the same
        positions, without its launches on every prefill and decoding step.
        """
        if start < 0:  # not cached: the tables start at position 0
            positions = torch.arange(start, start + n, device=self.device)
            return (positions, *self.rope_tables(positions))
        cached = self._position_tables
        if cached is None or cached[0].shape[0] < start + n:
            m = 1 << max(0, start + n - 1).bit_length()
            positions = torch.arange(m, device=self.device)
            cached = (positions, *self.rope_tables(positions))
            self._position_tables = cached
        return cached[0][start:start + n], cached[1][start:start + n], cached[2][start:start + n]

    def rope_tables(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """cos/sin ``[T, 1, rotary_dim]`` in the model dtype for ``positions``, shared by all layers.

        Computed in fp32 and cast, then applied in the model dtype, as transformers does.
        """
        cos, sin = cos_sin(self.rope, positions, self.dtype)
        return cos[:, None, :], sin[:, None, :]

    def rotate(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """RoPE on ``x [T, H, D]`` with tables from ``rope_tables`` (rows matching ``x``)."""
        rd = self.rope.rotary_dim
        if rd != self.head_dim:  # partial rotary: the generic (fp32) path
            return rotate(x, cos[:, 0], sin[:, 0], rd)
        half = rd // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin

    def embed(self, ids: Tensor) -> Tensor:
        return self.model.model.embed_tokens(ids)

    def qkv(self, layer: int, hidden: Tensor, cos: Tensor, sin: Tensor, *,
            impl: str = "auto") -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """Queries ``[T, Hq, D]`` and keys (both rotated) and values ``[T, Hkv, D]`` of ``hidden [T, C]``."""
        w = self.weights[layer]
        kernels = self.kernels if impl == "auto" else None
        x = _norm(w.input_norm, hidden, impl, kernels)
        fused = w.qkv(x)
        if self.rope.rotary_dim == self.head_dim:
            if kernels is not None:
                return kernels.rope_qkv(fused, cos[:, 0], sin[:, 0], self.num_heads,
                                        self.num_kv_heads)  # fmt: skip
            return ops.rope_qkv(fused, cos[:, 0], sin[:, 0], self.num_heads, self.num_kv_heads,
                                impl=impl)  # fmt: skip
        t, d = x.shape[0], self.head_dim
        q, k, v = fused.split((self.num_heads * d, self.num_kv_heads * d, self.num_kv_heads * d), -1)
        q, k = q.view(t, self.num_heads, d), k.view(t, self.num_kv_heads, d)
        v = v.reshape(t, self.num_kv_heads, d).contiguous()
        return self.rotate(q, cos, sin), self.rotate(k, cos, sin), v

    def finish_layer(self, layer: int, hidden: Tensor, attn_out: Tensor, *,
                     impl: str = "auto") -> Tensor:  # fmt: skip
        """Residual + ``o_proj(attn_out [T, Hq, D])``, then the MLP block; returns ``[T, C]``."""
        block, w = self.layers[layer], self.weights[layer]
        h = _residual(hidden, block.self_attn.o_proj, w.o_proj, attn_out.reshape(attn_out.shape[0], -1))
        x = _norm(w.post_norm, h, impl, self.kernels if impl == "auto" else None)
        if w.gate_up is None:
            return h + block.mlp(x)
        act = ops.silu_mul(w.gate_up(x), impl=impl)
        return _residual(h, block.mlp.down_proj, w.down, act)

    def logits(self, hidden: Tensor) -> Tensor:
        """Final norm and LM head: ``[T, C] -> [T, V]`` in float32."""
        x = self.model.model.norm(hidden)
        return (self.lm_head(x) if self.lm_head is not None else self.model.lm_head(x)).float()

    def causal_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """SDPA over one contiguous causal block (queries and keys are the same tokens)."""
        out = F.scaled_dot_product_attention(
            q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
            is_causal=True, scale=self.scale, enable_gqa=True,
        )
        return out[0].transpose(0, 1)

    def masked_attention(self, q: Tensor, k: Tensor, v: Tensor, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        """SDPA with a boolean mask ``k_pos <= q_pos`` (exact causal mask by true positions)."""
        mask = k_pos[None, :] <= q_pos[:, None]
        out = F.scaled_dot_product_attention(
            q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
            attn_mask=mask[None, None], scale=self.scale, enable_gqa=True,
        )
        return out[0].transpose(0, 1)

    # ----- whole passes ----------------------------------------------------------------------
    @torch.inference_mode()
    def prefill(self, token_ids: Sequence[int] | Tensor, start: int = 0,
                all_logits: bool = False) -> tuple[Tensor, KVCache]:
        """Full causal prefill of ``token_ids`` at positions ``start..start+T-1``.

        Returns logits (``[T, V]`` if ``all_logits`` else ``[V]`` of the last token) and the KV.
        """
        ids = as_ids(token_ids, self.device)
        self.check_length(start + ids.shape[0] - 1)
        positions, cos, sin = self.position_tables(start, ids.shape[0])
        hidden = self.embed(ids)
        keys, values = [], []
        for layer in range(self.num_layers):
            q, k, v = self.qkv(layer, hidden, cos, sin)
            keys.append(k)
            values.append(v)
            hidden = self.finish_layer(layer, hidden, self.causal_attention(q, k, v))
        out = hidden if all_logits else hidden[-1:]
        logits = self.logits(out)
        return (logits if all_logits else logits[0]), KVCache(keys, values, positions)

    @torch.inference_mode()
    def extend(self, token_ids: Sequence[int] | Tensor, kv: KVCache,
               all_logits: bool = False) -> Tensor:
        """Prefill ``token_ids`` after the tokens already in ``kv`` (updated in place).

        New tokens take positions after ``kv``'s largest; each attends to every cached token and
        to the new tokens before it. Returns logits like ``prefill``.
        """
        ids = as_ids(token_ids, self.device)
        start = kv.next_position()
        self.check_length(start + ids.shape[0] - 1)
        positions, cos, sin = self.position_tables(start, ids.shape[0])
        hidden = self.embed(ids)
        k_pos = torch.cat((kv.positions, positions))
        single = ids.shape[0] == 1  # one query sees every key: no mask needed
        group = self.num_heads // self.num_kv_heads
        plan = None if single else ops.plan_partial_attention(positions, k_pos, group)
        for layer in range(self.num_layers):
            q, k, v = self.qkv(layer, hidden, cos, sin)
            kv.append(layer, k, v)
            if single:
                attn = self.causal_attention_single(q, kv.keys[layer], kv.values[layer])
            else:  # exact mask by positions; Triton kernel on CUDA
                attn = ops.partial_attention(q, kv.keys[layer], kv.values[layer], positions,
                                             k_pos, self.scale, plan=plan)
            hidden = self.finish_layer(layer, hidden, attn)
        kv.extend_positions(positions)
        logits = self.logits(hidden if all_logits else hidden[-1:])
        return logits if all_logits else logits[0]

    def causal_attention_single(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        out = F.scaled_dot_product_attention(
            q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
            scale=self.scale, enable_gqa=True,
        )
        return out[0].transpose(0, 1)

    def decode_step(self, token_id: int, kv: KVCache) -> Tensor:
        """One decoding step: logits ``[V]`` for the token after ``token_id``; ``kv`` grows by one."""
        return self.extend([token_id], kv)

    def greedy(self, first_logits: Tensor, kv: KVCache, max_new_tokens: int,
               stop_ids: Sequence[int] = ()) -> list[int]:
        """Greedy continuation from the logits of the last prompt token; ``kv`` grows."""
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        out = [int(first_logits.argmax())]
        while len(out) < max_new_tokens and out[-1] not in stop_ids:
            out.append(int(self.decode_step(out[-1], kv).argmax()))
        return out


@dataclass(frozen=True, slots=True)
class _Norm:
    """An RMSNorm as ``ops.rms_norm`` computes it, or (``weight`` None) the module to call."""

    module: Any
    weight: Tensor | None
    eps: float

    @staticmethod
    def of(module: Any) -> _Norm:
        weight, eps = getattr(module, "weight", None), getattr(module, "variance_epsilon", None)
        if type(module).__name__.endswith("RMSNorm") and weight is not None and eps is not None:
            return _Norm(module, weight, float(eps))
        return _Norm(module, None, 0.0)


def _residual(hidden: Tensor, module: Any, proj: Projection | None, x: Tensor) -> Tensor:
    """``hidden + module(x)``; for a bias-free ``nn.Linear`` (``proj``) the sum is the GEMM's
    epilogue, one launch and one rounding instead of two."""
    if proj is None:
        return hidden + module(x)
    return proj.residual(hidden, x)


def _projection(module: Any, pack: bool) -> Projection | None:
    """A plain ``nn.Linear`` as a ``Projection``; None for anything else (called as a module)."""
    if type(module) is not torch.nn.Linear:
        return None
    return Projection(module.weight, module.bias, pack)


def _norm(norm: _Norm, x: Tensor, impl: str, kernels: LayerKernels | None = None) -> Tensor:
    if norm.weight is None:
        return norm.module(x)
    if kernels is not None:
        return kernels.rms_norm(x, norm.weight, norm.eps)
    return ops.rms_norm(x, norm.weight, norm.eps, impl=impl)


@dataclass(frozen=True, slots=True)
class _LayerWeights:
    """One layer's fused projections: Q/K/V in one weight, gate/up in another (None: call the MLP)."""

    input_norm: _Norm
    post_norm: _Norm
    qkv: Projection
    gate_up: Projection | None
    o_proj: Projection | None  # None: not a plain nn.Linear, called as a module
    down: Projection | None

    @staticmethod
    @torch.no_grad()
    def fuse(layer: Any, config: Any, pack: bool = False) -> _LayerWeights:
        attn, mlp = layer.self_attn, layer.mlp
        qkv = Projection(*_concat_linears((attn.q_proj, attn.k_proj, attn.v_proj)), pack)
        gate_up = down = None
        if (getattr(config, "hidden_act", None) == "silu" and hasattr(mlp, "gate_proj")
                and hasattr(mlp, "up_proj") and hasattr(mlp, "down_proj")):
            gate_up = Projection(*_concat_linears((mlp.gate_proj, mlp.up_proj)), pack)
            down = _projection(mlp.down_proj, pack)
        return _LayerWeights(_Norm.of(layer.input_layernorm), _Norm.of(layer.post_attention_layernorm),
                             qkv, gate_up, _projection(attn.o_proj, pack), down)  # fmt: skip


def _concat_linears(linears: Sequence[Any]) -> tuple[Tensor, Tensor | None]:
    """One weight (and bias) for several ``nn.Linear`` on the same input; each module's own
    parameters become views of it, so the model computes as before and nothing is stored twice."""
    weight = torch.cat([m.weight for m in linears], dim=0)
    biases = [m.bias for m in linears]
    if any(b is not None for b in biases) and not all(b is not None for b in biases):
        raise ValueError("fused projections must all have a bias or none")
    bias = torch.cat(biases) if biases[0] is not None else None
    start = 0
    for m in linears:
        rows = m.weight.shape[0]
        m.weight.data = weight[start:start + rows]
        if bias is not None:
            m.bias.data = bias[start:start + rows]
        start += rows
    return weight, bias


def _sliding_window(config: object) -> int | None:
    window = getattr(config, "sliding_window", None)
    if window is None:
        return None
    if getattr(config, "model_type", "") == "qwen2" and not getattr(config, "use_sliding_window", False):
        return None
    return int(window)
