"""The proxy (uvicorn, real socket) in front of a real vLLM serving SmolLM2, driven by the openai client.

Kept few and short: vLLM on 2 shared CPU cores makes ~35 tokens/s, so every
request asks for at most 16 tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fixtures.proxy import proxy_server
from tests.fixtures.vllm import SERVED_MODEL, vllm_server  # noqa: F401 - the fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
REWORDED = [{"role": "user", "content": "What is France's capital?"}]
ARGS: dict[str, Any] = {"model": SERVED_MODEL, "temperature": 0, "max_tokens": 12}


@pytest.fixture
def proxy_url(make_cache: Any, vllm_server: str) -> Iterator[str]:  # noqa: F811
    with proxy_server(make_cache(), vllm_server) as url:
        yield url


def test_sync_miss_exact_semantic(proxy_url: str, vllm_server: str) -> None:  # noqa: F811
    client = openai.OpenAI(base_url=f"{proxy_url}/v1", api_key="EMPTY")
    direct = openai.OpenAI(base_url=f"{vllm_server}/v1", api_key="EMPTY")
    miss = client.chat.completions.with_raw_response.create(messages=MESSAGES, **ARGS)
    assert miss.headers["x-semcache"] == "miss" and miss.headers["x-semcache-entry"]
    answer = miss.parse()
    assert answer.choices[0].message.content and answer.choices[0].finish_reason in ("stop", "length")
    # The proxy is transparent on a miss: greedy decoding gives vLLM's own answer.
    assert direct.chat.completions.create(messages=MESSAGES, **ARGS).choices[0].message.content \
        == answer.choices[0].message.content
    exact = client.chat.completions.with_raw_response.create(messages=MESSAGES, **ARGS)
    assert exact.headers["x-semcache"] == "hit" and exact.headers["x-semcache-match"] == "exact"
    assert exact.parse().choices[0].message.content == answer.choices[0].message.content
    semantic = client.chat.completions.with_raw_response.create(messages=REWORDED, **ARGS)
    assert semantic.headers["x-semcache"] == "hit" and semantic.headers["x-semcache-match"] == "semantic"
    assert semantic.headers["x-semcache-entry"] == miss.headers["x-semcache-entry"]
    models = client.models.list()
    assert [m.id for m in models.data] == [SERVED_MODEL]


def test_streaming_miss_and_hit(proxy_url: str) -> None:
    client = openai.OpenAI(base_url=f"{proxy_url}/v1", api_key="EMPTY")
    question = [{"role": "user", "content": "Name a primary colour."}]
    texts, outcomes = [], []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(messages=question, stream=True, **ARGS)
        outcomes.append(raw.headers["x-semcache"])
        chunks = list(raw.parse())
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")
        texts.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
    assert outcomes == ["miss", "hit"] and texts[0] and texts[0] == texts[1]


async def test_async_client_and_completions(proxy_url: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{proxy_url}/v1", api_key="EMPTY")
    first = await client.completions.with_raw_response.create(prompt="The sky is", **ARGS)
    second = await client.completions.with_raw_response.create(prompt="The sky is", **ARGS)
    assert (first.headers["x-semcache"], second.headers["x-semcache"]) == ("miss", "hit")
    assert first.parse().choices[0].text == second.parse().choices[0].text
    stream = await client.chat.completions.create(messages=MESSAGES, stream=True, **ARGS)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text
    await client.close()


def test_tenants_are_isolated(make_cache: Any, vllm_server: str) -> None:  # noqa: F811
    cache = make_cache()
    from semcache.adapters.server.keys import KeyStore

    keys = KeyStore(cache.db.engine)
    key_a, key_b = keys.issue_key("a", create_tenant=True), keys.issue_key("b", create_tenant=True)
    with proxy_server(cache, vllm_server, require_keys=True) as url:
        a = openai.OpenAI(base_url=f"{url}/v1", api_key=key_a)
        b = openai.OpenAI(base_url=f"{url}/v1", api_key=key_b)
        assert a.chat.completions.with_raw_response.create(messages=MESSAGES, **ARGS).headers["x-semcache"] == "miss"
        assert a.chat.completions.with_raw_response.create(messages=REWORDED, **ARGS).headers["x-semcache"] == "hit"
        assert b.chat.completions.with_raw_response.create(messages=MESSAGES, **ARGS).headers["x-semcache"] == "miss"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="sk-sc-invalid").chat.completions.create(
                messages=MESSAGES, **ARGS)
