"""Rotary position embeddings as Hugging Face Llama-family models apply them.

Conventions (HF ``rotate_half``): only the first ``rotary_dim`` dims of a head rotate; the pair of
dim ``i`` is ``i + rotary_dim // 2``; ``cos``/``sin`` are ``cat(freqs, freqs)`` with
``freqs = position * inv_freq``. Supported scaling types: default, linear, llama3, yarn. Others
(dynamic, longrope, ...) raise ``NotImplementedError``: their frequencies depend on the sequence
length, so cached K could not be re-rotated by a position delta alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

SUPPORTED_TYPES = ("default", "linear", "llama3", "yarn")
_REQUIRED: dict[str, tuple[str, ...]] = {
    "default": (),
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
    "yarn": (
        "factor",
        "original_max_position_embeddings",
        "attention_factor",
        "beta_fast",
        "beta_slow",
        "truncate",
    ),
}


@dataclass(frozen=True, slots=True)
class RopeConfig:
    """Rotary embedding parameters of one model (all layers share them).

    ``scaling`` holds the resolved parameters of ``scaling_type`` as sorted ``(name, value)``
    pairs; for yarn the attention factor is already resolved (``attention_factor`` key).
    """

    head_dim: int
    rotary_dim: int
    theta: float
    scaling_type: str = "default"
    scaling: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.scaling_type not in SUPPORTED_TYPES:
            raise NotImplementedError(
                f"RoPE scaling type {self.scaling_type!r} is not supported "
                f"(supported: {', '.join(SUPPORTED_TYPES)})"
            )
        if self.head_dim <= 0 or self.rotary_dim <= 0 or self.rotary_dim > self.head_dim:
            raise ValueError(
                f"need 0 < rotary_dim <= head_dim, got rotary_dim={self.rotary_dim}, "
                f"head_dim={self.head_dim}"
            )
        if self.rotary_dim % 2:
            raise ValueError(f"rotary_dim must be even, got {self.rotary_dim}")
        if self.theta <= 0:
            raise ValueError(f"theta must be positive, got {self.theta}")
        missing = [k for k in _REQUIRED[self.scaling_type] if k not in self.params]
        if missing:
            raise ValueError(f"{self.scaling_type} RoPE scaling lacks parameters {missing}")

    @property
    def params(self) -> dict[str, float]:
        """``scaling`` as a dict."""
        return dict(self.scaling)

    @property
    def attention_factor(self) -> float:
        """Factor HF multiplies cos/sin with (yarn's mscale); 1.0 for the other types."""
        if self.scaling_type == "yarn":
            return float(self.params["attention_factor"])
        return 1.0

    @classmethod
    def from_hf_config(cls, cfg: Any) -> RopeConfig:
        """Build from a transformers ``PretrainedConfig`` (Llama family).

        Reads ``cfg.rope_parameters`` (transformers >= 5) or, for older configs,
        ``cfg.rope_scaling`` plus ``cfg.rope_theta``; ``partial_rotary_factor`` from either the
        rope parameters or the config. Raises ``NotImplementedError`` for unsupported types.
        """
        params: dict[str, Any] = dict(getattr(cfg, "rope_parameters", None) or {})
        if not params:
            params = dict(getattr(cfg, "rope_scaling", None) or {})
            params.setdefault("rope_theta", getattr(cfg, "rope_theta", 10000.0))
        if any(isinstance(v, Mapping) for v in params.values()):
            raise NotImplementedError("per-layer-type RoPE parameters are not supported")
        rope_type = str(params.get("rope_type", params.get("type", "default")))
        if rope_type not in SUPPORTED_TYPES:
            raise NotImplementedError(
                f"RoPE scaling type {rope_type!r} is not supported "
                f"(supported: {', '.join(SUPPORTED_TYPES)})"
            )
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        partial = params.get("partial_rotary_factor", getattr(cfg, "partial_rotary_factor", None))
        rotary_dim = int(head_dim * (1.0 if partial is None else float(partial)))
        theta = float(params["rope_theta"])
        scaling = _resolve_scaling(rope_type, params, cfg, rotary_dim)
        return cls(int(head_dim), rotary_dim, theta, rope_type, tuple(sorted(scaling.items())))

    def inv_freq(self, device: torch.device | str | None = None) -> Tensor:
        """Inverse frequencies, ``[rotary_dim // 2]`` float32, as transformers computes them."""
        dim = self.rotary_dim
        exps = torch.arange(0, dim, 2, dtype=torch.int64).to(dtype=torch.float32) / dim
        base = 1.0 / (self.theta**exps)
        p = self.params
        if self.scaling_type == "linear":
            base = base / p["factor"]
        elif self.scaling_type == "llama3":
            base = _llama3(base, p)
        elif self.scaling_type == "yarn":
            base = _yarn(exps, self.theta, dim, p)
        return base.to(device=device)


def _resolve_scaling(
    rope_type: str, params: Mapping[str, Any], cfg: Any, rotary_dim: int
) -> dict[str, float]:
    if rope_type == "default":
        return {}
    if rope_type == "linear":
        return {"factor": float(params["factor"])}
    orig = (
        params.get("original_max_position_embeddings")
        or getattr(cfg, "original_max_position_embeddings", None)
        or cfg.max_position_embeddings
    )
    if rope_type == "llama3":
        return {
            "factor": float(params["factor"]),
            "low_freq_factor": float(params["low_freq_factor"]),
            "high_freq_factor": float(params["high_freq_factor"]),
            "original_max_position_embeddings": float(orig),
        }
    factor = params.get("factor")
    factor = float(cfg.max_position_embeddings / orig if factor is None else factor)
    attn = params.get("attention_factor")
    if attn is None:
        mscale, mscale_all = params.get("mscale"), params.get("mscale_all_dim")
        if mscale and mscale_all:
            attn = _yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all)
        else:
            attn = _yarn_mscale(factor)
    return {
        "factor": factor,
        "original_max_position_embeddings": float(orig),
        "attention_factor": float(attn),
        "beta_fast": float(params.get("beta_fast") or 32),
        "beta_slow": float(params.get("beta_slow") or 1),
        "truncate": 1.0 if params.get("truncate", True) else 0.0,
    }


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def _llama3(inv_freq: Tensor, p: Mapping[str, float]) -> Tensor:
    factor, old_len = p["factor"], p["original_max_position_embeddings"]
    low_wavelen = old_len / p["low_freq_factor"]
    high_wavelen = old_len / p["high_freq_factor"]
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - p["low_freq_factor"]) / (
        p["high_freq_factor"] - p["low_freq_factor"]
    )
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, scaled)


