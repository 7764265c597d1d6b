"""Load-adaptive policy: keep answers longer while the upstream is overloaded.

Load in [0, 1] is the larger of the median time to first token over ``load_window_s``
(streams; the length of an answer is not load) and the upstream queue depth (vLLM's
``/metrics``), each mapped linearly between its low and high settings. At load L the TTLs of
new entries grow by ``1 + L * (load_max_ttl_factor - 1)``. Similarity thresholds never move:
load never trades correctness for speed. Polling ``/metrics`` stops after
``load_poll_give_up`` answers of 404 or no answer (an upstream without metrics)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families
from semcache.adapters.proxy.metrics import ProxyMetrics
from semcache.adapters.proxy.settings import ProxySettings

log = logging.getLogger("semcache.proxy")
QUEUE_METRIC = "vllm:num_requests_waiting"


def parse_queue_depth(text: str) -> float | None:
    """Sum of ``vllm:num_requests_waiting`` samples in a Prometheus exposition text (None if absent)."""
    total, seen = 0.0, False
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == QUEUE_METRIC:
                    total += sample.value
                    seen = True
    except ValueError:  # not exposition text
        return None
    return total if seen else None


def _ramp(value: float, low: float, high: float) -> float:
    return min(1.0, max(0.0, (value - low) / (high - low)))


class LoadMonitor:
    """Tracks upstream load and turns it into a threshold relaxation and a TTL factor."""

    def __init__(self, settings: ProxySettings, metrics: ProxyMetrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self._samples: deque[tuple[float, float]] = deque()  # (time, latency ms)
        self._queue: float | None = None
        self._queue_at = -float("inf")
        self._task: asyncio.Task[None] | None = None
        self._misses = 0  # consecutive polls without metrics
        self.polling_stopped = False

    # -------------------------------------------------------------- inputs
    def record_latency(self, latency_ms: float) -> None:
        """Record one upstream call's latency (milliseconds)."""
        self._samples.append((self.clock(), float(latency_ms)))
        self.refresh()

    def record_queue(self, depth: float) -> None:
        self._queue, self._queue_at = float(depth), self.clock()
        self.metrics.upstream_queue.set(depth)
        self.refresh()

    async def poll_once(self, client: httpx.AsyncClient) -> bool:
        """Read the upstream's ``/metrics`` once; False when it has none (404, no queue metric, no answer)."""
        try:
            response = await client.get("/metrics", timeout=self.settings.connect_timeout_s)
        except httpx.HTTPError:
            return False
        depth = parse_queue_depth(response.text) if response.status_code == 200 else None
        if depth is None:
            return False
        self.record_queue(depth)
        return True

    def start(self, client: httpx.AsyncClient) -> None:
        """Start polling the upstream's queue depth in the background."""
        if self._task is None and self.settings.load_adaptive and self.settings.load_poll_metrics:
            self._task = asyncio.create_task(self._poll_loop(client))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _poll_loop(self, client: httpx.AsyncClient) -> None:
        while True:
            self._misses = 0 if await self.poll_once(client) else self._misses + 1
            self.refresh()
            if self._misses >= self.settings.load_poll_give_up:
                log.info("upstream has no queue metrics at /metrics; load adaptation uses time to first token")
                self.polling_stopped = True
                return
            await asyncio.sleep(self.settings.load_poll_interval_s)

    # ------------------------------------------------------------- outputs
    def _window_latency(self) -> float:
        horizon = self.clock() - self.settings.load_window_s
        while self._samples and self._samples[0][0] < horizon:
            self._samples.popleft()
        if not self._samples:
            return 0.0
        values = sorted(v for _, v in self._samples)
        return values[len(values) // 2]

    def load(self) -> float:
        """Current load in [0, 1] (0 when load adaptation is off)."""
        s = self.settings
        if not s.load_adaptive:
            return 0.0
        latency = self._window_latency()
        self.metrics.upstream_latency_window.set(latency)
        lat = _ramp(latency, s.load_latency_low_ms, s.load_latency_high_ms)
        fresh = self.clock() - self._queue_at <= max(3 * s.load_poll_interval_s, s.load_window_s)
        queue = _ramp(self._queue, s.load_queue_low, s.load_queue_high) if fresh and self._queue is not None else 0.0
        return max(lat, queue)

    def refresh(self) -> float:
        """Recompute the load and publish it (and what it implies) as gauges."""
        value = self.load()
        self.metrics.load_factor.set(value)
        self.metrics.ttl_factor.set(self.ttl_factor(value))
        return value

    def ttl_factor(self, load: float | None = None) -> float:
        value = self.load() if load is None else load
        return 1.0 + value * (self.settings.load_max_ttl_factor - 1.0)
