"""Validation of request bodies against ``models.py``, answered as OpenAI does (400 otherwise).

``user`` must be a string: any other value would be left out of the cache scope, and one
user's answer served to another. Sampling values out of OpenAI's ranges (a negative or NaN
``temperature``, ``max_tokens`` of -5) are refused rather than passed on and cached. The
models only check: callers keep and forward the client's own dict. The same field types run
on the OpenAI routes (the body) and on the cache API (``user`` and ``params``)."""

from __future__ import annotations

import asyncio
import json
import reprlib
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from semcache.adapters.proxy.models import (
    BODIES,
    CacheApiFields,
    CacheControls,
    ContentPart,
    DocumentObject,
    Message,
    OpenAIBody,
    StreamOptions,
)
from semcache.adapters.server.body_guard import OFF_LOOP_BYTES
from semcache.adapters.server.errors import ProxyError, bad_request


class _ShortRepr(reprlib.Repr):
    """A bounded repr of an offending value, for the error message."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring, self.maxother, self.maxlist, self.maxdict, self.maxlevel = 60, 60, 4, 4, 2


_SHORT = _ShortRepr()


# Field names of every model: a location's other parts are union tags ("str", "list[str]").
_FIELDS = frozenset(field.alias or name
                    for model in (*BODIES.values(), CacheApiFields, CacheControls, ContentPart, DocumentObject,
                                  Message, StreamOptions) for name, field in model.model_fields.items())


def _param(loc: tuple[int | str, ...], unknown: bool = False) -> str:
    """``('messages', 0, 'content', 'str')`` -> ``messages[0].content`` (union tags dropped);
    ``unknown``: the last part is a field the model forbids, and is named too."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _FIELDS or (unknown and i == len(loc) - 1):
            out += f".{part}" if out else str(part)
    return out


def as_bad_request(exc: ValidationError) -> ProxyError:
    """A 400 naming the field of the first error (the deepest member of a union that failed)."""
    errors = exc.errors(include_url=False)
    field = errors[0]["loc"][0] if errors[0]["loc"] else None
    same_field = [e for e in errors if (e["loc"][0] if e["loc"] else None) == field]
    named = [(_param(e["loc"], e["type"] == "extra_forbidden"), e) for e in same_field]
    param = max((p for p, _ in named), key=len)
    chosen = [e for p, e in named if p == param]
    messages = " or ".join(dict.fromkeys(e["msg"].removeprefix("Value error, ") for e in chosen))
    got = "" if chosen[0]["type"] == "missing" else f", got {_SHORT.repr(chosen[0]['input'])}"
    return bad_request(f"'{param or 'body'}': {messages}{got}", param=param or None,
                       code="invalid_user" if param == "user" else "invalid_request")


def validate_body(endpoint: str, body: Any) -> OpenAIBody:
    """The OpenAI body of ``endpoint`` ("chat" or "completions") as its model (400 if malformed)."""
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    try:
        return BODIES[endpoint].model_validate(body)
    except ValidationError as exc:
        raise as_bad_request(exc) from None


def check_cache_fields(body: Any) -> None:
    """The ``user`` and ``params`` checks of a cache API body (400 if malformed)."""
    if isinstance(body, dict):
        try:
            CacheApiFields.model_validate(body)
        except ValidationError as exc:
            raise as_bad_request(exc) from None


async def check_cache_api(request: Request) -> None:
    """Router dependency of the cache API: ``user`` and ``params`` of the (already read) body."""
    if request.method != "POST":
        return
    raw = await request.body()
    try:  # a large body is parsed and checked in a thread, off the event loop
        if len(raw) > OFF_LOOP_BYTES:
            await asyncio.to_thread(lambda: check_cache_fields(json.loads(raw)))
        else:
            check_cache_fields(json.loads(raw))
    except (ValueError, RecursionError):
        return  # FastAPI answers malformed JSON itself
