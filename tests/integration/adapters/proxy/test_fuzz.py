"""Schemathesis fuzzes the proxy's own OpenAPI spec; the upstream is a healthy fake behind an httpx
transport, so any 5xx would come from the proxy itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from semcache.adapters.proxy import ProxySettings, create_app

from tests.fixtures.proxy import proxy_server
from tests.fixtures.upstream import FakeUpstream

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The spec does not depend on the running state, so it is read from an app that is never started.
schema = schemathesis.openapi.from_dict(create_app(ProxySettings(upstream_url="http://upstream")).openapi())


@pytest.fixture(scope="module")
def proxy_url(tmp_path_factory: pytest.TempPathFactory, minilm: Any) -> Iterator[str]:
    from semcache.cache import SemanticCache

    cache = SemanticCache(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'cache.db'}", embedder=minilm,
                          stats_interval=0)
    transport = httpx.ASGITransport(app=FakeUpstream().app)
    try:
        with proxy_server(cache, "http://upstream", transport=transport, max_body_bytes=65_536) as url:
            yield url
    finally:
        cache.close()


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case, proxy_url: str) -> None:
    case.call_and_validate(base_url=proxy_url, checks=[not_a_server_error], timeout=30)
