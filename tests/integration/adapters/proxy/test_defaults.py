"""A newcomer's first requests through the proxy: the real ``openai`` client with default
arguments, vLLM's ``/v1`` base URL, the body's ``cache`` field, request ids and metric names."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import openai
import pytest
from semcache.adapters.proxy import ProxySettings, create_app

from tests.fixtures.proxy import CHAT, chat_body, proxy_client
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration
QUESTION = "What is the capital of France?"


async def test_openai_client_default_arguments_hit_on_repeat(make_cache: Any) -> None:
    fake = FakeUpstream()
    async with proxy_client(make_cache(), fake.app) as client:
        oai = openai.AsyncOpenAI(base_url="http://proxy/v1", api_key="unused", http_client=client)
        outcomes, texts = [], []
        for _ in range(2):  # no temperature, no max_tokens: what the SDK sends by default
            raw = await oai.chat.completions.with_raw_response.create(
                model="fake-model", messages=[{"role": "user", "content": QUESTION}])
            outcomes.append(raw.headers["x-semcache"])
            texts.append(raw.parse().choices[0].message.content)
        assert outcomes == ["miss", "hit"] and texts[0] == texts[1] and fake.calls == 1
        # an explicit temperature is another scope: never served the unset one's answer
        explicit = await client.post(CHAT, json=chat_body(QUESTION, temperature=0))
        assert explicit.headers["x-semcache"] == "miss"


async def test_upstream_url_with_v1(make_cache: Any) -> None:
    fake = FakeUpstream()
    transport = httpx.ASGITransport(app=fake.app)
    app = create_app(ProxySettings(upstream_url="http://upstream/v1", load_poll_metrics=False),
                     cache=make_cache(), transport=transport)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://proxy") as client:
        response = await client.post(CHAT, json=chat_body(QUESTION))
        assert response.status_code == 200 and fake.calls == 1
        assert (await client.get("/v1/models")).status_code == 200


async def test_body_cache_field(make_cache: Any) -> None:
    fake = FakeUpstream()
    cache = make_cache()
    async with proxy_client(cache, fake.app) as client:
        first = await client.post(CHAT, json=chat_body(QUESTION, cache={"ttl": 60}))
        assert first.headers["x-semcache"] == "miss" and "cache" not in fake.bodies[-1]
        row = cache.db.get_entry(int(first.headers["x-semcache-entry"]))
        assert 55 <= (row.expires_at - row.created_at).total_seconds() <= 65
        hit = await client.post(CHAT, json=chat_body(QUESTION, cache={"ttl": 5, "no-store": True}))
        assert hit.headers["x-semcache"] == "hit", "ttl and no-store must not split the scope"
        other = await client.post(CHAT, json=chat_body(QUESTION, cache={"namespace": "team-b"}))
        assert other.headers["x-semcache"] == "miss"
        skipped = await client.post(CHAT, json=chat_body(QUESTION, cache={"no-cache": True}))
        assert skipped.headers["x-semcache"] == "miss" and fake.calls == 3
        await asyncio.sleep(1.2)
        stale = await client.post(CHAT, json=chat_body(QUESTION, cache={"s-maxage": 1}))
        assert stale.headers["x-semcache"] == "miss" and "s-maxage" in stale.headers["x-semcache-reason"]
        bad = await client.post(CHAT, json=chat_body(QUESTION, cache={"ttl": "soon"}))
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "cache.ttl"


async def test_request_id_and_access_log(make_cache: Any, caplog: pytest.LogCaptureFixture) -> None:
    async with proxy_client(make_cache(), FakeUpstream().app) as client:
        with caplog.at_level(logging.INFO, logger="semcache.access"):
            mine = await client.post(CHAT, json=chat_body(QUESTION), headers={"x-request-id": "abc-123"})
            fresh = await client.get("/healthz")
            hostile = await client.get("/healthz", headers={"x-request-id": "x y;" * 30})
    assert mine.headers["x-request-id"] == "abc-123"
    assert len(fresh.headers["x-request-id"]) == 32 and hostile.headers["x-request-id"] != "x y;" * 30
    lines = [r for r in caplog.records if r.name == "semcache.access"]
    assert any(r.request_id == "abc-123" and r.status == 200 and r.cache == "miss" for r in lines)  # type: ignore[attr-defined]


async def test_metric_names_and_gauges(make_cache: Any) -> None:
    async with proxy_client(make_cache(), FakeUpstream().app) as client:
        for _ in range(2):
            await client.post(CHAT, json=chat_body(QUESTION))
        text = (await client.get("/metrics")).text
    assert "semcache_entries 1.0" in text
    saved = [line for line in text.splitlines() if line.startswith("semcache_tokens_saved_total ")]
    assert saved and float(saved[0].split()[1]) > 0
    for line in text.splitlines():
        if line.startswith("# TYPE ") and line.endswith(" counter"):
            assert line.split()[2].startswith("semcache_")
        if line.startswith("# TYPE ") and line.endswith(" gauge"):
            assert not line.split()[2].endswith(("_resyncs", "_errors", "_applied")), line


async def test_quota_counts_each_tenant_apart(make_cache: Any, tmp_path: Any) -> None:
    policies = tmp_path / "p.yaml"
    policies.write_text("defaults: {max_entries: 2}\n")
    cache = make_cache(policies=policies)
    async with proxy_client(cache, FakeUpstream().app) as client:
        questions = [f"What is the capital of {c}?" for c in ("France", "Spain", "Peru")]
        mine = []
        for q in questions[:2]:  # the default tenant fills its quota through the proxy
            stored = await client.post(CHAT, json=chat_body(q))
            mine.append(int(stored.headers["x-semcache-entry"]))
        # another tenant's three stores may evict only its own entries
        for q in questions:
            cache.store(_request(q, "other"), {"choices": [{"message": {"content": q}}]})
        assert all(cache.db.get_entry(i) is not None for i in mine)
        assert sum(1 for e in _entries(cache) if e.tenant == "other") == 2


def _request(prompt: str, tenant: str) -> Any:
    from semcache.types import CacheRequest, Scope

    return CacheRequest(prompt=prompt, scope=Scope.of(tenant=tenant, model="fake-model", params={"temperature": 0}))


def _entries(cache: Any) -> list[Any]:
    return [row for batch in cache.db.iter_entries() for row in batch]


async def test_startup_heap_is_frozen_out_of_full_collections(tmp_path: Any) -> None:
    """A full collection walked the ~130k start-up objects (45-77 ms with the loop stopped)."""
    import gc

    gc.unfreeze()
    app = create_app(ProxySettings(upstream_url="http://upstream", db_url=f"sqlite:///{tmp_path / 'f.db'}",
                                   load_poll_metrics=False), transport=httpx.ASGITransport(app=FakeUpstream().app))
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 50_000
    finally:
        gc.unfreeze()
