"""FastAPI dependencies of the proxy, declared once as ``Annotated`` aliases."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request
from semcache.adapters.proxy.state import ProxyState
from semcache.adapters.server.errors import ProxyError
from semcache.adapters.server.keys import Principal


async def get_state(request: Request) -> ProxyState:
    """The app's :class:`ProxyState` (set by ``create_app``'s lifespan). Async: no thread hop."""
    state: ProxyState | None = getattr(request.app.state, "proxy", None)
    if state is None:
        raise ProxyError(503, "proxy is starting or stopping", type="server_error", code="not_ready")
    return state


StateDep = Annotated[ProxyState, Depends(get_state)]


def bearer_token(request: Request) -> str | None:
    """The bearer token of the Authorization header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def get_principal(request: Request, state: StateDep) -> Principal:
    """The tenant of the request's API key; 401 when keys are required and it is missing or invalid.

    Without ``require_keys``, a request whose key is unknown (for example the
    upstream's own key) belongs to ``default_tenant``.
    """
    token = bearer_token(request)
    principal = None
    if token is not None:
        if state.keys.is_cached(token):
            principal = state.keys.resolve(token)
        else:
            principal = await asyncio.to_thread(state.keys.resolve, token)
    if principal is not None:
        return principal
    if state.settings.require_keys:
        message = "missing API key (Authorization: Bearer ...)" if token is None else "invalid or revoked API key"
        raise ProxyError(401, message, code="invalid_api_key", headers={"www-authenticate": "Bearer"})
    return Principal(tenant=state.settings.default_tenant, role="client", key_id=0)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
