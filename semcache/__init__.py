"""semcache: a semantic response cache and chunk-level KV reuse for LLM apps.

This module stays light on purpose: importing ``semcache`` (or ``semcache.gpu``)
must not pull in SQLAlchemy, FastAPI or sentence-transformers. Heavy names are
resolved lazily on first attribute access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "SemanticCache": "semcache.cache",
    "CacheRequest": "semcache.types",
    "Document": "semcache.types",
    "Hit": "semcache.types",
    "Scope": "semcache.types",
    "LookupResult": "semcache.types",
    "Turn": "semcache.types",
}

if TYPE_CHECKING:  # pragma: no cover
    from semcache.cache import SemanticCache
    from semcache.types import CacheRequest, Document, Hit, LookupResult, Scope, Turn


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'semcache' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["SemanticCache", "CacheRequest", "Document", "Hit", "Scope", "LookupResult", "Turn", "__version__"]
