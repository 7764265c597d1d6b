"""``SemcacheCache``: a LangChain ``BaseCache`` backed by semcache.

Set it globally (``langchain_core.globals.set_llm_cache(SemcacheCache(...))``)
or per model (``ChatOpenAI(cache=SemcacheCache(...))``). Unlike caches that
embed LangChain's JSON scaffolding, it embeds only the last user turn; the
system prompt, tool results and the ``llm_string`` partition the search, so a
hit can only come from the same model configuration and the same exact context.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.caches import BaseCache
from langchain_core.outputs import Generation
from semcache.adapters.langchain.backends import Backend, LocalBackend
from semcache.adapters.langchain.codec import decode_generations, encode_generations
from semcache.adapters.langchain.parsing import build_request, parse_prompt, scope_for

from semcache.types import CacheRequest

log = logging.getLogger(__name__)


@dataclass
class CacheStats:
    """Counters of one adapter instance (approximate under concurrency is fine)."""

    lookups: int = 0
    hits: int = 0
    semantic_hits: int = 0
    stores: int = 0
    bypassed: int = 0


def as_backend(backend: Any) -> Backend:
    """A ``Backend`` from a backend, a ``SemanticCache`` or a store URL."""
    if isinstance(backend, Backend):
        return backend
    from semcache.cache import SemanticCache

    if isinstance(backend, (SemanticCache, str)):
        if isinstance(backend, str) and backend.startswith(("http://", "https://")):
            raise ValueError("pass RemoteBackend(url) for a remote proxy; a string backend is a store URL")
        return LocalBackend(backend)
    raise TypeError(f"backend must be a Backend, a SemanticCache or a store URL, got {type(backend).__name__}")


class SemcacheCache(BaseCache):
    """LangChain cache over a semcache backend (in-process ``SemanticCache`` or remote proxy).

    ``tenant`` names this application's share of the cache: ``clear()`` deletes
    every entry of that tenant (remote backings take the tenant from the API key
    and do not support ``clear``). ``threshold`` and ``category`` override the
    category policy per request, within the policy's bounds.
    """

    def __init__(self, backend: Any = "sqlite:///semcache.db", *, tenant: str = "langchain",
                 user: str | None = None, threshold: float | None = None, category: str | None = None) -> None:
        if not isinstance(tenant, str) or not tenant:
            raise ValueError(f"tenant must be a non-empty string, got {tenant!r}")
        if user is not None and not isinstance(user, str):
            # a non-string user would fall out of the scope and share answers across users
            raise TypeError(f"user must be a string or None, got {type(user).__name__}")
        self.backend = as_backend(backend)
        self._owns_backend = not isinstance(backend, Backend)
        self.tenant = tenant
        self.user = user
        self.threshold = threshold
        self.category = category
        self.stats = CacheStats()
        self._lock = threading.Lock()

    def request_for(self, prompt: str, llm_string: str) -> CacheRequest | None:
        """The ``CacheRequest`` for a LangChain (prompt, llm_string), or None when not cacheable."""
        parsed = parse_prompt(prompt)
        if parsed.prompt is None:
            log.debug("semcache bypass: %s", parsed.bypass_reason)
            return None
        return build_request(parsed, scope_for(llm_string, tenant=self.tenant, user=self.user),
                             category=self.category, threshold=self.threshold)

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def _result(self, hit: Any) -> list[Generation] | None:
        if hit is None:
            self._count(lookups=1)
            return None
        generations = decode_generations(hit.response)
        if generations is None:  # an entry written by another client (e.g. the OpenAI routes)
            self._count(lookups=1)
            return None
        self._count(lookups=1, hits=1, semantic_hits=int(hit.match == "semantic"))
        return generations

    def lookup(self, prompt: str, llm_string: str) -> Sequence[Generation] | None:
        """Cached generations for this prompt under this ``llm_string``, or None."""
        request = self.request_for(prompt, llm_string)
        if request is None:
            self._count(bypassed=1)
            return None
        return self._result(self.backend.lookup(request))

    async def alookup(self, prompt: str, llm_string: str) -> Sequence[Generation] | None:
        """Async ``lookup``."""
        request = self.request_for(prompt, llm_string)
        if request is None:
            self._count(bypassed=1)
            return None
        return self._result(await self.backend.alookup(request))

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Store generations for this prompt under this ``llm_string`` (an empty list stores nothing)."""
        payload = encode_generations(return_val)
        request = self.request_for(prompt, llm_string)
        if request is None or not return_val:
            self._count(bypassed=1)
            return
        if self.backend.store(request, payload) is not None:
            self._count(stores=1)

    async def aupdate(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Async ``update``."""
        payload = encode_generations(return_val)
        request = self.request_for(prompt, llm_string)
        if request is None or not return_val:
            self._count(bypassed=1)
            return
        if await self.backend.astore(request, payload) is not None:
            self._count(stores=1)

    def clear(self, **kwargs: Any) -> None:
        """Delete every entry of this cache's tenant."""
        self.backend.clear(self.tenant)

    async def aclear(self, **kwargs: Any) -> None:
        """Async ``clear``."""
        await self.backend.aclear(self.tenant)

    def close(self) -> None:
        """Close the backend if this cache created it."""
        if self._owns_backend:
            self.backend.close()
