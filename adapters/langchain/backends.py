"""Where the LangChain adapter keeps its entries: in process, or in a remote semcache proxy.

Both backings speak ``CacheRequest`` in and ``semcache.types.Hit`` out, sync and
async. ``LocalBackend`` wraps a ``SemanticCache``; ``RemoteBackend`` calls the
proxy's JSON cache API (``POST /semcache/v1/lookup`` and ``/semcache/v1/store``),
so many application processes share one cache. A remote cache fails open: when
the proxy cannot be reached or answers 5xx, a lookup is a miss and a store is
skipped (logged), so the application keeps working without its cache.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import httpx

from semcache.types import CacheRequest, Hit

if TYPE_CHECKING:
    from semcache.cache import SemanticCache

log = logging.getLogger(__name__)


@runtime_checkable
class Backend(Protocol):
    """What the adapter needs from a cache backing."""

    def lookup(self, request: CacheRequest) -> Hit | None: ...
    async def alookup(self, request: CacheRequest) -> Hit | None: ...
    def store(self, request: CacheRequest, response: Any, *, tokens: int = 0,
              latency_ms: float = 0.0) -> int | None: ...
    async def astore(self, request: CacheRequest, response: Any, *, tokens: int = 0,
                     latency_ms: float = 0.0) -> int | None: ...
    def clear(self, tenant: str) -> int: ...
    async def aclear(self, tenant: str) -> int: ...
    def close(self) -> None: ...


class LocalBackend:
    """An in-process ``SemanticCache`` (given, or built from a store URL and owned)."""

    def __init__(self, cache: SemanticCache | str = "sqlite:///semcache.db", **cache_kwargs: Any) -> None:
        from semcache.cache import SemanticCache

        if isinstance(cache, SemanticCache):
            if cache_kwargs:
                raise ValueError("cache_kwargs only apply when LocalBackend builds the SemanticCache")
            self.cache, self._owns = cache, False
        elif isinstance(cache, str):
            self.cache, self._owns = SemanticCache(cache, **cache_kwargs), True
        else:
            raise TypeError(f"cache must be a SemanticCache or a store URL, got {type(cache).__name__}")

    def lookup(self, request: CacheRequest) -> Hit | None:
        """Exact, then semantic lookup inside the request's partition."""
        return self.cache.lookup(request)

    async def alookup(self, request: CacheRequest) -> Hit | None:
        """``lookup`` without blocking the event loop."""
        return await self.cache.alookup(request)

    def store(self, request: CacheRequest, response: Any, *, tokens: int = 0,
              latency_ms: float = 0.0) -> int | None:
        """Store a payload; the entry id, or None when policy says not to cache."""
        return self.cache.store(request, response, tokens=tokens, latency_ms=latency_ms)

    async def astore(self, request: CacheRequest, response: Any, *, tokens: int = 0,
                     latency_ms: float = 0.0) -> int | None:
        """``store`` without blocking the event loop."""
        return await self.cache.astore(request, response, tokens=tokens, latency_ms=latency_ms)

    def clear(self, tenant: str) -> int:
        """Delete every entry of ``tenant``; returns how many."""
        return len(self.cache.invalidate(tenant=tenant))

    async def aclear(self, tenant: str) -> int:
        """``clear`` off the event loop."""
        return await asyncio.to_thread(self.clear, tenant)

    def close(self) -> None:
        """Close the cache if this backend built it."""
        if self._owns:
            self.cache.close()


