"""The proxy in process, with a real cache (SQLite + MiniLM) and a fake upstream behind httpx transports.

The fake upstream injects faults and counts calls, so these tests check what
only the proxy decides: what is stored, what is shared, what is isolated.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
from semcache.adapters.server.keys import KeyStore

from semcache.lookup.partition import PARTITION_VERSION
from tests.fixtures.proxy import CHAT, chat_body, proxy_client
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration

QUESTION = "What is the capital of France?"
PARAPHRASE = "What is France's capital?"


def outcome(response: httpx.Response) -> str:
    return response.headers.get("x-semcache", "")


async def test_miss_exact_semantic_and_headers(make_cache: Any) -> None:
    fake = FakeUpstream()
    async with proxy_client(make_cache(), fake.app) as client:
        miss = await client.post(CHAT, json=chat_body(QUESTION))
        assert miss.status_code == 200 and outcome(miss) == "miss"
        entry = miss.headers["x-semcache-entry"]
        exact = await client.post(CHAT, json=chat_body(QUESTION))
        assert outcome(exact) == "hit" and exact.headers["x-semcache-match"] == "exact"
        assert exact.headers["x-semcache-entry"] == entry and exact.json() == miss.json()
        semantic = await client.post(CHAT, json=chat_body(PARAPHRASE))
        assert outcome(semantic) == "hit" and semantic.headers["x-semcache-match"] == "semantic"
        assert 0 < float(semantic.headers["x-semcache-similarity"]) < 1
        assert semantic.headers["x-semcache-category"]
        other = await client.post(CHAT, json=chat_body("How do I sort a dictionary by value in Python?"))
        assert outcome(other) == "miss" and "x-semcache-reason" in other.headers
        assert fake.calls == 2


@pytest.mark.parametrize(("fault", "status", "stream"), [
    ("status", 502, False), ("status", 502, True), ("bad_json", 502, False),
    ("break_stream", 200, True), ("error_event", 200, True), ("no_done", 200, True),
    ("tool_calls", 200, False), ("tool_calls", 200, True),
])
async def test_failures_are_never_cached(make_cache: Any, fault: str, status: int, stream: bool) -> None:
    fake = FakeUpstream(fault=fault, fault_status=500)
    body = chat_body(QUESTION, stream=stream)
    async with proxy_client(make_cache(), fake.app, retries=0) as client:
        failed = await client.post(CHAT, json=body)
        assert failed.status_code == status
        if status != 200:
            assert failed.json()["error"]["message"]
        assert "x-semcache-entry" not in failed.headers and ": x-semcache-entry" not in failed.text
        fake.fault = None
        again = await client.post(CHAT, json=body)
        assert again.status_code == 200 and outcome(again) == "miss"
        assert fake.calls == 2


@pytest.mark.parametrize(("upstream_status", "proxy_status"), [(500, 502), (503, 503), (504, 504), (400, 400)])
async def test_upstream_status_mapping_and_not_cached(make_cache: Any, upstream_status: int,
                                                      proxy_status: int) -> None:
    fake = FakeUpstream(fault="status", fault_status=upstream_status)
    async with proxy_client(make_cache(), fake.app, retries=1) as client:
        response = await client.post(CHAT, json=chat_body(QUESTION))
        assert response.status_code == proxy_status
        assert response.json()["error"]["message"]
        retried = upstream_status in (502, 503, 504)  # the default retry_statuses
        assert fake.calls == (2 if retried else 1)
        fake.fault = None
        assert outcome(await client.post(CHAT, json=chat_body(QUESTION))) == "miss"


@pytest.mark.parametrize(("exc", "status"), [(httpx.ConnectError("refused"), 502),
                                             (httpx.ReadTimeout("slow"), 504),
                                             (httpx.RemoteProtocolError("bye"), 502)])
async def test_transport_errors(make_cache: Any, exc: Exception, status: int) -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise exc

    async with proxy_client(make_cache(), transport=httpx.MockTransport(handler), retries=2) as client:
        response = await client.post(CHAT, json=chat_body(QUESTION))
        streamed = await client.post(CHAT, json=chat_body(QUESTION, stream=True))
    assert response.status_code == status and streamed.status_code == status
    error = response.json()["error"]
    assert error["code"].startswith("upstream_") and "upstream" in error["message"]
    assert attempts == (6 if isinstance(exc, httpx.ConnectError) else 2)  # only connect errors are retried


async def test_single_flight(make_cache: Any) -> None:
    fake = FakeUpstream(delay_s=0.5)
    async with proxy_client(make_cache(), fake.app) as client:
        bodies = [chat_body(QUESTION, stream=(i % 2 == 1)) for i in range(8)]
        responses = await asyncio.gather(*(client.post(CHAT, json=b) for b in bodies))
    assert fake.calls == 1
    assert all(r.status_code == 200 and outcome(r) == "miss" for r in responses)
    assert sum(r.headers.get("x-semcache-coalesced") == "true" for r in responses) == 7
    entries = {r.headers.get("x-semcache-entry") for r in responses if not r.text.startswith("data:")}
    entries |= {line.split()[-1] for r in responses for line in r.text.splitlines()
                if line.startswith(": x-semcache-entry")}
    assert len(entries - {None}) == 1


async def test_single_flight_shares_errors_without_storing(make_cache: Any) -> None:
    fake = FakeUpstream(delay_s=0.3, fault="status", fault_status=500)
    async with proxy_client(make_cache(), fake.app, retries=0) as client:
        responses = await asyncio.gather(*(client.post(CHAT, json=chat_body(QUESTION)) for _ in range(4)))
        assert [r.status_code for r in responses] == [502] * 4 and fake.calls == 1
        fake.fault = None
        assert outcome(await client.post(CHAT, json=chat_body(QUESTION))) == "miss"


async def test_tenant_and_user_isolation_with_positive_controls(make_cache: Any) -> None:
    cache = make_cache()
    keys = KeyStore(cache.db.engine)
    key_a = keys.issue_key("acme", create_tenant=True)
    key_b = keys.issue_key("globex", create_tenant=True)
    fake = FakeUpstream()
    questions = [QUESTION, "How do I reverse a list in Python?", "What causes rainbows?", "How do I boil an egg?"]
    paraphrases = [PARAPHRASE, "How can I reverse a Python list?", "What makes rainbows appear?",
                   "How should I boil an egg?"]
    async with proxy_client(cache, fake.app, require_keys=True) as client:
        def post(body: dict[str, Any], key: str, **headers: str) -> Any:
            return client.post(CHAT, json=body, headers={"authorization": f"Bearer {key}", **headers})

        assert (await client.post(CHAT, json=chat_body(QUESTION))).status_code == 401
        assert (await post(chat_body(QUESTION), "sk-sc-wrong")).status_code == 401
        for q in questions:
            assert outcome(await post(chat_body(q), key_a)) == "miss"
        # Tenant B asks the same and reworded questions; no-store keeps its own answers out of the way.
        cross = [outcome(await post(chat_body(t), key_b, **{"cache-control": "no-store"}))
                 for t in questions + paraphrases]
        own = [outcome(await post(chat_body(t), key_a)) for t in questions + paraphrases]
        assert cross.count("hit") == 0 and own == ["hit"] * len(own)
        # Positive control inside tenant B.
        assert outcome(await post(chat_body(questions[1]), key_b)) == "miss"
        assert outcome(await post(chat_body(paraphrases[1]), key_b)) == "hit"
        # Per-user scope: the user field and the x-semcache-user header.
        assert outcome(await post(chat_body("What is my account balance?", user="u1"), key_a)) == "miss"
        assert outcome(await post(chat_body("What is my account balance?", user="u1"), key_a)) == "hit"
        assert outcome(await post(chat_body("What is my account balance?", user="u2"), key_a)) == "miss"
        assert outcome(await post(chat_body("What is my account balance?"), key_a, **{"x-semcache-user": "u1"})) \
            == "hit"
    # Tenant keys never reach the upstream.
    assert all("sk-sc-" not in json.dumps(b) for b in fake.bodies)


async def test_cache_controls(make_cache: Any) -> None:
    fake = FakeUpstream()
    async with proxy_client(make_cache(), fake.app) as client:
        stored = await client.post(CHAT, json=chat_body(QUESTION))
        fresh = await client.post(CHAT, json=chat_body(QUESTION), headers={"x-semcache-control": "no-cache"})
        assert outcome(fresh) == "miss" and fresh.headers["x-semcache-entry"] != stored.headers["x-semcache-entry"]
        assert outcome(await client.post(CHAT, json=chat_body(QUESTION), headers={"cache-control": "no-cache"})) \
            == "miss"
        unstored = await client.post(CHAT, json=chat_body("Who wrote Hamlet?"), headers={"cache-control": "no-store"})
        assert outcome(unstored) == "miss" and "x-semcache-entry" not in unstored.headers
        assert outcome(await client.post(CHAT, json=chat_body("Who wrote Hamlet?"))) == "miss"
        both = await client.post(CHAT, json=chat_body(QUESTION), headers={"x-semcache-control": "no-cache, no-store"})
        assert outcome(both) == "bypass"
        # Threshold override, clamped to the category's bounds.
        strict = await client.post(CHAT, json=chat_body(PARAPHRASE),
                                   headers={"x-semcache-threshold": "1.0", "x-semcache-control": "no-store"})
        assert outcome(strict) == "miss"
        policy = client.app.state.proxy.cache.policy(strict.headers["x-semcache-category"])  # type: ignore[attr-defined]
        assert float(strict.headers["x-semcache-threshold"]) == pytest.approx(policy.max_threshold)
        loose = await client.post(CHAT, json=chat_body(PARAPHRASE), headers={"x-semcache-threshold": "0.01"})
        assert outcome(loose) == "hit"
        assert float(loose.headers["x-semcache-threshold"]) == pytest.approx(policy.min_threshold)
        assert (await client.post(CHAT, json=chat_body(QUESTION), headers={"x-semcache-threshold": "x"})).status_code \
            == 400
        sampled = await client.post(CHAT, json=chat_body(QUESTION, temperature=0.8))
        multi = await client.post(CHAT, json=chat_body(QUESTION, n=2))
        assert outcome(sampled) == "bypass" and outcome(multi) == "bypass"
        assert "temperature" in sampled.headers["x-semcache-reason"]


async def test_http_errors_and_ops_routes(make_cache: Any) -> None:
    fake = FakeUpstream()
    async with proxy_client(make_cache(), fake.app, max_body_bytes=4096) as client:
        too_big = await client.post(CHAT, json=chat_body("x" * 10_000))
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "body_too_large"
        assert (await client.post(CHAT, content=b"{nope")).status_code == 400
        assert (await client.post(CHAT, json={"model": "m"})).status_code == 400
        assert (await client.post("/v1/completions", json={"model": "m"})).status_code == 400
        for path in ("/v1/unknown", "/nothing/here"):
            missing = await client.get(path)
            assert missing.status_code == 404 and set(missing.json()["error"]) >= {"message", "type", "code"}
        models = await client.get("/v1/models")
        assert models.status_code == 200 and models.json()["data"][0]["id"] == "fake-model"
        embeddings = await client.post("/v1/embeddings", json={"model": "m", "input": "hi"})
        assert embeddings.status_code == 200 and embeddings.headers["x-semcache"] == "bypass"
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
        spec = (await client.get("/openapi.json")).json()
        assert {"/v1/chat/completions", "/v1/completions", "/semcache/v1/lookup"} <= set(spec["paths"])
        completion = await client.post("/v1/completions", json={"model": "m", "prompt": "Once upon", "temperature": 0})
        assert outcome(completion) == "miss"
        again = await client.post("/v1/completions", json={"model": "m", "prompt": "Once upon", "temperature": 0})
        assert outcome(again) == "hit" and again.json()["choices"][0]["text"] == completion.json()["choices"][0]["text"]
        metrics = (await client.get("/metrics")).text
        assert 'semcache_requests_total{endpoint="completions",match="exact",outcome="hit"} 1.0' in metrics
        assert "semcache_load_factor" in metrics


async def test_readyz_when_upstream_down(make_cache: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with proxy_client(make_cache(), transport=httpx.MockTransport(handler)) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503 and "unreachable" in ready.json()["error"]["message"]


async def test_load_adaptation_keeps_thresholds_and_lengthens_ttls(make_cache: Any) -> None:
    class Clock:
        now = 0.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    fake = FakeUpstream(delay_s=0.3)  # slower than load_latency_high_ms to the first byte: full load
    settings = {"load_latency_low_ms": 50.0, "load_latency_high_ms": 250.0, "load_window_s": 30.0}
    async with proxy_client(make_cache(), fake.app, load_clock=clock, **settings) as client:
        state = client.app.state.proxy  # type: ignore[attr-defined]
        # a slow answer without a stream is no sign of load: its length may be the reason
        first = await client.post(CHAT, json=chat_body(QUESTION))
        assert "semcache_load_factor 0.0" in (await client.get("/metrics")).text
        policy = state.cache.policy(first.headers["x-semcache-category"])
        for q in ("Who painted the Mona Lisa?", "Who wrote Hamlet?"):
            async with client.stream("POST", CHAT, json=chat_body(q, stream=True)) as streamed:
                await streamed.aread()
        loaded = await client.post(CHAT, json=chat_body("How tall is Mount Everest?"))
        assert float(loaded.headers["x-semcache-threshold"]) == pytest.approx(policy.threshold)
        metrics = (await client.get("/metrics")).text
        assert "semcache_load_factor 1.0" in metrics and "semcache_ttl_factor 2.0" in metrics
        clock.now += 31  # the slow samples leave the window
        assert "semcache_load_factor 0.0" in (await client.get("/metrics")).text


async def test_streaming_hit_and_miss_parse_with_openai_client(make_cache: Any) -> None:
    fake = FakeUpstream()
    async with proxy_client(make_cache(), fake.app) as client:
        oai = openai.AsyncOpenAI(base_url="http://proxy/v1", api_key="unused", http_client=client)
        texts, outcomes = [], []
        for _ in range(2):
            raw = await oai.chat.completions.with_raw_response.create(
                model="fake-model", messages=[{"role": "user", "content": QUESTION}], temperature=0, max_tokens=16,
                stream=True, stream_options={"include_usage": True})
            outcomes.append(raw.headers["x-semcache"])
            chunks = [chunk async for chunk in raw.parse()]
            texts.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
            assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
        assert outcomes == ["miss", "hit"] and texts[0] == texts[1] and texts[0].startswith("This is the answer")


async def test_cache_api_lookup_and_store(make_cache: Any) -> None:
    cache = make_cache()
    keys = KeyStore(cache.db.engine)
    key_a, key_b = keys.issue_key("a", create_tenant=True), keys.issue_key("b", create_tenant=True)
    async with proxy_client(cache, FakeUpstream(), require_keys=True) as client:
        auth_a, auth_b = {"authorization": f"Bearer {key_a}"}, {"authorization": f"Bearer {key_b}"}
        q = {"prompt": "How do I reverse a list in Python?", "model": "m", "params": {"temperature": 0}}
        assert (await client.post("/semcache/v1/lookup", json=q)).status_code == 401
        empty = (await client.post("/semcache/v1/lookup", json=q, headers=auth_a)).json()
        assert empty["hit"] is False
        stored = (await client.post("/semcache/v1/store", json={**q, "response": {"text": "reversed()"}},
                                    headers=auth_a)).json()
        assert stored["stored"] and stored["entry_id"]
        found = (await client.post("/semcache/v1/lookup", json={**q, "prompt": "How can I reverse a Python list?"},
                                   headers=auth_a)).json()
        assert found["hit"] and found["match"] == "semantic" and found["response"] == {"text": "reversed()"}
        other = (await client.post("/semcache/v1/lookup", json=q, headers=auth_b)).json()
        assert other["hit"] is False
        assert (await client.post("/semcache/v1/lookup", json={"model": "m"}, headers=auth_a)).status_code == 400
        bad_category = await client.post("/semcache/v1/lookup", json={**q, "category": "nope"}, headers=auth_a)
        assert bad_category.status_code == 400


async def test_one_question_lands_in_one_partition_through_the_proxy_and_the_cache_api(
        make_cache: Any) -> None:
    fake = FakeUpstream()
    cache = make_cache()
    params = {"temperature": 0, "max_tokens": 16}
    async with proxy_client(cache, fake.app) as client:
        miss = await client.post(CHAT, json=chat_body(QUESTION))
        entry = int(miss.headers["x-semcache-entry"])
        looked = (await client.post("/semcache/v1/lookup", json={
            "prompt": QUESTION, "model": "fake-model", "params": params})).json()
        assert looked["hit"] and looked["match"] == "exact" and looked["entry_id"] == entry
        other = "How many moons does Mars have?"
        stored = (await client.post("/semcache/v1/store", json={
            "prompt": other, "model": "fake-model", "params": params, "response": miss.json()})).json()
        served = await client.post(CHAT, json=chat_body(other))
        assert outcome(served) == "hit" and served.headers["x-semcache-entry"] == str(stored["entry_id"])
        assert fake.calls == 1
    assert cache.mirror.get(entry).partition == cache.mirror.get(stored["entry_id"]).partition
    assert cache.mirror.get(entry).partition.startswith(f"v{PARTITION_VERSION}:")
