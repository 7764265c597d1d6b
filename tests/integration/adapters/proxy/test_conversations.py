"""Conversations through the proxy with the real ``openai`` client: assistant turns are context.

Each conversation is first sent as stored (a miss, whose answer is cached), then the asked
one is sent in the same scope; ``x-semcache`` says whether it was served from the cache.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.fixtures.conversations import CONVERSATIONS, Conversation
from tests.fixtures.proxy import proxy_client
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration


async def _send(oai: openai.AsyncOpenAI, messages: list[dict[str, Any]]) -> tuple[str, str]:
    raw = await oai.chat.completions.with_raw_response.create(
        model="fake-model", messages=messages, temperature=0, max_tokens=16)  # type: ignore[arg-type]
    return raw.headers["x-semcache"], raw.headers.get("x-semcache-reason", "")


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=lambda c: c.name)
async def test_conversation_through_the_openai_client(make_cache: Any, conversation: Conversation) -> None:
    fake = FakeUpstream()
    async with proxy_client(make_cache(), fake.app) as client:
        oai = openai.AsyncOpenAI(base_url="http://proxy/v1", api_key="unused", http_client=client)
        assert (await _send(oai, conversation.stored))[0] == "miss"
        outcome, reason = await _send(oai, conversation.asked)
        assert outcome == ("hit" if conversation.hit else "miss"), reason
        assert fake.calls == (1 if conversation.hit else 2)


async def test_tool_results_keep_their_order(make_cache: Any) -> None:
    """Tool results are turns, not retrieval: the same results in another order miss."""
    first, second = ({"role": "tool", "tool_call_id": "a", "content": "Sunny, 21C"},
                     {"role": "tool", "tool_call_id": "b", "content": "Rain, 12C"})
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": i, "type": "function", "function": {"name": "weather", "arguments": "{}"}} for i in "ab"]}

    def chat(results: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
        return [{"role": "user", "content": "Compare the weather in Rome and Oslo."}, call, *results,
                {"role": "user", "content": "Which city is warmer?"}]

    async with proxy_client(make_cache(), FakeUpstream().app) as client:
        oai = openai.AsyncOpenAI(base_url="http://proxy/v1", api_key="unused", http_client=client)
        assert (await _send(oai, chat((first, second))))[0] == "miss"
        assert (await _send(oai, chat((first, second))))[0] == "hit"
        assert (await _send(oai, chat((second, first))))[0] == "miss"
