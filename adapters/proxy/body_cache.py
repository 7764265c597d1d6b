"""The ``cache`` field of a request body, as LiteLLM's proxy reads it.

    {"model": ..., "messages": [...], "cache": {"no-cache": true, "ttl": 600, "namespace": "team-a"}}

``no-cache`` skips the lookup, ``no-store`` skips storing, ``ttl`` (seconds) overrides the
category's TTL of the stored answer, ``s-maxage`` (seconds) refuses cached answers older than
that, ``namespace`` splits the cache scope. The field is removed before the body is forwarded,
and only ``namespace`` enters the scope, so the other controls never split it. Headers
(``x-semcache-control``, ``Cache-Control``) keep working; either source can switch a control on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from semcache.adapters.server.errors import bad_request

FIELD = "cache"
_KNOWN = {"no-cache", "no-store", "ttl", "s-maxage", "namespace"}
MAX_SECONDS = 10 * 365 * 86400


@dataclass(frozen=True, slots=True)
class BodyControls:
    """What a body's ``cache`` field asks for (all unset when the field is absent)."""

    no_cache: bool = False
    no_store: bool = False
    ttl_seconds: int | None = None
    max_age_seconds: int | None = None
    namespace: str | None = None


def _seconds(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not minimum <= value <= MAX_SECONDS:
        raise bad_request(f"cache.{name} must be a number of seconds in [{minimum}, {MAX_SECONDS}]",
                          param=f"{FIELD}.{name}")
    return int(value)


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise bad_request(f"cache.{name} must be a boolean", param=f"{FIELD}.{name}")
    return value


def split_cache_field(body: dict[str, Any]) -> tuple[dict[str, Any], BodyControls]:
    """The body without its ``cache`` field, and the controls that field holds (400 if malformed)."""
    if FIELD not in body:
        return body, BodyControls()
    raw = body[FIELD]
    rest = {k: v for k, v in body.items() if k != FIELD}
    if raw is None:
        return rest, BodyControls()
    if not isinstance(raw, dict):
        raise bad_request("'cache' must be an object, e.g. {\"no-cache\": true}", param=FIELD)
    unknown = sorted(str(k) for k in raw if k not in _KNOWN)
    if unknown:
        raise bad_request(f"unknown cache control(s) {unknown}; known: {sorted(_KNOWN)}", param=FIELD)
    namespace = raw.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not 0 < len(namespace) <= 128):
        raise bad_request("cache.namespace must be a string of 1 to 128 characters", param=f"{FIELD}.namespace")
    return rest, BodyControls(
        no_cache=_flag(raw.get("no-cache", False), "no-cache"),
        no_store=_flag(raw.get("no-store", False), "no-store"),
        ttl_seconds=_seconds(raw["ttl"], "ttl", 1) if raw.get("ttl") is not None else None,
        max_age_seconds=_seconds(raw["s-maxage"], "s-maxage", 0) if raw.get("s-maxage") is not None else None,
        namespace=namespace)
