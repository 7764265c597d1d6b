"""``create_app``: the OpenAI-compatible caching proxy as a FastAPI application.

    app = create_app(ProxySettings(upstream_url="http://127.0.0.1:8000"))
    uvicorn.run(app, port=8080)

Collaborators come in through arguments: ``cache`` (a ``SemanticCache``; one
is built from the settings and closed at shutdown when omitted), ``transport``
(an httpx transport to the upstream, e.g. ``httpx.MockTransport`` in tests)
and ``load_clock`` (the monotonic clock of the load monitor).
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, Response
from semcache.adapters.proxy import routes_cache_api, routes_openai
from semcache.adapters.proxy.deps import StateDep
from semcache.adapters.proxy.load import LoadMonitor
from semcache.adapters.proxy.logs import AccessLog
from semcache.adapters.proxy.metrics import CONTENT_TYPE, ProxyMetrics
from semcache.adapters.proxy.settings import ProxySettings
from semcache.adapters.proxy.singleflight import SharedFlights
from semcache.adapters.proxy.state import ProxyState
from semcache.adapters.proxy.upstream import Upstream
from semcache.adapters.proxy.validate import check_cache_api
from semcache.adapters.server.hardening import harden
from semcache.adapters.server.keys import KeyStore

from semcache.cache import SemanticCache

log = logging.getLogger("semcache.proxy")
DESCRIPTION = ("OpenAI-compatible semantic caching proxy. Response headers: x-semcache (hit|miss|bypass), "
               "x-semcache-match, x-semcache-similarity, x-semcache-category, x-semcache-entry, x-semcache-reason, "
               "x-request-id.")


def _build_cache(settings: ProxySettings) -> SemanticCache:
    from semcache.build import build_cache

    cache = build_cache(settings)
    # Everything built so far (model, mirror, libraries) lives as long as the process: keep it out
    # of the collector's full passes, which otherwise walk it all and stall every request meanwhile.
    gc.collect()
    gc.freeze()
    return cache


def _shared_flights(settings: ProxySettings, cache: SemanticCache) -> SharedFlights | None:
    mode = settings.shared_singleflight
    if mode == "off" or (mode == "auto" and cache.feed is None):
        return None
    from semcache.adapters.server.leases import FlightLeases

    owner = settings.replica_id or f"{socket.gethostname()}:{settings.port}"
    leases = FlightLeases(cache.db.engine, lease_s=settings.shared_flight_lease_s, owner=owner[:64],
                          ttl_s=settings.shared_flight_ttl_s)
    dropped = leases.release_own()  # rows a killed earlier run of this replica left behind
    if dropped:
        log.info("released %d single-flight leases left by an earlier run of %s", dropped, leases.owner)
    leases.start()
    return SharedFlights(leases, cache)


def create_app(
    settings: ProxySettings,
    cache: SemanticCache | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    load_clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """Build the proxy app; the cache and upstream client are set up in its lifespan."""
    if not isinstance(settings, ProxySettings):
        raise TypeError(f"settings must be a ProxySettings, got {type(settings).__name__}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owns_cache = cache is None
        the_cache = _build_cache(settings) if cache is None else cache
        metrics = ProxyMetrics()
        upstream = Upstream(settings, metrics, transport=transport)
        load = LoadMonitor(settings, metrics, clock=load_clock)
        keys = KeyStore(the_cache.db.engine, ttl_s=settings.key_cache_ttl_s)
        state = ProxyState(settings=settings, cache=the_cache, upstream=upstream, metrics=metrics, load=load,
                           keys=keys, shared_flights=_shared_flights(settings, the_cache))
        feed = the_cache.feed
        if feed is not None:
            feed.listeners.append(keys.on_change)  # revocations elsewhere apply here at once
        app.state.proxy = state
        load.start(upstream.client)
        try:
            yield
        finally:
            if feed is not None and keys.on_change in feed.listeners:
                feed.listeners.remove(keys.on_change)
            app.state.proxy = None
            await load.stop()
            await upstream.close()
            if state.shared_flights is not None:
                state.shared_flights.leases.close()
            if owns_cache:
                the_cache.close()
            else:
                the_cache.flush()

    app = FastAPI(
        title="semcache proxy",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.proxy = None
    app.include_router(routes_cache_api.router, dependencies=[Depends(check_cache_api)])
    _add_ops_routes(app)
    app.include_router(routes_openai.router)
    if settings.admin_token is not None:
        from semcache.adapters.admin import mount

        mount(app, cache, settings)
    harden(app, max_body_bytes=settings.max_body_bytes, max_json_depth=settings.max_json_depth,
           ops_allowed=_ops_key_check(app, settings) if settings.protect_ops else None)
    app.add_middleware(AccessLog, enabled=settings.access_log)  # outermost: every response gets an id
    return app


def _ops_key_check(app: FastAPI, settings: ProxySettings) -> Callable[[Any, str], Awaitable[bool]]:
    """With ``protect_ops``: /metrics and the docs need a valid API key or the admin token."""
    admin = settings.admin_token.get_secret_value().encode() if settings.admin_token is not None else None

    async def allowed(_: Any, authorization: str) -> bool:
        scheme, _sep, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        if admin is not None and hmac.compare_digest(token.encode(), admin):
            return True
        state: ProxyState | None = getattr(app.state, "proxy", None)
        return state is not None and await asyncio.to_thread(state.keys.resolve, token) is not None

    return allowed


def _add_ops_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["ops"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness: cache loaded and upstream reachable")
    async def readyz(state: StateDep) -> JSONResponse:
        """200 when the upstream answers ``/v1/models``; 503 (OpenAI error format) otherwise."""
        try:
            response = await state.upstream.client.get("/v1/models", timeout=state.settings.connect_timeout_s)
            ok = response.status_code < 500
            detail = f"upstream answered {response.status_code}"
        except httpx.HTTPError as exc:
            ok, detail = False, f"upstream unreachable: {type(exc).__name__}"
        kind = "upstream_error"
        feed = state.cache.feed
        limit = state.settings.ready_max_feed_outage_s
        if ok and feed is not None and limit is not None and feed.outage_s() > limit:
            ok, kind = False, "server_error"
            detail = f"change feed cut off from the database for {feed.outage_s():.0f} s (> {limit:g} s)"
        if ok:
            return JSONResponse({"status": "ready", "upstream": detail, **_scaleout_detail(state.cache)})
        return JSONResponse({"error": {"message": detail, "type": kind, "code": "not_ready",
                                       "param": None}}, status_code=503)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    async def metrics(state: StateDep) -> Response:
        """Cache outcomes, latencies, upstream errors, single-flight, load adaptation, feed and Redis."""
        state.load.refresh()
        state.metrics.refresh_scaleout(state.cache)
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)


def _scaleout_detail(cache: SemanticCache) -> dict[str, Any]:
    """What /readyz says about the change feed and the Redis tier (when they are in use)."""
    out: dict[str, Any] = {}
    feed = cache.feed
    if feed is not None:
        status = feed.status()
        out["feed"] = {k: status[k] for k in ("mode", "connected", "outage_s", "position", "lag_s", "last_error")}
    shared = cache.shared
    if shared is not None:
        up = bool(shared.status()["up"])
        out["redis"] = "up" if up else "down: degraded to the SQL store alone"
        out["degraded"] = not up
    return out
