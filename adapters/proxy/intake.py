"""From the raw bytes of a completion request to a :class:`ParsedRequest`, and header helpers.

``read_request`` parses the JSON, validates it (``validate``, from ``models``) and
works out the cache scope (``parse``); the handler runs it in a thread for large bodies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from semcache.adapters.proxy.parse import ParsedRequest, parse_request
from semcache.adapters.server.errors import bad_request

from semcache.types import CacheRequest


def header_value(value: object) -> str:
    """A header-safe (latin-1, single-line) rendering of ``value``."""
    text = " ".join(str(value).split())
    return text.encode("ascii", "backslashreplace").decode("ascii")[:512]


def parse_json(raw: bytes) -> Any:
    """The request body as JSON; 400 if it is not."""
    if not raw:
        raise bad_request("request body is empty; expected a JSON object", code="invalid_json")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise bad_request("request body is nested too deeply", code="invalid_json") from None


def read_request(endpoint: str, raw: bytes, tenant: str, headers: Mapping[str, str], settings: Any) -> ParsedRequest:
    """Parse, check and scope a request body (400 on anything malformed)."""
    body = parse_json(raw)
    return parse_request(endpoint, body, tenant=tenant, headers=headers, settings=settings)  # type: ignore[arg-type]


def oversized(req: CacheRequest, max_chars: int) -> str | None:
    """Why a request is too large to embed (then it bypasses the cache), or None."""
    size = len(req.prompt) + sum(len(str(getattr(turn, "content", turn))) for turn in req.history)
    if size > max_chars:
        return f"prompt and history of {size} characters exceed max_prompt_chars ({max_chars})"
    return None
