"""What one proxy app holds: its settings and the collaborators built from them."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from semcache.adapters.proxy.load import LoadMonitor
from semcache.adapters.proxy.metrics import ProxyMetrics
from semcache.adapters.proxy.settings import ProxySettings
from semcache.adapters.proxy.singleflight import SharedFlights, SingleFlight
from semcache.adapters.proxy.upstream import Upstream
from semcache.adapters.server.keys import KeyStore


@dataclass
class ProxyState:
    """Per-app state, reached from handlers through ``deps.StateDep``."""

    settings: ProxySettings
    cache: Any  # semcache.cache.SemanticCache
    upstream: Upstream
    metrics: ProxyMetrics
    load: LoadMonitor
    keys: KeyStore
    flights: SingleFlight[Any] = field(default_factory=SingleFlight)
    shared_flights: SharedFlights | None = None  # across replicas sharing one database
    store_takes_ttl: bool = False

    def __post_init__(self) -> None:
        # TTL lengthening under load needs a core whose store() accepts a ttl override.
        try:
            self.store_takes_ttl = "ttl_seconds" in inspect.signature(self.cache.store).parameters
        except (TypeError, ValueError):
            self.store_takes_ttl = False
