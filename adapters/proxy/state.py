"""What one proxy app holds: its settings and the collaborators built from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from semcache.adapters.proxy.load import LoadMonitor
from semcache.adapters.proxy.metrics import ProxyMetrics
from semcache.adapters.proxy.settings import ProxySettings
from semcache.adapters.proxy.singleflight import SharedFlights, SingleFlight
from semcache.adapters.proxy.upstream import Upstream
from semcache.adapters.server.keys import KeyStore

from semcache.cache import SemanticCache


@dataclass
class ProxyState:
    """Per-app state, reached from handlers through ``deps.StateDep``."""

    settings: ProxySettings
    cache: SemanticCache
    upstream: Upstream
    metrics: ProxyMetrics
    load: LoadMonitor
    keys: KeyStore
    flights: SingleFlight[Any] = field(default_factory=SingleFlight)
    shared_flights: SharedFlights | None = None  # across replicas sharing one database
