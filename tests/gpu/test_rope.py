"""RoPE tables against transformers, and re-rotation algebra for each scaling type."""

from __future__ import annotations

import pytest
import torch
from semcache.gpu.model.rope import RopeConfig, apply_rope, cos_sin
from semcache.gpu.ops.rope_rerotate.reference import rerotate_k_ref

pytestmark = pytest.mark.gpu

transformers = pytest.importorskip("transformers")
from transformers import LlamaConfig, PhiConfig  # noqa: E402
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding  # noqa: E402
from transformers.models.phi.modeling_phi import PhiRotaryEmbedding  # noqa: E402

ROPE_PARAMS = {
    "default": {"rope_type": "default", "rope_theta": 10000.0},
    "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
    "llama3": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 1024,
    },
    "yarn": {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 4.0,
        "original_max_position_embeddings": 1024,
    },
    "yarn-mscale": {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 8.0,
        "original_max_position_embeddings": 1024,
        "mscale": 0.707,
        "mscale_all_dim": 1.0,
        "beta_fast": 16.0,
    },
    "yarn-attn-factor": {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 4.0,
        "original_max_position_embeddings": 1024,
        "attention_factor": 1.3,
        "truncate": False,
    },
}


def llama_config(params: dict, head_dim: int = 64) -> LlamaConfig:
    return LlamaConfig(
        hidden_size=head_dim * 4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=head_dim,
        max_position_embeddings=8192,
        rope_parameters=dict(params),
    )


@pytest.mark.parametrize("name", list(ROPE_PARAMS))
def test_cos_sin_match_transformers(name: str) -> None:
    hf_cfg = llama_config(ROPE_PARAMS[name])
    cfg = RopeConfig.from_hf_config(hf_cfg)
    assert cfg.scaling_type == ROPE_PARAMS[name]["rope_type"]
    positions = torch.tensor([0, 1, 7, 100, 1023, 1024, 3000, 8191])
    hf = LlamaRotaryEmbedding(hf_cfg)
    x = torch.zeros(1, dtype=torch.float32)
    hf_cos, hf_sin = hf(x, positions[None])
    cos, sin = cos_sin(cfg, positions)
    torch.testing.assert_close(cfg.inv_freq(), hf.inv_freq, rtol=0, atol=0)
    torch.testing.assert_close(cos, hf_cos[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(sin, hf_sin[0], rtol=1e-6, atol=1e-6)
    assert cfg.attention_factor == pytest.approx(hf.attention_scaling)


def test_partial_rotary_matches_transformers() -> None:
    hf_cfg = PhiConfig(  # type: ignore[call-arg]
        hidden_size=256,
        num_attention_heads=4,
        partial_rotary_factor=0.5,
        max_position_embeddings=4096,
    )
    cfg = RopeConfig.from_hf_config(hf_cfg)
    assert (cfg.head_dim, cfg.rotary_dim) == (64, 32)
    positions = torch.arange(0, 4000, 37)
    hf_cos, hf_sin = PhiRotaryEmbedding(hf_cfg)(torch.zeros(1), positions[None])
    cos, sin = cos_sin(cfg, positions)
    torch.testing.assert_close(cos, hf_cos[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(sin, hf_sin[0], rtol=1e-6, atol=1e-6)
    x = torch.randn(len(positions), 3, 64)
    out = apply_rope(x, positions, cfg)
    assert torch.equal(out[..., 32:], x[..., 32:])
    assert not torch.allclose(out[1:, :, :32], x[1:, :, :32])


def test_legacy_rope_scaling_fields() -> None:
    class Legacy:  # an older config shape: rope_scaling + rope_theta, no rope_parameters
        hidden_size, num_attention_heads, max_position_embeddings = 512, 8, 4096
        rope_theta = 50000.0
        rope_scaling = {"type": "linear", "factor": 2.0}

    cfg = RopeConfig.from_hf_config(Legacy())
    assert (cfg.head_dim, cfg.rotary_dim, cfg.theta, cfg.scaling_type) == (
        64,
        64,
        50000.0,
        "linear",
    )
    assert cfg.params == {"factor": 2.0}


@pytest.mark.parametrize("rope_type", ["dynamic", "longrope", "mystery"])
def test_unsupported_types_fail_loudly(rope_type: str) -> None:
    class Cfg:
        hidden_size, num_attention_heads, max_position_embeddings = 256, 4, 4096
        rope_parameters = {"rope_type": rope_type, "rope_theta": 1e4, "factor": 2.0}

    with pytest.raises(NotImplementedError, match=rope_type):
        RopeConfig.from_hf_config(Cfg())
    with pytest.raises(NotImplementedError, match=rope_type):
        RopeConfig(64, 64, 1e4, rope_type)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="rotary_dim"):
        RopeConfig(64, 96, 1e4)
    with pytest.raises(ValueError, match="lacks"):
        RopeConfig(64, 64, 1e4, "linear")


CONFIGS = {name: RopeConfig.from_hf_config(llama_config(p)) for name, p in ROPE_PARAMS.items()}
CONFIGS["partial-yarn"] = RopeConfig.from_hf_config(
    llama_config({**ROPE_PARAMS["yarn"], "partial_rotary_factor": 0.5})
)
CONFIGS["partial-default-d128"] = RopeConfig(128, 96, 10000.0)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_rerotation_forth_and_back_is_identity(name: str) -> None:
    cfg = CONFIGS[name]
    g = torch.Generator().manual_seed(0)
    k = torch.randn(200, 3, cfg.head_dim, generator=g)
    delta = torch.randint(-4000, 4000, (200,), generator=g)
    back = rerotate_k_ref(rerotate_k_ref(k, delta, cfg), -delta, cfg)
    assert (back - k).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", list(CONFIGS))
def test_rerotation_moves_rope_between_positions(name: str) -> None:
    cfg = CONFIGS[name]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 4, cfg.head_dim, generator=g)
    p0 = torch.randint(0, 2048, (300,), generator=g)
    p1 = torch.randint(0, 2048, (300,), generator=g)
    moved = rerotate_k_ref(apply_rope(x, p0, cfg), p1 - p0, cfg)
    expected = apply_rope(x, p1, cfg)
    # fp32 angles p * inv_freq carry an absolute error up to ulp(2048) ~ 2.4e-4 rad, so
    # results of magnitude ~4 can differ by ~1e-3; unrelated rotations differ by O(1).
    err = (moved - expected).abs().max().item()
    assert err <= 2e-3, err
    rms = (moved - expected).pow(2).mean().sqrt() / expected.pow(2).mean().sqrt()
    assert rms.item() <= 1e-4
    assert (apply_rope(x, p0, cfg) - expected).abs().max().item() > 0.5  # the test can fail
