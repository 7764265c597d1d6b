"""The HTTP client to the OpenAI-compatible upstream (vLLM or any other).

Transport errors become OpenAI-format :class:`ProxyError`s with the status a
gateway should give: unreachable or broken connection -> 502, overloaded
(upstream 503) -> 503, too slow -> 504. Connect errors and the configured
``retry_statuses`` are retried with exponential backoff; a read timeout is not
(the time is already spent). The transport is injectable, so tests run the
proxy against an ``httpx.MockTransport`` or an ASGI fake.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from semcache.adapters.proxy.metrics import ProxyMetrics
from semcache.adapters.proxy.settings import ProxySettings
from semcache.adapters.server.errors import ProxyError

# Request headers that describe one hop only, or that httpx sets itself.
HOP_HEADERS = frozenset({
    "host", "content-length", "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "transfer-encoding", "upgrade", "accept-encoding",
})


def gateway_status(upstream_status: int) -> int:
    """The status the proxy answers when the upstream answered ``upstream_status`` (>= 500)."""
    return upstream_status if upstream_status in (503, 504) else 502


def upstream_error(response_status: int, content: bytes) -> ProxyError:
    """An upstream 5xx turned into the proxy's error, keeping the upstream's message."""
    detail = content[:500].decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(content)
        if isinstance(parsed, dict):
            err = parsed.get("error")
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                detail = err["message"]
            elif isinstance(parsed.get("message"), str):
                detail = parsed["message"]
    except ValueError:
        pass
    status = gateway_status(response_status)
    code = {503: "upstream_overloaded", 504: "upstream_timeout"}.get(status, "upstream_error")
    return ProxyError(status, f"upstream returned {response_status}: {detail or 'no body'}", code=code)


class Upstream:
    """An ``httpx.AsyncClient`` bound to the upstream, with retries and error mapping."""

    def __init__(
        self,
        settings: ProxySettings,
        metrics: ProxyMetrics,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        timeout = httpx.Timeout(
            connect=settings.connect_timeout_s, read=settings.read_timeout_s,
            write=settings.read_timeout_s, pool=settings.read_timeout_s,
        )
        limits = httpx.Limits(max_connections=settings.max_connections,
                              max_keepalive_connections=settings.max_connections)
        self.client = httpx.AsyncClient(base_url=settings.upstream_url, transport=transport,
                                        timeout=timeout, limits=limits)

    async def close(self) -> None:
        await self.client.aclose()

    def _map(self, exc: httpx.HTTPError) -> ProxyError:
        url = self.settings.upstream_url
        if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
            self.metrics.upstream_errors.labels("unreachable").inc()
            return ProxyError(502, f"upstream {url} is unreachable: {exc!s}", code="upstream_unreachable")
        if isinstance(exc, httpx.TimeoutException):
            self.metrics.upstream_errors.labels("timeout").inc()
            return ProxyError(504, f"upstream {url} timed out ({type(exc).__name__})", code="upstream_timeout")
        self.metrics.upstream_errors.labels("protocol").inc()
        return ProxyError(502, f"upstream {url} failed: {type(exc).__name__}: {exc!s}",
                          code="upstream_protocol_error")

    async def _send(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        attempts = self.settings.retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await self.client.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if last:
                    raise self._map(exc) from exc
            except httpx.HTTPError as exc:
                raise self._map(exc) from exc
            else:
                if last or response.status_code not in self.settings.retry_statuses:
                    return response
                await response.aclose()
            await asyncio.sleep(self.settings.retry_backoff_s * (2 ** attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def build(self, method: str, path: str, *, json_body: Any = None, content: bytes | None = None,
              headers: Mapping[str, str] | None = None, params: Any = None) -> httpx.Request:
        """A request to the upstream; ``path`` is relative to the upstream base URL."""
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
        merged = {k: v for k, v in (headers or {}).items() if k.lower() not in HOP_HEADERS}
        if json_body is not None:
            merged["content-type"] = "application/json"
        return self.client.build_request(method, path, content=content, headers=merged, params=params)

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send and read the whole body; 5xx (after retries) raises :class:`ProxyError`."""
        self.metrics.inflight_upstream.inc()
        try:
            response = await self._send(request, stream=True)
            try:
                await response.aread()
            except httpx.HTTPError as exc:
                raise self._map(exc) from exc
            finally:
                await response.aclose()
        finally:
            self.metrics.inflight_upstream.dec()
        if response.status_code >= 500:
            self.metrics.upstream_errors.labels(f"status_{response.status_code}").inc()
            raise upstream_error(response.status_code, response.content)
        return response

    @asynccontextmanager
    async def stream(self, request: httpx.Request) -> AsyncIterator[httpx.Response]:
        """Open a streaming response (status and headers read; body not yet)."""
        self.metrics.inflight_upstream.inc()
        try:
            response = await self._send(request, stream=True)
            try:
                if response.status_code >= 500:
                    try:
                        await response.aread()
                    except httpx.HTTPError as exc:
                        raise self._map(exc) from exc
                    self.metrics.upstream_errors.labels(f"status_{response.status_code}").inc()
                    raise upstream_error(response.status_code, response.content)
                yield response
            finally:
                await response.aclose()
        finally:
            self.metrics.inflight_upstream.dec()

    async def lines(self, response: httpx.Response) -> AsyncIterator[str]:
        """The streaming body line by line; a broken connection raises :class:`ProxyError`."""
        try:
            async for line in response.aiter_lines():
                yield line
        except httpx.HTTPError as exc:
            raise self._map(exc) from exc
