"""The chunk-reuse engine: ``Engine`` (model, chunk registry, chunk KV store) and its
OpenAI-compatible server (``semcache.gpu.engine.server.create_engine_app``, needs FastAPI).

Names are imported on first use, so importing this package loads neither torch nor FastAPI.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Engine": "semcache.gpu.engine.engine",
    "EngineConfig": "semcache.gpu.engine.engine",
    "Generation": "semcache.gpu.engine.engine",
    "GenerationStream": "semcache.gpu.engine.engine",
    "PrefillReport": "semcache.gpu.engine.engine",
    "SamplingParams": "semcache.gpu.engine.decoding",
    "create_engine_app": "semcache.gpu.engine.server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
