"""Checks of a request's identity and sampling fields, as OpenAI makes them (400 otherwise).

``user`` must be a string: any other value would be left out of the cache scope, and one
user's answer served to another. Sampling values out of OpenAI's ranges (a negative or NaN
``temperature``, ``max_tokens`` of -5) are refused rather than passed on and cached.
The same checks run on the OpenAI routes (the body) and on the cache API (``user`` and
``params``)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from semcache.adapters.server.body_guard import OFF_LOOP_BYTES
from semcache.adapters.server.errors import bad_request

MAX_INT = 2**63 - 1
# name: (low, high) for numbers; OpenAI's documented ranges.
NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
INT_RANGES: dict[str, tuple[int, int]] = {
    "max_tokens": (1, 2**31 - 1),
    "max_completion_tokens": (1, 2**31 - 1),
    "n": (1, 128),
    "best_of": (1, 128),
    "top_logprobs": (0, 20),
    "seed": (-(2**63), MAX_INT),
}


def check_user(value: Any, where: str = "user") -> None:
    """400 unless ``value`` is a string or absent (None)."""
    if value is not None and not isinstance(value, str):
        raise bad_request(f"'{where}' must be a string, got {type(value).__name__}", param=where,
                          code="invalid_user")


def check_sampling(fields: Mapping[str, Any], prefix: str = "") -> None:
    """400 for a sampling field of the wrong type or out of OpenAI's range (None means default)."""
    for name, (low, high) in NUMBER_RANGES.items():
        value = fields.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise bad_request(f"'{prefix}{name}' must be a finite number, got {value!r}", param=prefix + name)
        if not low <= value <= high:
            raise bad_request(f"'{prefix}{name}' must be in [{low:g}, {high:g}], got {value!r}",
                              param=prefix + name)
    for name, (ilow, ihigh) in INT_RANGES.items():
        value = fields.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not ilow <= value <= ihigh:
            raise bad_request(f"'{prefix}{name}' must be an integer in [{ilow}, {ihigh}], got {value!r}",
                              param=prefix + name)
    stop = fields.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise bad_request(f"'{prefix}stop' must be a string or a list of strings", param=prefix + "stop")


def check_body(body: Any) -> None:
    """The identity and sampling checks of an OpenAI request body (other checks: ``parse``)."""
    if isinstance(body, dict):
        check_user(body.get("user"))
        check_sampling(body)


async def check_cache_api(request: Request) -> None:
    """Router dependency of the cache API: ``user`` and ``params`` of the (already read) body."""
    if request.method != "POST":
        return
    raw = await request.body()
    try:  # a large body is parsed in a thread, off the event loop
        body = await asyncio.to_thread(json.loads, raw) if len(raw) > OFF_LOOP_BYTES else json.loads(raw)
    except (ValueError, RecursionError):
        return  # FastAPI answers malformed JSON itself
    if isinstance(body, dict):
        check_user(body.get("user"))
        if isinstance(body.get("params"), dict):
            check_sampling(body["params"], prefix="params.")
