"""What the admin routes share: its context on the app, and the caller's identity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from semcache.adapters.admin.auth import COOKIE, Actor, AdminAuth, AuthError, token_from
from semcache.adapters.admin.service import AdminService
from semcache.adapters.server.errors import ProxyError

STATE_ATTR = "semcache_admin"


class AdminContext:
    """The admin's collaborators, kept on ``app.state.semcache_admin``.

    ``service`` is an :class:`AdminService` or a factory for one, called on the
    first request (inside the proxy the cache only exists once its lifespan ran).
    """

    def __init__(self, auth: AdminAuth, service: AdminService | Callable[[], AdminService], *,
                 secure_cookie: bool = False) -> None:
        self.auth = auth
        self.secure_cookie = secure_cookie
        self._service = service if isinstance(service, AdminService) else None
        self._factory = None if isinstance(service, AdminService) else service

    @property
    def service(self) -> AdminService:
        if self._service is None:
            assert self._factory is not None
            self._service = self._factory()
        return self._service


def get_context(request: Request) -> AdminContext:
    """The app's admin context (set by ``mount`` or ``create_admin_app``)."""
    ctx: AdminContext | None = getattr(request.app.state, STATE_ATTR, None)
    if ctx is None:
        raise ProxyError(503, "the admin is not configured", type="server_error", code="not_ready")
    return ctx


ContextDep = Annotated[AdminContext, Depends(get_context)]


def identify(request: Request, ctx: AdminContext) -> Actor:
    """The caller, from its bearer token or login cookie; ``AuthError`` when unknown."""
    return ctx.auth.identify(token_from(request.headers.get("authorization"), request.cookies.get(COOKIE)))


def get_reader(request: Request, ctx: ContextDep) -> Actor:
    """Any valid admin token (401 otherwise)."""
    try:
        return identify(request, ctx)
    except AuthError as exc:
        raise ProxyError(exc.status, exc.message, type="authentication_error", code="invalid_admin_token",
                         headers={"www-authenticate": "Bearer"}) from None


def get_writer(actor: Annotated[Actor, Depends(get_reader)]) -> Actor:
    """A token with the admin role (403 for viewers)."""
    try:
        AdminAuth.require_write(actor)
    except AuthError as exc:
        raise ProxyError(exc.status, exc.message, type="permission_error", code="forbidden") from None
    return actor


Reader = Annotated[Actor, Depends(get_reader)]
Writer = Annotated[Actor, Depends(get_writer)]
