"""Load-adaptive policy: relax thresholds and lengthen TTLs while the upstream is overloaded.

Load in [0, 1] is the larger of the median upstream latency over ``load_window_s`` and
the upstream queue depth (vLLM's ``/metrics``), each mapped linearly between its low and
high settings. At load L the threshold drops by ``L * load_max_threshold_relax`` (never
below the category's minimum) and TTLs grow by ``1 + L * (load_max_ttl_factor - 1)``;
both return to normal as samples age out (docs/design/core.md)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

import httpx
from semcache.adapters.proxy.metrics import ProxyMetrics
from semcache.adapters.proxy.settings import ProxySettings

log = logging.getLogger("semcache.proxy")
QUEUE_METRIC = "vllm:num_requests_waiting"


def parse_queue_depth(text: str) -> float | None:
    """Sum of ``vllm:num_requests_waiting`` samples in a Prometheus exposition text."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(QUEUE_METRIC) and (len(line) == len(QUEUE_METRIC) or line[len(QUEUE_METRIC)] in "{ "):
            try:
                total += float(line.rsplit(None, 1)[-1])
                seen = True
            except ValueError:
                continue
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

    # -------------------------------------------------------------- inputs
    def record_latency(self, latency_ms: float) -> None:
        """Record one upstream call's latency (milliseconds)."""
        self._samples.append((self.clock(), float(latency_ms)))
        self.refresh()

    def record_queue(self, depth: float) -> None:
        self._queue, self._queue_at = float(depth), self.clock()
        self.metrics.upstream_queue.set(depth)
        self.refresh()

    async def poll_once(self, client: httpx.AsyncClient) -> None:
        """Read the upstream's ``/metrics`` once (silently skipped if it has none)."""
        try:
            response = await client.get("/metrics", timeout=self.settings.connect_timeout_s)
        except httpx.HTTPError:
            return
        if response.status_code == 200:
            depth = parse_queue_depth(response.text)
            if depth is not None:
                self.record_queue(depth)

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
            await self.poll_once(client)
            self.refresh()
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
        self.metrics.threshold_relax.set(value * self.settings.load_max_threshold_relax)
        self.metrics.ttl_factor.set(self.ttl_factor(value))
        return value

    def relaxed_threshold(self, threshold: float, min_threshold: float, load: float | None = None) -> float:
        """``threshold`` lowered for the current load, never below ``min_threshold``."""
        value = self.refresh() if load is None else load
        relaxed = threshold - value * self.settings.load_max_threshold_relax
        return max(min(min_threshold, threshold), relaxed)

    def ttl_factor(self, load: float | None = None) -> float:
        value = self.load() if load is None else load
        return 1.0 + value * (self.settings.load_max_ttl_factor - 1.0)