class RemoteBackend:
    """A semcache proxy's cache API. The tenant comes from ``api_key`` on the proxy side.

    ``transport`` / ``async_transport`` are injectable (``httpx.MockTransport``,
    ``httpx.ASGITransport``) for tests and in-process deployments.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None,
                 async_transport: httpx.AsyncBaseTransport | None = None, fail_open: bool = True) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        root = base_url.rstrip("/")
        if root.endswith("/v1"):  # accept the OpenAI base URL of the same proxy
            root = root[: -len("/v1")]
        self.base_url = root
        self.fail_open = fail_open
        self._client = httpx.Client(base_url=root, headers=headers, timeout=timeout, transport=transport)
        self._aclient = httpx.AsyncClient(base_url=root, headers=headers, timeout=timeout,
                                          transport=async_transport)

    @staticmethod
    def _body(request: CacheRequest) -> dict[str, Any]:
        scope = request.scope
        body: dict[str, Any] = {
            "prompt": request.prompt, "model": scope.model, "params": {"scope_params": scope.params},
            "user": scope.user, "history": [{"role": t.role, "content": t.content} for t in request.history],
            "system": request.system,
            "documents": [{"text": d.text, "source": d.source} for d in request.documents],
        }
        if request.category is not None:
            body["category"] = request.category
        if request.threshold is not None:
            body["threshold"] = request.threshold
        return body

    def _fail(self, what: str, exc: Exception) -> None:
        if not self.fail_open:
            raise exc
        log.warning("semcache proxy %s failed, continuing without the cache: %s", what, exc)

    @staticmethod
    def _check(response: httpx.Response) -> dict[str, Any]:
        if 400 <= response.status_code < 500:
            raise ValueError(f"semcache proxy refused the request ({response.status_code}): {response.text[:500]}")
        response.raise_for_status()
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise httpx.DecodingError("expected a JSON object from the semcache proxy")
        return data

    @staticmethod
    def _hit(data: dict[str, Any], request: CacheRequest) -> Hit | None:
        if not data.get("hit"):
            return None
        return Hit(int(data.get("entry_id") or 0), data.get("response"), data.get("match") or "semantic",
                   float(data.get("similarity") or 0.0), str(data.get("category") or ""), "")

    def lookup(self, request: CacheRequest) -> Hit | None:
        """POST /semcache/v1/lookup."""
        try:
            response = self._client.post("/semcache/v1/lookup", json=self._body(request))
            return self._hit(self._check(response), request)
        except httpx.HTTPError as exc:
            self._fail("lookup", exc)
            return None

    async def alookup(self, request: CacheRequest) -> Hit | None:
        """``lookup`` with the async client."""
        try:
            response = await self._aclient.post("/semcache/v1/lookup", json=self._body(request))
            return self._hit(self._check(response), request)
        except httpx.HTTPError as exc:
            self._fail("lookup", exc)
            return None

    def _store_body(self, request: CacheRequest, response: Any, tokens: int, latency_ms: float) -> dict[str, Any]:
        return {**self._body(request), "response": response, "tokens": max(0, int(tokens)),
                "latency_ms": max(0.0, float(latency_ms))}

    def store(self, request: CacheRequest, response: Any, *, tokens: int = 0,
              latency_ms: float = 0.0) -> int | None:
        """POST /semcache/v1/store; the entry id, or None when not stored."""
        try:
            data = self._check(self._client.post("/semcache/v1/store",
                                                 json=self._store_body(request, response, tokens, latency_ms)))
        except httpx.HTTPError as exc:
            self._fail("store", exc)
            return None
        return data.get("entry_id") if data.get("stored") else None

    async def astore(self, request: CacheRequest, response: Any, *, tokens: int = 0,
                     latency_ms: float = 0.0) -> int | None:
        """``store`` with the async client."""
        try:
            data = self._check(await self._aclient.post(
                "/semcache/v1/store", json=self._store_body(request, response, tokens, latency_ms)))
        except httpx.HTTPError as exc:
            self._fail("store", exc)
            return None
        return data.get("entry_id") if data.get("stored") else None

    def clear(self, tenant: str) -> int:
        """Not offered remotely: the proxy's cache API has no delete."""
        raise NotImplementedError("the proxy's cache API cannot delete entries; call "
                                  "SemanticCache.invalidate(tenant=...) on the proxy's database")

    async def aclear(self, tenant: str) -> int:
        """Not offered remotely (see ``clear``)."""
        return self.clear(tenant)

    def close(self) -> None:
        """Close the sync client (the async one is closed by ``aclose``)."""
        self._client.close()

    async def aclose(self) -> None:
        """Close both clients."""
        self._client.close()
        await self._aclient.aclose()
