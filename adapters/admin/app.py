"""Serving the admin: inside the proxy's app (``mount``) or on its own (``create_admin_app``).

    mount(app, cache, settings)                       # proxy: /admin and /admin/api
    create_admin_app("sqlite:///semcache.db", {token: "admin"})   # standalone
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from semcache.adapters.admin import api, pages, pages_ops
from semcache.adapters.admin.auth import AdminAuth
from semcache.adapters.admin.deps import STATE_ATTR, AdminContext
from semcache.adapters.admin.pricing import PriceTable
from semcache.adapters.admin.service import AdminService
from semcache.adapters.server.errors import ProxyError
from semcache.adapters.server.hardening import harden

if TYPE_CHECKING:
    from semcache.cache import SemanticCache


def _include(app: FastAPI, ctx: AdminContext) -> None:
    setattr(app.state, STATE_ATTR, ctx)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(pages_ops.router)

    @app.exception_handler(pages.PageDenied)
    async def _page_denied(_: Request, exc: pages.PageDenied) -> Response:
        return exc.response


def mount(app: FastAPI, cache: SemanticCache | None, settings: Any, *, viewer_tokens: tuple[str, ...] = (),
          prices: PriceTable | None = None) -> None:
    """Add the admin API and pages to the proxy's ``app``; ``settings.admin_token`` must be set.

    ``cache`` is the proxy's ``SemanticCache``, or None when the proxy builds it
    in its lifespan (then it is taken from ``app.state.proxy`` on first use).
    Policy changes made here apply to that cache at once.
    """
    token = getattr(settings, "admin_token", None)
    if token is None:
        raise ValueError("settings.admin_token must be set to serve the admin")
    tokens = {token.get_secret_value(): "admin", **{t: "viewer" for t in viewer_tokens}}
    policies_file = getattr(settings, "policies", None)

    def live_cache() -> Any:
        if cache is not None:
            return cache
        state = getattr(app.state, "proxy", None)
        if state is None:
            raise ProxyError(503, "proxy is starting or stopping", type="server_error", code="not_ready")
        return state.cache

    def build() -> AdminService:
        return AdminService(live_cache().db, cache=live_cache, prices=prices, policies_file=policies_file)

    _include(app, AdminContext(AdminAuth(tokens), build))


def create_admin_app(db_url: str, tokens: Mapping[str, str], *, prices: PriceTable | None = None,
                     policies_file: str | Path | None = None, cache: SemanticCache | None = None,
                     secure_cookie: bool = False, max_body_bytes: int = 1_048_576) -> FastAPI:
    """A standalone admin app on the store at ``db_url`` (migrated to the latest schema).

    ``tokens`` maps each admin token to its role (``admin`` or ``viewer``).
    With ``cache`` (a ``SemanticCache`` on the same database) changes go
    through it; otherwise straight to the database.
    """
    from semcache.storage.store import Store

    auth = AdminAuth(tokens)
    store = cache.db if cache is not None else Store(db_url)
    owns_store = cache is None
    service = AdminService(store, cache=(lambda: cache), prices=prices, policies_file=policies_file)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owns_store:
                store.close()

    app = FastAPI(title="semcache admin", version="0.1.0", lifespan=lifespan,
                  description="Inspect, invalidate and tune the semantic cache. Authenticate with "
                              "`Authorization: Bearer <admin token>`.")
    harden(app, max_body_bytes=max_body_bytes)

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> Any:
        return RedirectResponse(request.url_for("admin_dashboard"), status_code=307)

    _include(app, AdminContext(auth, service, secure_cookie=secure_cookie))
    return app
