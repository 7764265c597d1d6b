"""Prometheus metrics of one proxy app, in a registry of its own (never the global one)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from semcache.cache import SemanticCache

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ProxyMetrics:
    """Counters, histograms and gauges of cache outcomes, the upstream and load adaptation."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "semcache_requests", "Cacheable-endpoint requests by outcome", ["endpoint", "outcome", "match"], registry=r
        )
        self.latency = Histogram(
            "semcache_request_seconds", "Proxy request latency", ["endpoint", "outcome"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.upstream_latency = Histogram(
            "semcache_upstream_seconds", "Upstream call latency (to last byte)", ["endpoint"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.upstream_errors = Counter(
            "semcache_upstream_errors", "Upstream failures by kind", ["kind"], registry=r
        )
        self.stores = Counter("semcache_stores", "Responses stored", ["endpoint"], registry=r)
        self.store_skipped = Counter(
            "semcache_store_skipped", "Responses not stored, by reason", ["reason"], registry=r
        )
        self.coalesced = Counter(
            "semcache_singleflight_coalesced", "Misses that waited for an identical in-flight request", registry=r
        )
        self.inflight_upstream = Gauge("semcache_upstream_inflight", "Upstream calls in flight", registry=r)
        self.inflight_streams = Gauge("semcache_streams_inflight", "Streaming responses in flight", registry=r)
        self.load_factor = Gauge("semcache_load_factor", "Upstream load in [0, 1]", registry=r)
        self.upstream_latency_window = Gauge(
            "semcache_upstream_latency_window_ms", "Median upstream latency over the load window", registry=r
        )
        self.upstream_queue = Gauge(
            "semcache_upstream_queue_depth", "Requests waiting upstream (vLLM num_requests_waiting)", registry=r
        )
        self.ttl_factor = Gauge("semcache_ttl_factor", "Multiplier applied to TTLs under load", registry=r)
        self.ttl_factor.set(1.0)
        # Scale-out (docs/deploy.md): the change feed, the Redis tier, cross-replica single-flight.
        self.coalesced_replicas = Counter(
            "semcache_singleflight_replica_coalesced", "Misses answered by another replica's upstream call",
            registry=r,
        )
        self.feed_connected = Gauge("semcache_feed_connected", "1 while the change feed follows the database",
                                    registry=r)
        self.feed_lag = Gauge("semcache_feed_lag_seconds", "Commit-to-apply delay of the newest applied change",
                              registry=r)
        self.feed_position = Gauge("semcache_feed_position", "Change-log id applied up to", registry=r)
        # counters copied from the feed's and the tier's own totals (increments of the difference)
        self.feed_applied = Counter("semcache_feed_changes_applied", "Changes read from the change log", registry=r)
        self.feed_resyncs = Counter("semcache_feed_resyncs", "Full resynchronisations (log pruned past us)",
                                    registry=r)
        self.redis_up = Gauge("semcache_redis_up", "1 while the Redis tier answers (absent without Redis)",
                              registry=r)
        self.redis_errors = Counter("semcache_redis_errors", "Redis calls that failed", registry=r)
        self.entries = Gauge("semcache_entries", "Entries in this replica's cache (in memory)", registry=r)
        self.tokens_saved = Counter(
            "semcache_tokens_saved", "Upstream tokens saved by hits (usage of the cached answers)", registry=r)
        self._totals: dict[str, float] = {}
        self.degraded = Gauge(
            "semcache_degraded", "1 while a configured shared tier (Redis) is down: SQL store alone", registry=r
        )

    def refresh_scaleout(self, cache: SemanticCache) -> None:
        """Copy the entry count, the change feed's and the Redis tier's state into the metrics."""
        self.entries.set(len(cache.mirror))
        feed = cache.feed
        if feed is not None:
            status = feed.status()
            self.feed_connected.set(1.0 if status["connected"] else 0.0)
            self.feed_lag.set(status["lag_s"])
            self.feed_position.set(status["position"])
            self._advance(self.feed_applied, "applied", status["applied"])
            self._advance(self.feed_resyncs, "resyncs", status["resyncs"])
        shared = cache.shared
        if shared is not None:
            up = bool(shared.status()["up"])
            self.redis_up.set(1.0 if up else 0.0)
            self._advance(self.redis_errors, "redis_errors", shared.status()["errors"])
            self.degraded.set(0.0 if up else 1.0)

    def _advance(self, counter: Counter, name: str, total: float) -> None:
        last = self._totals.get(name, 0.0)
        if total > last:
            counter.inc(total - last)
        self._totals[name] = max(last, total)

    def render(self) -> bytes:
        """The exposition text of this registry."""
        return generate_latest(self.registry)
