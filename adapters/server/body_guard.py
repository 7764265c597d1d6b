"""``BodyGuard``: request bodies are bounded before any handler parses them.

It buffers the body (so a chunked upload is caught too) and answers in OpenAI's error format:
413 over ``max_bytes``; 400 for a body that is not UTF-8, JSON nested deeper than ``max_depth``,
or a string holding a lone UTF-16 surrogate (``"\\ud800"``), which neither the database nor the
upstream can encode. The checks are cheap on ordinary bodies: a full parse runs only when the
raw bytes hold more brackets than ``max_depth`` or a surrogate escape, and off the event loop
for large bodies.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from semcache.adapters.server.errors import error_body
from semcache.adapters.server.guard import send_json
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as ASGIScope

MAX_JSON_DEPTH = 64
OFF_LOOP_BYTES = 64 * 1024  # bodies above this are checked in a worker thread
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a parsed JSON value is refused (too deep, a lone surrogate), or None."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                return f"JSON nested deeper than {max_depth} levels"
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a string holds a lone UTF-16 surrogate (e.g. \\ud800)"
    return None


def body_problem(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a raw JSON body is refused, or None; a body that is not JSON is left to the handler."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "request body is not valid UTF-8"
    deep = body.count(b"[") + body.count(b"{") > max_depth
    if not deep and _SURROGATE_ESCAPE.search(body) is None:
        return None
    try:
        value = json.loads(body)
    except RecursionError:
        return f"JSON nested deeper than {max_depth} levels"
    except ValueError:
        return None  # the handler answers its own 400 for malformed JSON
    return json_problem(value, max_depth)


class BodyGuard:
    """Reject bodies over ``max_bytes`` (413) and malformed-in-depth JSON bodies (400)."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, asgi_scope: ASGIScope, receive: Receive, send: Send) -> None:
        if asgi_scope["type"] != "http" or asgi_scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(asgi_scope, receive, send)
            return
        headers = dict(asgi_scope["headers"])
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if declared > self.max_bytes:
            await self._too_large(send)
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
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if b"json" in headers.get(b"content-type", b"json"):
            problem = (await asyncio.to_thread(body_problem, body, self.max_depth) if size > OFF_LOOP_BYTES
                       else body_problem(body, self.max_depth))
            if problem is not None:
                await send_json(send, 400, error_body(problem, "invalid_request_error", "invalid_json"))
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(asgi_scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await send_json(send, 413, error_body(f"request body exceeds {self.max_bytes} bytes",
                                              "invalid_request_error", "body_too_large"),
                        {"connection": "close"})
