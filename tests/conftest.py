"""Shared test set-up.

Servers (PostgreSQL, Redis, vLLM, Chromium) come from session-scoped fixtures in
tests/fixtures/, bound to 127.0.0.1 and stopped by PID.
"""

from __future__ import annotations

import os

# Offline model loading, and the Triton interpreter when there is no GPU. Both
# must be set before transformers or triton are first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
try:
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
except ImportError:  # pragma: no cover - torch is a core dependency
    pass

pytest_plugins = [
    "tests.fixtures.models",
    "tests.fixtures.postgres",
    "tests.fixtures.redis",
    "tests.fixtures.vllm",
]
