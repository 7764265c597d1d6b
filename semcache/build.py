"""``build_cache(settings)``: the one place that builds a cache from settings and starts it."""

from __future__ import annotations

from typing import Any

from semcache.cache import SemanticCache
from semcache.lookup.context import ContextMatcher
from semcache.parts import build_parts, make_verifier
from semcache.replication.redis_tier import RedisTier
from semcache.settings import CoreSettings


def build_cache(settings: CoreSettings | None = None, **overrides: Any) -> SemanticCache:
    """Create the store, embedder, index, verifier and replication from ``settings``, then start.

    ``overrides`` are ``build_parts`` arguments that replace what the settings
    say (tests pass an embedder or a clock this way). Every setting is used.
    """
    settings = settings or CoreSettings()
    parts = build_parts(settings.db_url, **{**_from_settings(settings, overrides), **overrides})
    parts.store.change_retention_s = settings.change_retention_s
    cache = SemanticCache.from_parts(parts)
    cache.start()
    return cache


def _from_settings(settings: CoreSettings, overrides: dict[str, Any]) -> dict[str, Any]:
    """``build_parts`` arguments from the settings (only those not overridden are built)."""
    args: dict[str, Any] = {
        "policies": settings.policies, "candidates": settings.candidates,
        "progress_min": settings.rebuild_progress_min, "feed": settings.feed_enabled(),
        "feed_poll_s": settings.feed_poll_s, "index_kind": settings.index,
        "embedder_kind": settings.embedder, "candidate_floor": settings.candidate_floor,
    }
    verifier = overrides.get("verifier")
    if verifier is None:
        args["verifier"] = make_verifier(settings.verifier, rules=settings.verifier_rules)
    if "context" not in overrides:
        args["context"] = ContextMatcher(threshold=settings.context_threshold,
                                         max_turns=settings.context_max_turns)
    if settings.redis_url is not None and "shared" not in overrides:
        args["shared"] = RedisTier(settings.redis_url, prefix=settings.redis_prefix,
                                   timeout_s=settings.redis_timeout_s, required=settings.redis_required)
    return args
