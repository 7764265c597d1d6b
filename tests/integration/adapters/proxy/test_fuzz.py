"""Schemathesis fuzzes the proxy's own OpenAPI spec: the OpenAI routes, the cache API and the
admin API (mounted, with the admin token sent). The upstream is a healthy fake behind an httpx
transport, so any 5xx comes from the proxy itself. A fixed seed and a bounded budget keep it
in ``make test``; ``benchmarks/fuzz_api.py`` runs the same checks over 20,000+ cases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, seed, settings
from schemathesis.checks import not_a_server_error
from semcache.adapters.proxy import ProxySettings, create_app

from tests.fixtures.proxy import proxy_server
from tests.fixtures.upstream import FakeUpstream

pytestmark = [pytest.mark.integration]

ADMIN = "admin-token-0123456789abcdef"
HEADERS = {"authorization": f"Bearer {ADMIN}"}
# The spec does not depend on the running state, so it is read from an app that is never started.
schema = schemathesis.openapi.from_dict(
    create_app(ProxySettings(upstream_url="http://upstream", admin_token=ADMIN)).openapi())


@pytest.fixture(scope="module")
def proxy_url(tmp_path_factory: pytest.TempPathFactory, minilm: Any) -> Iterator[str]:
    from semcache.cache import SemanticCache

    cache = SemanticCache(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'cache.db'}", embedder=minilm,
                          stats_interval=0)
    transport = httpx.ASGITransport(app=FakeUpstream().app)
    try:
        with proxy_server(cache, "http://upstream", transport=transport, max_body_bytes=65_536,
                          admin_token=ADMIN) as url:
            yield url
    finally:
        cache.close()


def test_the_spec_covers_the_proxy_the_cache_api_and_the_admin_api() -> None:
    paths = {op.path for op in (result.ok() for result in schema.get_all_operations())}
    assert {"/v1/chat/completions", "/semcache/v1/store", "/admin/api/retention/apply"} <= paths


@schema.parametrize()
@seed(26)
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case: schemathesis.Case, proxy_url: str) -> None:
    case.call_and_validate(base_url=proxy_url, headers=HEADERS, checks=[not_a_server_error], timeout=30)