def _yarn(exps: Tensor, theta: float, dim: int, p: Mapping[str, float]) -> Tensor:
    pos_freqs = theta**exps
    extrapolation, interpolation = 1.0 / pos_freqs, 1.0 / (p["factor"] * pos_freqs)
    orig = p["original_max_position_embeddings"]

    def correction_dim(rotations: float) -> float:
        return (dim * math.log(orig / (rotations * 2 * math.pi))) / (2 * math.log(theta))

    low, high = correction_dim(p["beta_fast"]), correction_dim(p["beta_slow"])
    if p["truncate"]:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    extra_weight = 1 - ramp
    return interpolation * (1 - extra_weight) + extrapolation * extra_weight


def _check_positions(positions: Tensor, n: int | None = None) -> None:
    if positions.dim() != 1 or positions.dtype.is_floating_point:
        raise TypeError(
            f"positions must be a 1-D integer tensor, got {positions.dtype} "
            f"{tuple(positions.shape)}"
        )
    if n is not None and positions.shape[0] != n:
        raise ValueError(f"positions has {positions.shape[0]} entries, expected {n}")


def cos_sin(
    cfg: RopeConfig, positions: Tensor, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """cos and sin tables ``[T, rotary_dim]`` for integer ``positions [T]``.

    Computed in float32 like transformers, scaled by ``cfg.attention_factor``, then cast to ``dtype``.
    """
    _check_positions(positions)
    freqs = positions.to(torch.float32)[:, None] * cfg.inv_freq(positions.device)[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    scale = cfg.attention_factor
    return (emb.cos() * scale).to(dtype), (emb.sin() * scale).to(dtype)


def rotate(x: Tensor, cos: Tensor, sin: Tensor, rotary_dim: int) -> Tensor:
    """Rotate the first ``rotary_dim`` dims of ``x [T, H, D]`` by ``cos/sin [T, rotary_dim]``.

    Math in float32; the result has ``x.dtype``; dims past ``rotary_dim`` pass through.
    """
    xf = x.to(torch.float32)
    rot, rest = xf[..., :rotary_dim], xf[..., rotary_dim:]
    half = rotary_dim // 2
    rotated_half = torch.cat((-rot[..., half:], rot[..., :half]), dim=-1)
    c, s = cos.to(torch.float32)[:, None, :], sin.to(torch.float32)[:, None, :]
    out = torch.cat((rot * c + rotated_half * s, rest), dim=-1)
    return out.to(x.dtype)


def rotation_matrix(cfg: RopeConfig, delta: int, device: torch.device | str | None = None) -> Tensor:
    """``R [D, D]`` float32 with ``x @ R.T`` = ``x`` rotated by ``delta`` positions (no attention
    factor): ``rotate`` with the angles ``delta * inv_freq`` as a matrix, for rotating many rows
    by one shift in a single GEMM. Dims past ``rotary_dim`` pass through."""
    half = cfg.rotary_dim // 2
    angles = float(delta) * cfg.inv_freq(device)
    cos, sin = angles.cos(), angles.sin()
    rot = torch.eye(cfg.head_dim, dtype=torch.float32, device=device)
    i = torch.arange(half, device=device)
    rot[i, i], rot[i + half, i + half] = cos, cos
    rot[i, i + half], rot[i + half, i] = -sin, sin
    return rot


def apply_rope(x: Tensor, positions: Tensor, cfg: RopeConfig) -> Tensor:
    """Apply RoPE to ``x [T, H, D]`` at ``positions [T]``, as the model does (with attention factor)."""
    if x.dim() != 3 or x.shape[-1] != cfg.head_dim:
        raise ValueError(f"x must be [T, H, {cfg.head_dim}], got {tuple(x.shape)}")
    _check_positions(positions, x.shape[0])
    cos, sin = cos_sin(cfg, positions)
    return rotate(x, cos, sin, cfg.rotary_dim)
