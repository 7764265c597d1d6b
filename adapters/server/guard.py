"""ASGI middlewares shared by the proxy and the admin: no bare 500, security headers, keyed docs.

``CatchAll`` answers an unexpected exception with a 500 in OpenAI's error format and does not
re-raise it (Starlette's own handler re-raises, and the server then drops the keep-alive
connection). ``SecurityHeaders`` adds a CSP, ``X-Frame-Options`` and friends to responses under
the given path prefixes. ``OpsKey`` keeps ``/metrics`` and the API docs behind a key check.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from semcache.adapters.server.errors import error_body
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as ASGIScope

log = logging.getLogger("semcache.proxy")

ADMIN_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
             "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "content-security-policy": ADMIN_CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
OPS_PATHS = ("/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


async def send_json(send: Send, status: int, body: dict[str, object],
                    headers: dict[str, str] | None = None) -> None:
    """Send a whole JSON response."""
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class CatchAll:
    """An unexpected exception becomes an OpenAI-format 500; the connection stays usable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:  # headers are gone: all that is left is to end the body
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send_json(send, 500, error_body("internal server error", "server_error", "internal_error"))


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every response whose path starts with one of ``prefixes``."""

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...] = ("/admin",)) -> None:
        self.app = app
        self.prefixes = prefixes
        self.raw = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.raw if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


class OpsKey:
    """``/metrics`` and the docs answer 401 unless ``allowed(authorization header)`` is true."""

    def __init__(self, app: ASGIApp, allowed: Callable[[ASGIScope, str], Awaitable[bool]]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in OPS_PATHS:
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not await self.allowed(scope, header):
                await send_json(send, 401, error_body("this route needs an API key (Authorization: Bearer ...)",
                                                      "authentication_error", "invalid_api_key"),
                                {"www-authenticate": "Bearer"})
                return
        await self.app(scope, receive, send)
