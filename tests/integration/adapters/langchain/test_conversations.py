"""The issue's four conversations through ``SemcacheChatModel``, with ``AIMessage`` turns, on a
local cache and through a real proxy's cache API (``RemoteBackend``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_core")

import httpx  # noqa: E402
from langchain_core.language_models.fake_chat_models import FakeListChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage  # noqa: E402
from semcache.adapters.langchain import LocalBackend, RemoteBackend, SemcacheChatModel  # noqa: E402

from tests.fixtures.conversations import CONVERSATIONS, Conversation  # noqa: E402
from tests.fixtures.proxy import proxy_server  # noqa: E402
from tests.fixtures.upstream import FakeUpstream  # noqa: E402

pytestmark = pytest.mark.integration


def messages(chat: list[dict[str, Any]]) -> list[BaseMessage]:
    return [HumanMessage(m["content"]) if m["role"] == "user" else AIMessage(m["content"]) for m in chat]


@pytest.fixture(params=["local", "remote"])
def backend(request: pytest.FixtureRequest, make_cache: Any) -> Iterator[Any]:
    if request.param == "local":
        yield LocalBackend(make_cache())
        return
    transport = httpx.ASGITransport(app=FakeUpstream().app)
    with proxy_server(make_cache(), "http://upstream", transport=transport) as url:
        remote = RemoteBackend(url, fail_open=False)
        yield remote
        remote.close()


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=lambda c: c.name)
def test_conversation_through_the_chat_model(backend: Any, conversation: Conversation) -> None:
    inner = FakeListChatModel(responses=["first answer", "second answer"])
    model = SemcacheChatModel(model=inner, backend=backend)
    assert model.invoke(messages(conversation.stored)).response_metadata["semcache"]["cache"] == "miss"
    asked = model.invoke(messages(conversation.asked))
    assert asked.response_metadata["semcache"]["cache"] == ("hit" if conversation.hit else "miss")
    assert asked.content == ("first answer" if conversation.hit else "second answer")
