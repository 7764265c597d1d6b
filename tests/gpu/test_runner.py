"""The model runner against the HF forward pass, on tiny random Llama-family models (CPU)."""

from __future__ import annotations

import pytest
import torch
from semcache.gpu.model.linear import prepack_pays, prepack_works
from semcache.gpu.model.loader import check_arch, llama3_8b_config, random_model
from semcache.gpu.model.runner import ModelRunner
from transformers import GPT2Config, LlamaConfig, MistralConfig, Qwen2Config

pytestmark = pytest.mark.gpu

SMALL = dict(
    vocab_size=97,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
)
CONFIGS = {
    "llama": lambda: LlamaConfig(**SMALL),
    "llama3-scaled": lambda: LlamaConfig(
        **SMALL,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        },
    ),
    "qwen2-bias": lambda: Qwen2Config(**SMALL),
    "mistral": lambda: MistralConfig(**SMALL, sliding_window=None),
}


def _model(name: str) -> torch.nn.Module:
    return random_model(CONFIGS[name](), dtype=torch.float32, seed=1).model


@pytest.mark.parametrize("name", list(CONFIGS))
def test_prefill_matches_hf_forward(name: str) -> None:
    model = _model(name)
    ids = torch.randint(0, 97, (41,), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(ids[None]).logits[0]
    logits, kv = ModelRunner(model).prefill(ids, all_logits=True)
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=1e-5)
    assert len(kv) == 41 and len(kv.keys) == 3
    assert kv.keys[0].shape == (41, 2, 16)


@pytest.mark.parametrize("name", ["llama", "qwen2-bias"])
def test_extend_and_decode_match_full_prefill(name: str) -> None:
    model = _model(name)
    runner = ModelRunner(model)
    ids = torch.randint(0, 97, (30,), generator=torch.Generator().manual_seed(2))
    full, _ = runner.prefill(ids, all_logits=True)
    _, kv = runner.prefill(ids[:17])
    ext = runner.extend(ids[17:29], kv, all_logits=True)
    torch.testing.assert_close(ext, full[17:29], atol=1e-5, rtol=1e-5)
    step = runner.decode_step(int(ids[29]), kv)
    torch.testing.assert_close(step, full[29], atol=1e-5, rtol=1e-5)
    assert len(kv) == 30 and kv.positions.tolist() == list(range(30))


def test_greedy_matches_hf_generate() -> None:
    model = _model("llama")
    runner = ModelRunner(model)
    ids = [5, 17, 3, 88, 41, 9]
    logits, kv = runner.prefill(ids)
    ours = runner.greedy(logits, kv, 6)
    seq = list(ids)
    with torch.no_grad():
        for _ in range(6):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    assert ours == seq[len(ids) :]


def test_non_llama_family_is_refused() -> None:
    cfg = GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50)
    with pytest.raises(ValueError, match="unsupported architecture 'gpt2'"):
        check_arch(cfg)
    with pytest.raises(ValueError, match="Llama-family"):
        random_model(cfg, dtype=torch.float32)


def test_sliding_window_limit_is_enforced() -> None:
    model = random_model(MistralConfig(**SMALL, sliding_window=8), dtype=torch.float32).model
    runner = ModelRunner(model)
    runner.prefill(list(range(8)))
    with pytest.raises(ValueError, match="sliding window 8"):
        runner.prefill(list(range(9)))


def test_empty_prompt_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        ModelRunner(_model("llama")).prefill([])


def test_llama3_8b_shape() -> None:
    cfg = llama3_8b_config(2)
    assert (cfg.hidden_size, cfg.num_key_value_heads, cfg.head_dim, cfg.vocab_size) == (
        4096,
        8,
        128,
        128256,
    )
    assert cfg.rope_parameters["rope_type"] == "llama3"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fused_layer_kernels_match_the_hf_maths(name: str) -> None:
    # the Triton layer ops (interpreter on CPU) against the torch path, which is the HF maths above
    device = "cuda" if torch.cuda.is_available() else "cpu"
    runner = ModelRunner(_model(name).to(device))
    ids = torch.randint(0, 97, (23,), generator=torch.Generator().manual_seed(2)).to(device)
    cos, sin = runner.rope_tables(torch.arange(23, device=device))
    hidden = runner.embed(ids)
    with torch.inference_mode():
        for layer in range(runner.num_layers):
            ref = runner.qkv(layer, hidden, cos, sin, impl="torch")
            out = runner.qkv(layer, hidden, cos, sin, impl="triton")
            for a, b in zip(out, ref, strict=True):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
            attn = runner.causal_attention(*ref)
            nxt = runner.finish_layer(layer, hidden, attn, impl="torch")
            torch.testing.assert_close(runner.finish_layer(layer, hidden, attn, impl="triton"), nxt,
                                       atol=1e-5, rtol=1e-5)  # fmt: skip
            hidden = nxt


