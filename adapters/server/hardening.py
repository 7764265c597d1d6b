"""``harden(app)``: the middlewares every semcache web app runs behind, in their order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from semcache.adapters.server.body_guard import MAX_JSON_DEPTH, BodyGuard
from semcache.adapters.server.errors import install_error_handlers
from semcache.adapters.server.guard import CatchAll, OpsKey, SecurityHeaders
from starlette.types import Scope as ASGIScope


def harden(app: FastAPI, *, max_body_bytes: int, max_json_depth: int = MAX_JSON_DEPTH,
           ops_allowed: Callable[[ASGIScope, str], Awaitable[bool]] | None = None) -> None:
    """OpenAI-format errors, then (outermost first): catch-all 500, body bounds, the ops key
    check (when ``ops_allowed`` is given) and security headers on ``/admin``."""
    install_error_handlers(app)
    app.add_middleware(SecurityHeaders)
    if ops_allowed is not None:
        app.add_middleware(OpsKey, allowed=ops_allowed)
    app.add_middleware(BodyGuard, max_bytes=max_body_bytes, max_depth=max_json_depth)
    app.add_middleware(CatchAll)  # added last: outermost, so it also covers the others
