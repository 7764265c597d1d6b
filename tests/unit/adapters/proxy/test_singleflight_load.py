"""Single-flight bookkeeping and the load-adaptive policy (with a fake clock)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from semcache.adapters.proxy.load import LoadMonitor, parse_queue_depth
from semcache.adapters.proxy.metrics import ProxyMetrics
from semcache.adapters.proxy.settings import ProxySettings
from semcache.adapters.proxy.singleflight import SingleFlight

pytestmark = pytest.mark.unit


async def test_followers_share_the_leaders_result() -> None:
    flights: SingleFlight[int] = SingleFlight()
    runs = 0

    async def call() -> int:
        nonlocal runs
        flight, leader = flights.join("k")
        if not leader:
            return await flights.wait(flight, 5)
        with flights.lead(flight):
            runs += 1
            await asyncio.sleep(0.05)
            flight.publish(7)
        return 7

    results = await asyncio.gather(*(call() for _ in range(10)))
    assert results == [7] * 10 and runs == 1 and len(flights) == 0


async def test_leader_failure_reaches_followers_and_releases_key() -> None:
    flights: SingleFlight[int] = SingleFlight()
    flight, leader = flights.join("k")
    follower, is_leader = flights.join("k")
    assert leader and not is_leader and follower is flight
    with pytest.raises(ValueError), flights.lead(flight):
        raise ValueError("upstream down")
    with pytest.raises(ValueError):
        await flights.wait(follower, 1)
    assert flights.join("k")[1]  # a new request leads again


async def test_release_without_result_fails_followers() -> None:
    flights: SingleFlight[int] = SingleFlight()
    flight, _ = flights.join("k")
    flights.release(flight)
    with pytest.raises(RuntimeError):
        await flights.wait(flight, 1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def monitor(**kw: object) -> tuple[LoadMonitor, Clock, ProxyMetrics]:
    settings = ProxySettings(upstream_url="http://u", load_latency_low_ms=100, load_latency_high_ms=1100,
                             load_window_s=10, load_max_ttl_factor=3, **kw)
    clock, metrics = Clock(), ProxyMetrics()
    return LoadMonitor(settings, metrics, clock=clock), clock, metrics


def test_load_lengthens_ttls_and_recovers() -> None:
    load, clock, metrics = monitor()
    assert load.refresh() == 0.0 and load.ttl_factor() == 1.0
    for _ in range(5):
        load.record_latency(600)  # halfway between low and high
    assert load.refresh() == pytest.approx(0.5)
    assert load.ttl_factor() == pytest.approx(2.0)
    for _ in range(5):
        load.record_latency(50_000)
    assert load.refresh() == 1.0 and load.ttl_factor() == pytest.approx(3.0)
    assert metrics.registry.get_sample_value("semcache_load_factor") == 1.0
    clock.now += 11  # samples age out of the window
    assert load.refresh() == 0.0 and load.ttl_factor() == 1.0


def test_load_has_no_threshold_knob() -> None:
    """Similarity thresholds never move under load: neither a setting nor a gauge offers it."""
    assert not any("threshold" in name for name in ProxySettings.model_fields if name.startswith("load_"))
    _, _, metrics = monitor()
    assert "threshold" not in metrics.render().decode().replace("x-semcache-threshold", "")


def test_queue_depth_counts_while_fresh() -> None:
    load, clock, _ = monitor(load_queue_low=0, load_queue_high=10)
    load.record_queue(5)
    assert load.refresh() == pytest.approx(0.5)
    clock.now += 60
    assert load.refresh() == 0.0


def test_disabled_means_no_load() -> None:
    load, _, _ = monitor(load_adaptive=False)
    load.record_latency(1e9)
    assert load.refresh() == 0.0


def test_parse_queue_depth() -> None:
    text = ('# HELP vllm:num_requests_waiting x\nvllm:num_requests_waiting{engine="0"} 3.0\n'
            'vllm:num_requests_waiting_total 99\nvllm:num_requests_waiting{engine="1"} 2\n')
    assert parse_queue_depth(text) == 5.0
    assert parse_queue_depth("other_metric 1\n") is None
    assert parse_queue_depth("<html>not found</html>") is None


class NoMetrics(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return httpx.Response(404, text="not found")


async def test_polling_stops_when_the_upstream_has_no_metrics() -> None:
    transport = NoMetrics()
    load, _, _ = monitor(load_poll_interval_s=0.001, load_poll_give_up=3)
    async with httpx.AsyncClient(transport=transport, base_url="http://u") as client:
        load.start(client)
        await asyncio.sleep(0.2)
        assert load.polling_stopped and transport.calls == 3
        await load.stop()


def test_settings_refuse_inverted_bounds() -> None:
    with pytest.raises(ValueError):
        ProxySettings(upstream_url="http://u", load_latency_low_ms=5, load_latency_high_ms=1)
    with pytest.raises(ValueError):
        ProxySettings(upstream_url="ftp://u")
    with pytest.raises(ValueError):
        ProxySettings(upstream_url="http://u", admin_token="short")