def test_fused_projections_share_the_model_weights() -> None:
    model = _model("qwen2-bias")
    runner = ModelRunner(model)
    attn = model.model.layers[0].self_attn
    fused = runner.weights[0].qkv.weight
    assert attn.q_proj.weight.data_ptr() == fused.data_ptr()  # a view, not a copy
    assert attn.k_proj.weight.data_ptr() == fused[attn.q_proj.weight.shape[0]:].data_ptr()
    assert runner.weights[0].qkv.bias is not None and runner.weights[0].gate_up is not None
    assert not runner.prepacked and runner.weights[0].qkv.packed is None  # fp32: never packed


needs_prepack = pytest.mark.skipif(not prepack_works(), reason="no oneDNN packed linear ops in this torch")


@needs_prepack
@pytest.mark.parametrize("name", ["llama", "qwen2-bias"])
def test_packed_bf16_projections_match_plain_ones(name: str) -> None:
    """bf16 on CPU: prefill, extend and the residual epilogues agree with the F.linear path."""
    model = random_model(CONFIGS[name](), dtype=torch.bfloat16, seed=3).model
    packed, plain = ModelRunner(model, prepack=True), ModelRunner(model, prepack=False)
    assert packed.prepacked and packed.weights[0].qkv.packed is not None
    assert plain.weights[0].qkv.packed is None
    ids = torch.randint(0, 97, (37,), generator=torch.Generator().manual_seed(4))
    for rows in (ids[:1], ids[:5], ids):  # a decoding step's single row up to a prefill
        got, got_kv = packed.prefill(rows, all_logits=True)
        want, want_kv = plain.prefill(rows, all_logits=True)
        torch.testing.assert_close(got, want, atol=0.05, rtol=0.02)
        for a, b in zip(got_kv.keys + got_kv.values, want_kv.keys + want_kv.values, strict=True):
            torch.testing.assert_close(a, b, atol=0.05, rtol=0.02)
    _, kv = packed.prefill(ids[:20])
    ext = packed.extend(ids[20:], kv, all_logits=True)
    torch.testing.assert_close(ext, packed.prefill(ids, all_logits=True)[0][20:], atol=0.05, rtol=0.02)


def test_prepack_is_refused_where_it_does_not_apply() -> None:
    model = _model("llama")  # fp32
    with pytest.raises(ValueError, match="only bf16 CPU weights"):
        ModelRunner(model, prepack=True)
    assert not prepack_pays(torch.device("cpu"), torch.float32)
    assert not prepack_pays(torch.device("cuda"), torch.bfloat16)


def test_position_tables_equal_rope_tables_of_the_same_positions() -> None:
    run = ModelRunner(_model("llama"))
    for start, n in [(0, 5), (3, 1), (0, 9), (17, 40), (2, 3), (-4, 6)]:  # grows, then slices
        positions, cos, sin = run.position_tables(start, n)
        assert torch.equal(positions, torch.arange(start, start + n))
        ref_cos, ref_sin = run.rope_tables(torch.arange(start, start + n))
        assert torch.equal(cos, ref_cos) and torch.equal(sin, ref_sin)
    assert run._position_tables is not None and run._position_tables[0].shape[0] == 64


class _CountingKernels:
    """``LayerKernels`` that count their calls and compute with ``ops`` (the same maths)."""

    def __init__(self) -> None:
        self.norms = self.ropes = 0

    def rms_norm(self, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        from semcache.gpu.ops import dispatch as ops

        self.norms += 1
        return ops.rms_norm(x, weight, eps)

    def rope_qkv(self, qkv, cos, sin, num_heads, num_kv_heads):  # type: ignore[no-untyped-def]
        from semcache.gpu.ops import dispatch as ops

        self.ropes += 1
        return ops.rope_qkv(qkv, cos, sin, num_heads, num_kv_heads)


def test_layer_kernels_replace_norms_and_rope_for_auto_only() -> None:
    model = _model("llama")
    kernels = _CountingKernels()
    with_k, plain = ModelRunner(model, kernels=kernels), ModelRunner(model)
    ids = torch.randint(0, 97, (11,), generator=torch.Generator().manual_seed(2))
    got, _ = with_k.prefill(ids)
    want, _ = plain.prefill(ids)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    layers = with_k.num_layers
    assert (kernels.norms, kernels.ropes) == (2 * layers, layers)
    with torch.inference_mode():
        positions, cos, sin = with_k.position_tables(0, 11)
        hidden = with_k.embed(ids)
        with_k.qkv(0, hidden, cos, sin, impl="torch")  # the plain-PyTorch baseline: its own maths
        with_k.finish_layer(0, hidden, torch.zeros(11, 4, 16), impl="torch")
    assert (kernels.norms, kernels.ropes) == (2 * layers, layers)
