"""An ASGI middleware that answers 413 to request bodies larger than a limit.

It buffers the body (the handlers read it whole anyway), so a chunked upload
without ``content-length`` is caught too, then replays it to the app.
"""

from __future__ import annotations

import json

from semcache.adapters.server.errors import error_body
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as ASGIScope


class BodyLimit:
    """Reject bodies over ``max_bytes`` with an OpenAI-format 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, asgi_scope: ASGIScope, receive: Receive, send: Send) -> None:
        if asgi_scope["type"] != "http" or asgi_scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(asgi_scope, receive, send)
            return
        for name, value in asgi_scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._reject(send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(asgi_scope, replay, send)

    async def _reject(self, send: Send) -> None:
        payload = json.dumps(error_body(f"request body exceeds {self.max_bytes} bytes",
                                        "invalid_request_error", "body_too_large")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})
