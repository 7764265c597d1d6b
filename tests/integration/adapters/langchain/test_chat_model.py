"""SemcacheChatModel and SemcacheCache with real chat models: streaming hits and misses, both backings.

Fake chat models come from langchain_core; the remote backing and ChatOpenAI talk to
a real semcache proxy (uvicorn on a loopback port) in front of the project's fake upstream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_core")

import httpx  # noqa: E402
from langchain_core.language_models.fake_chat_models import (  # noqa: E402
    FakeListChatModel,
    FakeListChatModelError,
    FakeMessagesListChatModel,
    ParrotFakeChatModel,
)
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage  # noqa: E402
from langchain_core.outputs import Generation  # noqa: E402
from semcache.adapters.langchain import (  # noqa: E402
    LocalBackend,
    RemoteBackend,
    SemcacheCache,
    SemcacheChatModel,
)

from tests.fixtures.proxy import proxy_server  # noqa: E402
from tests.fixtures.upstream import FakeUpstream  # noqa: E402

pytestmark = pytest.mark.integration

QUESTION = "How do I reverse a list in Python?"
REWORDED = "How can I reverse a Python list?"
ANSWER = "Call reverse() on the list, or use slicing with a step of -1."


@pytest.fixture
def proxy(make_cache: Any) -> Iterator[tuple[str, FakeUpstream]]:
    """A real semcache proxy in front of a fake upstream; yields its base URL and the upstream."""
    upstream = FakeUpstream()
    transport = httpx.ASGITransport(app=upstream.app)
    with proxy_server(make_cache(), "http://upstream", transport=transport) as url:
        yield url, upstream


@pytest.fixture
def proxy_url(proxy: tuple[str, FakeUpstream]) -> str:
    return proxy[0]


@pytest.fixture(params=["local", "remote"])
def backend(request: pytest.FixtureRequest, make_cache: Any) -> Iterator[Any]:
    if request.param == "local":
        yield LocalBackend(make_cache())
        return
    url = request.getfixturevalue("proxy_url")
    remote = RemoteBackend(url, fail_open=False)
    yield remote
    remote.close()


def wrap(backend: Any, responses: list[str] | None = None) -> tuple[SemcacheChatModel, FakeListChatModel]:
    inner = FakeListChatModel(responses=responses or [ANSWER, "second answer", "third answer"])
    return SemcacheChatModel(model=inner, backend=backend), inner


def test_invoke_miss_then_semantic_hit(backend: Any) -> None:
    model, inner = wrap(backend)
    first = model.invoke(QUESTION)
    assert first.content == ANSWER and inner.i == 1
    assert first.response_metadata["semcache"]["cache"] == "miss"
    again = model.invoke(REWORDED)
    assert again.content == ANSWER and inner.i == 1  # the model was not called
    meta = again.response_metadata["semcache"]
    assert meta["cache"] == "hit" and meta["match"] == "semantic" and meta["similarity"] > 0.9
    other = model.invoke("What is the capital of France?")
    assert other.content == "second answer" and inner.i == 2


def test_stream_miss_streams_through_then_hit_replays_as_chunks(backend: Any) -> None:
    model, inner = wrap(backend)
    chunks = list(model.stream(QUESTION))
    assert len(chunks) > 5 and "".join(str(c.content) for c in chunks) == ANSWER
    assert inner.i == 1
    replay = list(model.stream(REWORDED))
    assert inner.i == 1
    assert len(replay) > 5 and "".join(str(c.content) for c in replay) == ANSWER
    assert replay[-1].response_metadata["semcache"]["cache"] == "hit"
    # invoke shares the entry the stream stored
    assert model.invoke(QUESTION).content == ANSWER and inner.i == 1


async def test_astream_and_ainvoke(backend: Any) -> None:
    model, inner = wrap(backend)
    chunks = [c async for c in model.astream(QUESTION)]
    assert "".join(str(c.content) for c in chunks) == ANSWER and inner.i == 1
    replay = [c async for c in model.astream(REWORDED)]
    assert len(replay) > 5 and "".join(str(c.content) for c in replay) == ANSWER and inner.i == 1
    hit = await model.ainvoke(REWORDED)
    assert hit.content == ANSWER and hit.response_metadata["semcache"]["cache"] == "hit"
    miss = await model.ainvoke("What is the capital of France?")
    assert miss.response_metadata["semcache"]["cache"] == "miss" and inner.i == 2


async def test_remote_async_backend(proxy_url: str) -> None:
    remote = RemoteBackend(proxy_url, fail_open=False)
    try:
        model, inner = wrap(remote)
        chunks = [c async for c in model.astream(QUESTION)]
        assert "".join(str(c.content) for c in chunks) == ANSWER and inner.i == 1
        hit = await model.ainvoke(REWORDED)
        assert hit.content == ANSWER and inner.i == 1
        assert hit.response_metadata["semcache"]["cache"] == "hit"
    finally:
        await remote.aclose()


def test_broken_stream_is_not_stored(backend: Any) -> None:
    inner = FakeListChatModel(responses=[ANSWER], error_on_chunk_number=5)
    model = SemcacheChatModel(model=inner, backend=backend)
    with pytest.raises(FakeListChatModelError):
        list(model.stream(QUESTION))
    healthy, counted = wrap(backend)
    assert healthy.invoke(QUESTION).response_metadata["semcache"]["cache"] == "miss" and counted.i == 1


def test_stream_closed_early_is_not_stored(backend: Any) -> None:
    model, inner = wrap(backend)
    stream = model.stream(QUESTION)
    next(stream)
    stream.close()
    assert model.invoke(QUESTION).response_metadata["semcache"]["cache"] == "miss"
    assert inner.i == 2


def test_batch_is_cached(backend: Any) -> None:
    model = SemcacheChatModel(model=ParrotFakeChatModel(), backend=backend)  # echoes the question
    questions = [QUESTION, "What is the capital of France?", "What does the with statement do?"]
    first = model.batch(questions)
    assert [m.content for m in first] == questions
    assert all(m.response_metadata["semcache"]["cache"] == "miss" for m in first)
    again = model.batch([REWORDED, "What is France's capital?", "What is the with statement for?"])
    assert [m.content for m in again] == questions  # the stored answers, to reworded questions
    assert all(m.response_metadata["semcache"]["cache"] == "hit" for m in again)


def test_tool_calls_and_tool_kwargs_bypass(make_cache: Any) -> None:
    backend = LocalBackend(make_cache())
    call = {"name": "search", "args": {"q": "list"}, "id": "c1"}
    inner = FakeMessagesListChatModel(responses=[AIMessage("", tool_calls=[call])] * 3)
    model = SemcacheChatModel(model=inner, backend=backend)
    assert model.invoke(QUESTION).response_metadata["semcache"]["cache"] == "bypass"
    assert model.invoke(QUESTION).tool_calls and inner.i == 2  # called again: nothing was stored
    plain, counted = wrap(backend)
    out = plain.invoke(QUESTION, tools=[{"type": "function", "function": {"name": "f"}}])
    assert out.response_metadata["semcache"]["cache"] == "bypass"
    assert plain.invoke(QUESTION).response_metadata["semcache"]["cache"] == "miss" and counted.i == 2


def test_system_prompt_partitions(backend: Any) -> None:
    model, inner = wrap(backend)
    model.invoke([SystemMessage("Answer in English."), HumanMessage(QUESTION)])
    other = model.invoke([SystemMessage("Answer in French."), HumanMessage(QUESTION)])
    assert other.response_metadata["semcache"]["cache"] == "miss" and inner.i == 2
    same = model.invoke([SystemMessage("Answer in English."), HumanMessage(REWORDED)])
    assert same.response_metadata["semcache"]["cache"] == "hit"


PROMPTS = [QUESTION, "What is the capital of France?", "What does the with statement do?",
           "How do I open a file for reading?", "What is a Python decorator?"]


def test_zero_hits_across_llm_strings_with_positive_control(backend: Any) -> None:
    cache = SemcacheCache(backend, tenant="llm-strings")
    llm_a, llm_b = "model=tiny temperature=0", "model=tiny temperature=0.7"
    for i, prompt in enumerate(PROMPTS):
        cache.update(prompt, llm_a, [Generation(text=f"answer {i}")])
    # positive control: every prompt hits under the llm_string it was stored with
    assert [g[0].text for g in (cache.lookup(p, llm_a) for p in PROMPTS)] == [f"answer {i}" for i in range(5)]
    # the same prompts under another llm_string: zero hits
    assert [cache.lookup(p, llm_b) for p in PROMPTS] == [None] * len(PROMPTS)


def test_zero_hits_across_wrapped_models(backend: Any) -> None:
    model_a, inner_a = wrap(backend, ["from A"])
    model_b, inner_b = wrap(backend, ["from B"])
    assert model_a.invoke(QUESTION).content == "from A"
    assert model_b.invoke(QUESTION).content == "from B"  # different responses -> different llm_string
    assert model_a.invoke(REWORDED).content == "from A"  # positive control
    assert model_a.invoke(QUESTION, stop=["."]).response_metadata["semcache"]["cache"] == "miss"


def test_as_langchain_global_cache(make_cache: Any) -> None:
    cache = SemcacheCache(make_cache(), tenant="global")
    inner = FakeListChatModel(responses=[ANSWER, "other"], cache=cache)
    assert inner.invoke(QUESTION).content == ANSWER
    assert inner.invoke(REWORDED).content == ANSWER and inner.i == 1
    assert cache.stats.semantic_hits == 1 and cache.stats.stores == 1


def test_remote_clear_is_refused(proxy_url: str) -> None:
    cache = SemcacheCache(RemoteBackend(proxy_url), tenant="x")
    with pytest.raises(NotImplementedError, match="invalidate"):
        cache.clear()
    cache.close()


def test_chat_openai_through_the_proxy(proxy: tuple[str, FakeUpstream]) -> None:
    """The simplest remote setup: ChatOpenAI pointed at the proxy, no adapter at all."""
    langchain_openai = pytest.importorskip("langchain_openai")
    url, upstream = proxy
    llm = langchain_openai.ChatOpenAI(base_url=f"{url}/v1", api_key="unused", model="fake-model",
                                      temperature=0, max_tokens=32)
    first = llm.invoke(QUESTION)
    assert first.content.startswith("This is the answer to:") and upstream.calls == 1
    assert llm.invoke(REWORDED).content == first.content and upstream.calls == 1
    streamed = list(llm.stream(REWORDED))
    assert len(streamed) > 1 and "".join(str(c.content) for c in streamed) == first.content
    assert upstream.calls == 1
    llm.invoke("What is the capital of France?")
    assert upstream.calls == 2  # positive control: a different question reaches the model


def _faulty(status: int) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, json={"error": {"message": "x"}}))


def test_remote_backend_fails_open_on_server_errors() -> None:
    model, inner = wrap(RemoteBackend("http://proxy", transport=_faulty(503)))
    assert model.invoke(QUESTION).content == ANSWER
    assert model.invoke(QUESTION).content == "second answer" and inner.i == 2  # no cache, still answers
    strict = RemoteBackend("http://proxy", transport=_faulty(503), fail_open=False)
    with pytest.raises(httpx.HTTPStatusError):
        SemcacheCache(strict).lookup(QUESTION, "llm")


def test_remote_backend_raises_on_refused_requests() -> None:
    cache = SemcacheCache(RemoteBackend("http://proxy", transport=_faulty(400)))
    with pytest.raises(ValueError, match="refused the request \\(400\\)"):
        cache.lookup(QUESTION, "llm")


def test_remote_backend_sends_the_parsed_request() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        seen.append({"path": request.url.path, "auth": request.headers.get("authorization"),
                     **json.loads(request.content)})
        return httpx.Response(200, json={"hit": False, "category": "default", "threshold": 0.86})

    cache = SemcacheCache(RemoteBackend("http://proxy/v1", api_key="sk-test", transport=httpx.MockTransport(handler)))
    from langchain_core.load import dumps

    assert cache.lookup(dumps([SystemMessage("sys"), HumanMessage("q1"), HumanMessage("q2")]), "llm") is None
    body = seen[0]
    assert body["path"] == "/semcache/v1/lookup" and body["auth"] == "Bearer sk-test"
    assert (body["prompt"], body["history"], body["system"]) == ("q2", [{"role": "user", "content": "q1"}], "sys")
    assert cache.lookup("   ", "llm") is None and len(seen) == 1  # blank prompts never leave the process
