"""The cache flow of one completion request: lookup, single-flight, upstream, store.

``x-semcache`` says what happened: ``hit`` (answered from the cache), ``miss``
(answered by the upstream after a lookup, or with ``no-cache``), ``bypass``
(not cacheable: see ``x-semcache-reason``). Only a complete 200 answer whose
choices all finished with ``stop`` or ``length`` is stored, and the stored
entry's id is sent back (``x-semcache-entry`` header, or an SSE comment on a
stream) only after its SQL commit.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from semcache.adapters.proxy.intake import header_value, oversized, read_request
from semcache.adapters.proxy.parse import ParsedRequest
from semcache.adapters.proxy.state import ProxyState
from semcache.adapters.proxy.streaming import (
    DONE,
    ManagedStream,
    StreamAccumulator,
    entry_comment,
    replay,
    sse,
    storable,
)
from semcache.adapters.proxy.upstream import HOP_HEADERS
from semcache.adapters.server.body_guard import OFF_LOOP_BYTES
from semcache.adapters.server.errors import ProxyError
from semcache.adapters.server.keys import Principal
from sqlalchemy.exc import SQLAlchemyError

from semcache.types import CacheRequest, LookupResult

log = logging.getLogger("semcache.proxy")
PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_DROP_REQUEST_HEADERS = HOP_HEADERS | {"authorization", "cache-control", "cookie"}
_DROP_RESPONSE_HEADERS = HOP_HEADERS | {"content-encoding", "date", "server"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished upstream answer, shared with single-flight followers."""

    status: int
    body: Any  # parsed JSON on 200, raw bytes otherwise
    media_type: str = "application/json"
    entry_id: int | None = None


