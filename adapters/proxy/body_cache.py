"""The ``cache`` field of a request body, as LiteLLM's proxy reads it.

    {"model": ..., "messages": [...], "cache": {"no-cache": true, "ttl": 600, "namespace": "team-a"}}

``no-cache`` skips the lookup, ``no-store`` skips storing, ``ttl`` (seconds) overrides the
category's TTL of the stored answer, ``s-maxage`` (seconds) refuses cached answers older than
that, ``namespace`` splits the cache scope. The field is removed before the body is forwarded,
and only ``namespace`` enters the scope, so the other controls never split it. Headers
(``x-semcache-control``, ``Cache-Control``) keep working; either source can switch a control on.
The field's rules are ``models.CacheControls``, checked with the rest of the body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from semcache.adapters.proxy.models import CacheControls

FIELD = "cache"


@dataclass(frozen=True, slots=True)
class BodyControls:
    """What a body's ``cache`` field asks for (all unset when the field is absent)."""

    no_cache: bool = False
    no_store: bool = False
    ttl_seconds: int | None = None
    max_age_seconds: int | None = None
    namespace: str | None = None


def split_cache_field(body: dict[str, Any], checked: CacheControls | None) -> tuple[dict[str, Any], BodyControls]:
    """The body without its ``cache`` field, and the controls ``checked`` (the field as
    ``validate_body`` validated it) holds."""
    rest = {k: v for k, v in body.items() if k != FIELD} if FIELD in body else body
    if checked is None:
        return rest, BodyControls()
    return rest, BodyControls(
        no_cache=checked.no_cache, no_store=checked.no_store,
        ttl_seconds=int(checked.ttl) if checked.ttl is not None else None,
        max_age_seconds=int(checked.s_maxage) if checked.s_maxage is not None else None,
        namespace=checked.namespace)
