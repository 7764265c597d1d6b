"""Prometheus metrics of one proxy app, in a registry of its own (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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
        self.threshold_relax = Gauge(
            "semcache_threshold_relaxation", "How much similarity thresholds are lowered under load", registry=r
        )
        self.ttl_factor = Gauge("semcache_ttl_factor", "Multiplier applied to TTLs under load", registry=r)
        self.ttl_factor.set(1.0)

    def render(self) -> bytes:
        """The exposition text of this registry."""
        return generate_latest(self.registry)
