"""LangChain integration: a semantic ``BaseCache`` and a caching chat-model wrapper.

    from semcache.adapters.langchain import SemcacheCache, SemcacheChatModel, LocalBackend, RemoteBackend

Needs ``pip install semcache[langchain]``.
"""

from __future__ import annotations

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the LangChain adapter needs langchain-core: pip install 'semcache[langchain]'") from exc

from semcache.adapters.langchain.backends import Backend, LocalBackend, RemoteBackend
from semcache.adapters.langchain.cache import CacheStats, SemcacheCache
from semcache.adapters.langchain.chat_model import SemcacheChatModel
from semcache.adapters.langchain.parsing import ParsedPrompt, parse_prompt, scope_for

__all__ = [
    "Backend", "CacheStats", "LocalBackend", "ParsedPrompt", "RemoteBackend", "SemcacheCache",
    "SemcacheChatModel", "parse_prompt", "scope_for",
]
