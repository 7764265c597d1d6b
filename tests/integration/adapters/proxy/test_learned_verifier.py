"""Through the proxy with the real ``openai`` client and default arguments, the cache built from
settings with ``SEMCACHE_VERIFIER=learned`` (the shipped pair model, real MiniLM, real SQLite):
a misspelled repeat and a reworded question are served; a negated question, one with another
number and a misspelled question that asks something else are not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from semcache.adapters.proxy import ProxySettings

from semcache.build import build_cache
from semcache.verify.learned import LearnedVerifier
from tests.fixtures.proxy import proxy_client
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration


@pytest.fixture
async def ask(minilm: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """``ask(question)`` -> the proxy's x-semcache outcome, through a proxy in front of a fake upstream."""
    monkeypatch.setenv("SEMCACHE_VERIFIER", "learned")
    settings = ProxySettings(upstream_url="http://upstream", db_url=f"sqlite:///{tmp_path / 'cache.db'}")
    cache = build_cache(settings, embedder=minilm, stats_interval=0)
    assert isinstance(cache.verifier, LearnedVerifier) and cache.parts.text_index is not None
    try:
        async with proxy_client(cache, FakeUpstream().app) as client:
            oai = openai.AsyncOpenAI(base_url="http://proxy/v1", api_key="unused", http_client=client)

            async def outcome(question: str) -> str:
                raw = await oai.chat.completions.with_raw_response.create(
                    model="fake-model", messages=[{"role": "user", "content": question}])
                assert raw.parse().choices[0].message.content
                return str(raw.headers["x-semcache"])

            yield outcome
    finally:
        cache.close()


async def test_misspelled_repeat_is_served(ask: Any) -> None:
    # cosine 0.43 with MiniLM: under the candidate floor (0.6), found by the character n-grams
    assert await ask("How can I change my delivery address?") == "miss"
    assert await ask("how can i chnage my delivry adress") == "hit"


async def test_reworded_question_is_served(ask: Any) -> None:
    assert await ask("What is a good way to get rid of hiccups?") == "miss"
    assert await ask("How can I stop hiccuping?") == "hit"


@pytest.mark.xfail(strict=True, reason="the shipped pair model scores this paraphrase 0.99, over its "
                   "threshold, but the negation rule reads close/open as antonyms and vetoes it")
async def test_reworded_opening_time_is_served(ask: Any) -> None:
    assert await ask("What time does the pharmacy close tonight?") == "miss"
    assert await ask("Until when is the pharmacy open this evening?") == "hit"


async def test_negated_question_is_not_served(ask: Any) -> None:
    assert await ask("Which fruits are safe for dogs to eat?") == "miss"
    assert await ask("Which fruits are not safe for dogs to eat?") == "miss"


async def test_question_with_another_number_is_not_served(ask: Any) -> None:
    assert await ask("How many calories are in 2 boiled eggs?") == "miss"
    assert await ask("How many calories are in 5 boiled eggs?") == "miss"


async def test_misspelled_question_about_something_else_is_not_served(ask: Any) -> None:
    assert await ask("How can I change my delivery date?") == "miss"
    assert await ask("how can i chnage my delivry adress") == "miss"
