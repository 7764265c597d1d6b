"""HTTP errors of the proxy and the admin, always in OpenAI's format.

``ProxyError(status, message, type, code)`` is raised anywhere in the API layer: 400
``invalid_request_error`` (malformed JSON, missing fields, body over ``max_body_bytes``
as 413), 401 ``authentication_error``, 404 ``not_found_error``, 502/503/504
``upstream_error``. Every body is ``{"error": {"message", "type", "code", "param"}}``,
so the ``openai`` client raises its usual ``APIStatusError`` subclasses."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("semcache.proxy")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class ProxyError(Exception):
    """An error to answer with ``status`` and an OpenAI-format body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _TYPES.get(status, "upstream_error" if status >= 500 else "invalid_request_error")
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code, self.param)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(message: str, type: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": type, "code": code, "param": param}}


def bad_request(message: str, *, code: str = "invalid_request", param: str | None = None) -> ProxyError:
    return ProxyError(400, message, code=code, param=param)


def install_error_handlers(app: FastAPI) -> None:
    """Route FastAPI/Starlette errors and unexpected exceptions into OpenAI's format."""

    @app.exception_handler(ProxyError)
    async def _proxy_error(_: Request, exc: ProxyError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"Unknown route {request.method} {request.url.path}"
        code = {404: "unknown_route", 405: "method_not_allowed"}.get(exc.status_code)
        err = ProxyError(exc.status_code, message, code=code, headers=dict(exc.headers or {}))
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{first.get('msg', 'invalid request')}" + (f" (at {loc})" if loc else "")
        return bad_request(message, param=loc or None).response()

    # Unexpected exceptions are answered by ``guard.CatchAll`` (installed by ``hardening.harden``):
    # a handler registered here for ``Exception`` would answer, then re-raise and drop the connection.