class CompletionHandler:
    """Runs ``/v1/chat/completions`` and ``/v1/completions`` through the cache."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self.s = state.settings

    # ----------------------------------------------------------------- entry
    async def handle(self, endpoint: str, request: Request, principal: Principal) -> Response:
        started = time.perf_counter()
        raw = await request.body()
        read = functools.partial(read_request, endpoint, raw, principal.tenant, dict(request.headers), self.s)
        # JSON work on a large body goes to a thread: other clients' hits must not wait for it
        parsed = await asyncio.to_thread(read) if len(raw) > OFF_LOOP_BYTES else read()
        up_headers = self.upstream_headers(request.headers)
        req = parsed.cache_request
        if req is None:
            return await self._bypass(parsed, up_headers, parsed.bypass_reason, started)
        too_large = oversized(req, self.s.max_prompt_chars)
        if too_large is not None:
            return await self._bypass(parsed, up_headers, too_large, started)
        headers: dict[str, str] = {}
        if parsed.controls.no_cache:
            if parsed.controls.no_store:
                return await self._bypass(parsed, up_headers, "no-cache and no-store requested", started)
            headers["x-semcache-reason"] = "no-cache requested"
            return await self._miss(parsed, req, up_headers, headers, started, coalesce=False)
        try:
            result: LookupResult = await self.state.cache.alookup_detailed(req)
        except SQLAlchemyError as exc:  # the database is away and the answer is not in memory
            log.warning("lookup needed the database and failed (%s); asking the upstream", type(exc).__name__)
            headers["x-semcache-reason"] = "store unavailable"
            return await self._miss(parsed, None, up_headers, headers, started, coalesce=True)
        if result.hit is not None and await self._fresh_enough(parsed, result.hit.entry_id, headers):
            return self._hit(parsed, result, started)
        if result.hit is None and result.bypass_reason:
            return await self._bypass(parsed, up_headers, result.bypass_reason, started)
        headers["x-semcache-category"] = result.category
        headers["x-semcache-threshold"] = f"{result.threshold:.4f}"
        if result.best_similarity is not None:
            headers["x-semcache-similarity"] = f"{result.best_similarity:.4f}"
        if result.reason:
            headers["x-semcache-reason"] = header_value(result.reason)
        store_req = None if parsed.controls.no_store else req
        return await self._miss(parsed, store_req, up_headers, headers, started, coalesce=True)

    def upstream_headers(self, incoming: Mapping[str, str]) -> dict[str, str]:
        """Client headers to forward, with the upstream's credentials."""
        headers = {k: v for k, v in incoming.items()
                   if k.lower() not in _DROP_REQUEST_HEADERS and not k.lower().startswith("x-semcache")}
        if self.s.upstream_api_key is not None:
            headers["authorization"] = f"Bearer {self.s.upstream_api_key.get_secret_value()}"
        elif not self.s.require_keys and "authorization" in incoming:
            headers["authorization"] = incoming["authorization"]
        return headers

    async def _fresh_enough(self, parsed: ParsedRequest, entry_id: int, headers: dict[str, str]) -> bool:
        """False when the body's cache.s-maxage refuses this entry as too old (then it is a miss)."""
        max_age = parsed.controls.max_age_seconds
        if max_age is None:
            return True
        row = await asyncio.to_thread(self.state.cache.db.get_entry, entry_id)
        age = (datetime.now(UTC) - row.created_at).total_seconds() if row is not None else float("inf")
        if age <= max_age:
            return True
        headers["x-semcache-reason"] = f"cached answer {age:.0f} s old > s-maxage {max_age}"
        return False

    # ------------------------------------------------------------- outcomes
    def _record(self, parsed: ParsedRequest, outcome: str, started: float, match: str = "") -> None:
        m = self.state.metrics
        m.requests.labels(parsed.endpoint, outcome, match).inc()
        m.latency.labels(parsed.endpoint, outcome).observe(time.perf_counter() - started)

    def _hit(self, parsed: ParsedRequest, result: LookupResult, started: float) -> Response:
        hit = result.hit
        assert hit is not None
        headers = {
            "x-semcache": "hit", "x-semcache-match": hit.match,
            "x-semcache-similarity": f"{hit.similarity:.4f}", "x-semcache-category": hit.category,
            "x-semcache-entry": str(hit.entry_id), "x-semcache-threshold": f"{result.threshold:.4f}",
        }
        self._record(parsed, "hit", started, hit.match)
        usage = hit.response.get("usage") if isinstance(hit.response, dict) else None
        if isinstance(usage, dict) and isinstance(usage.get("total_tokens"), int) and usage["total_tokens"] > 0:
            self.state.metrics.tokens_saved.inc(usage["total_tokens"])
        return self._render(parsed, Outcome(200, hit.response, entry_id=hit.entry_id), headers)

    def _render(self, parsed: ParsedRequest, outcome: Outcome, headers: dict[str, str]) -> Response:
        if outcome.status != 200:
            return Response(outcome.body, status_code=outcome.status, media_type=outcome.media_type,
                            headers=headers)
        if parsed.stream:
            chunks = replay(parsed.endpoint, outcome.body, include_usage=parsed.include_usage)
            return StreamingResponse(_aiter(chunks), media_type="text/event-stream",
                                     headers=headers | SSE_HEADERS)
        return JSONResponse(outcome.body, headers=headers)

    async def _bypass(self, parsed: ParsedRequest, up_headers: dict[str, str], reason: str | None,
                      started: float) -> Response:
        headers = {"x-semcache": "bypass"}
        if reason:
            headers["x-semcache-reason"] = header_value(reason)
        self._record(parsed, "bypass", started)
        if parsed.stream:
            return await self._stream(parsed, None, up_headers, headers, flight=None)
        outcome = await self._fetch(parsed, None, up_headers)
        return self._render(parsed, outcome, headers)

    # ---------------------------------------------------------------- misses
    async def _miss(self, parsed: ParsedRequest, store_req: CacheRequest | None, up_headers: dict[str, str],
                    headers: dict[str, str], started: float, *, coalesce: bool) -> Response:
        headers = {"x-semcache": "miss", **headers}
        self._record(parsed, "miss", started)
        flights = self.state.flights
        flight, leader = flights.join(parsed.flight_key()) if coalesce else (None, True)
        if not leader:
            assert flight is not None
            self.state.metrics.coalesced.inc()
            try:
                outcome = await flights.wait(flight, self.s.singleflight_timeout_s)
            except ProxyError:
                raise
            except Exception:  # the leader went away (client left, stream broke): ask ourselves
                flight = None
            else:
                headers["x-semcache-coalesced"] = "true"
                if outcome.entry_id is not None:
                    headers["x-semcache-entry"] = str(outcome.entry_id)
                return self._render(parsed, outcome, headers)
        lease = None
        shared = self.state.shared_flights
        if shared is not None and coalesce and store_req is not None:
            try:
                leased, found = await shared.acquire(parsed.flight_key(), store_req)
            except SQLAlchemyError:  # no shared store: this replica asks the upstream alone
                leased, found = False, None
            if found is not None:  # another replica asked the upstream and stored the answer
                hit = found.hit
                outcome = Outcome(200, hit.response, entry_id=hit.entry_id)
                if flight is not None:
                    flight.publish(outcome)
                    flights.release(flight)
                self.state.metrics.coalesced_replicas.inc()
                headers["x-semcache-coalesced"] = "replica"
                headers["x-semcache-entry"] = str(hit.entry_id)
                return self._render(parsed, outcome, headers)
            lease = parsed.flight_key() if leased else None
        if parsed.stream:
            return await self._stream(parsed, store_req, up_headers, headers, flight=flight, lease=lease)
        try:
            if flight is None:
                outcome = await self._fetch(parsed, store_req, up_headers)
            else:
                with flights.lead(flight):
                    outcome = await self._fetch(parsed, store_req, up_headers)
                    flight.publish(outcome)
        finally:
            if lease is not None and shared is not None:
                await shared.release(lease)
        if outcome.entry_id is not None:
            headers["x-semcache-entry"] = str(outcome.entry_id)
        return self._render(parsed, outcome, headers)

    async def _fetch(self, parsed: ParsedRequest, store_req: CacheRequest | None,
                     up_headers: dict[str, str]) -> Outcome:
        """One non-streaming upstream call; stores the answer when it is storable."""
        upstream = self.state.upstream
        started = time.perf_counter()
        response = await upstream.send(await self._build(parsed, up_headers))
        latency = time.perf_counter() - started
        self.state.metrics.upstream_latency.labels(parsed.endpoint).observe(latency)
        media = response.headers.get("content-type", "application/json").split(";")[0]
        if response.status_code != 200:
            self.state.metrics.store_skipped.labels(f"status_{response.status_code}").inc()
            return Outcome(response.status_code, response.content, media)
        try:
            data = response.json()
        except ValueError:
            raise ProxyError(502, "upstream returned a 200 whose body is not JSON",
                             code="upstream_protocol_error") from None
        entry_id = await self._store(parsed, store_req, data, latency * 1000)
        return Outcome(200, data, entry_id=entry_id)

    async def _store(self, parsed: ParsedRequest, store_req: CacheRequest | None, data: Any,
                     latency_ms: float) -> int | None:
        metrics = self.state.metrics
        if store_req is None:
            return None
        if not storable(data):
            metrics.store_skipped.labels("incomplete").inc()
            return None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        tokens = int(usage.get("total_tokens") or usage.get("completion_tokens") or 0)
        kwargs: dict[str, Any] = {"tokens": tokens, "latency_ms": latency_ms}
        factor = self.state.load.ttl_factor()
        if parsed.controls.ttl_seconds is not None:  # the body's cache.ttl
            kwargs["ttl_seconds"] = parsed.controls.ttl_seconds
        elif factor > 1.0:
            policy = self.state.cache.policy(self.state.cache.categorise(store_req))
            if policy.ttl_seconds:
                kwargs["ttl_seconds"] = int(policy.ttl_seconds * factor)
        try:
            entry_id: int | None = await self.state.cache.astore(store_req, data, **kwargs)
        except SQLAlchemyError as exc:  # the database is away: answer anyway, uncached
            log.warning("storing the answer failed (%s); served without caching", type(exc).__name__)
            metrics.store_skipped.labels("store_error").inc()
            return None
        if entry_id is None:
            metrics.store_skipped.labels("policy").inc()
        else:
            metrics.stores.labels(parsed.endpoint).inc()
        return entry_id

    async def _stream(self, parsed: ParsedRequest, store_req: CacheRequest | None, up_headers: dict[str, str],
                      headers: dict[str, str], *, flight: Any, lease: str | None = None) -> Response:
        """Open the upstream stream (errors answer as JSON), then forward it line by line."""
        upstream = self.state.upstream
        started = time.perf_counter()
        context = upstream.stream(await self._build(parsed, up_headers))
        shared = self.state.shared_flights

        async def release_lease() -> None:
            if lease is not None and shared is not None:
                await shared.release(lease)

        try:
            response = await context.__aenter__()
        except BaseException as exc:
            if flight is not None:
                self.state.flights.release(flight, exc)
            await release_lease()
            raise
        metrics = self.state.metrics
        closed = False

        async def cleanup() -> None:
            nonlocal closed
            if closed:
                return
            closed = True
            metrics.inflight_streams.dec()
            if flight is not None:
                self.state.flights.release(flight, ProxyError(502, "stream was not completed"))
            try:
                await context.__aexit__(None, None, None)
            finally:
                await release_lease()

        metrics.inflight_streams.inc()
        if response.status_code != 200:
            try:
                await response.aread()
            finally:
                await cleanup()
            metrics.store_skipped.labels(f"status_{response.status_code}").inc()
            media = response.headers.get("content-type", "application/json").split(";")[0]
            return Response(response.content, status_code=response.status_code, media_type=media,
                            headers=headers)

        return ManagedStream(self._relay(parsed, store_req, response, started, flight), cleanup,
                             media_type="text/event-stream", headers=headers | SSE_HEADERS)

    async def _relay(self, parsed: ParsedRequest, store_req: CacheRequest | None, response: Any,
                     started: float, flight: Any) -> AsyncIterator[bytes]:
        """Forward the upstream's SSE lines; store the answer once the stream completed normally."""
        metrics = self.state.metrics
        acc = StreamAccumulator(parsed.endpoint)  # type: ignore[arg-type]
        try:
            first = True
            async for line in self.state.upstream.lines(response):
                if first:  # time to first token: load, unlike the length of the answer
                    self.state.load.record_latency((time.perf_counter() - started) * 1000)
                    first = False
                acc.feed(line)
                if acc.done:
                    break
                yield (line + "\n").encode()
        except ProxyError as exc:
            metrics.store_skipped.labels("stream_error").inc()
            yield sse(exc.body())
            return
        latency = time.perf_counter() - started
        metrics.upstream_latency.labels(parsed.endpoint).observe(latency)
        complete = acc.response()
        entry_id = None
        if complete is None:
            metrics.store_skipped.labels("incomplete").inc()
        else:
            entry_id = await self._store(parsed, store_req, complete, latency * 1000)
            if flight is not None:
                flight.publish(Outcome(200, complete, entry_id=entry_id))
        if entry_id is not None:
            yield entry_comment(entry_id)
        if acc.done:
            yield DONE

    async def _build(self, parsed: ParsedRequest, up_headers: dict[str, str]) -> httpx.Request:
        """The upstream request, encoded in a thread: a large body must not hold up the event loop."""
        build = functools.partial(self.state.upstream.build, "POST", PATHS[parsed.endpoint],
                                  json_body=parsed.body, headers=up_headers)
        return await asyncio.to_thread(build)

    # ----------------------------------------------------------- passthrough
    async def passthrough(self, request: Request, path: str) -> Response:
        """Forward any other request to the upstream unchanged and uncached (streams too)."""
        upstream = self.state.upstream
        built = upstream.build(request.method, path, content=await request.body(),
                               headers=self.upstream_headers(request.headers), params=request.query_params)
        context = upstream.stream(built)
        response = await context.__aenter__()
        headers = {k: v for k, v in response.headers.items() if k.lower() not in _DROP_RESPONSE_HEADERS}
        headers["x-semcache"] = "bypass"

        async def cleanup() -> None:
            await context.__aexit__(None, None, None)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            except httpx.HTTPError as exc:  # headers are gone: all we can do is stop
                log.warning("passthrough %s %s broke: %s", request.method, path, exc)

        return ManagedStream(body(), cleanup, status_code=response.status_code, headers=headers)


async def _aiter(chunks: Any) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
