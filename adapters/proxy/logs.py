"""Logging of the proxy: an access log with a request id, and text or JSON log lines.

Every HTTP response carries ``x-request-id`` (the client's own when it sent a short, plain
one, else a fresh one); the access log names it beside the method, path, status, cache
outcome and duration, so a client's report can be found in the log. ``--log-format json``
writes one JSON object per line, for log shippers."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from typing import Any

access = logging.getLogger("semcache.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and any ``extra`` fields."""

    _STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                               "logger": record.name, "message": record.getMessage()}
        out.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(fmt: str, level: str) -> dict[str, Any]:
    """Set up the root handler; returns a uvicorn ``log_config`` that uses the same format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.getLevelName("DEBUG" if level == "trace" else level.upper()))
    return {"version": 1, "disable_existing_loggers": False,
            "loggers": {name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error")}}


class AccessLog:
    """ASGI middleware: a request id on every HTTP response, and one access-log line per request."""

    def __init__(self, app: Any, *, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 0, "cache": ""}

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or ())
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
                seen["status"] = message["status"]
                seen["cache"] = next((v.decode() for k, v in headers if k == b"x-semcache"), "")
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.enabled and access.isEnabledFor(logging.INFO):
                ms = (time.perf_counter() - started) * 1e3
                access.info("%s %s %s %s %.1fms id=%s", scope["method"], scope["path"], seen["status"],
                            seen["cache"] or "-", ms,
                            request_id, extra={"request_id": request_id, "method": scope["method"],
                                               "path": scope["path"], "status": seen["status"],
                                               "cache": seen["cache"], "duration_ms": round(ms, 2)})
