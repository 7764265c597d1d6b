"""SSE replay and accumulation: a replayed answer parses back to the stored one."""

from __future__ import annotations

import json

import pytest
from semcache.adapters.proxy.streaming import StreamAccumulator, entry_comment, replay, storable

pytestmark = pytest.mark.unit

CHAT = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris is the capital of France."},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}
TEXT = {"id": "t1", "object": "text_completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "text": " there was a fox", "logprobs": None, "finish_reason": "length"}],
        "usage": None}


def lines(chunks: list[bytes]) -> list[str]:
    return b"".join(chunks).decode().split("\n")


@pytest.mark.parametrize(("endpoint", "response"), [("chat", CHAT), ("completions", TEXT)])
@pytest.mark.parametrize("include_usage", [False, True])
def test_replay_round_trips(endpoint: str, response: dict, include_usage: bool) -> None:
    chunks = list(replay(endpoint, response, include_usage=include_usage))  # type: ignore[arg-type]
    assert chunks[-1] == b"data: [DONE]\n\n"
    acc = StreamAccumulator(endpoint)  # type: ignore[arg-type]
    for line in lines(chunks):
        acc.feed(line)
    rebuilt = acc.response()
    assert rebuilt is not None
    assert rebuilt["choices"] == response["choices"]
    assert (rebuilt["usage"] == response["usage"]) if include_usage else rebuilt["usage"] is None
    events = [json.loads(line[6:]) for line in lines(chunks) if line.startswith("data: {")]
    assert len(events) > 3 if endpoint == "chat" else len(events) > 1
    assert all(("usage" in e) == include_usage for e in events)


def test_tool_calls_accumulate() -> None:
    acc = StreamAccumulator("chat")
    for delta in ({"role": "assistant"},
                  {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "get_", "arguments": "{\"a\""}}]},
                  {"tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": ": 1}"}}]}):
        acc.feed("data: " + json.dumps({"id": "x", "choices": [{"index": 0, "delta": delta}]}))
    acc.feed("data: " + json.dumps({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}))
    acc.feed("data: [DONE]")
    response = acc.response()
    assert response is not None
    call = response["choices"][0]["message"]["tool_calls"][0]
    assert call == {"type": "function", "id": "call_1", "function": {"name": "get_weather", "arguments": "{\"a\": 1}"}}
    assert not storable(response)  # a tool-call turn is not a final answer


@pytest.mark.parametrize("tail", [["data: [DONE]"], []])
def test_incomplete_or_erroneous_streams_are_not_storable(tail: list[str]) -> None:
    acc = StreamAccumulator("chat")
    acc.feed("data: " + json.dumps({"id": "x", "choices": [{"index": 0, "delta": {"content": "Par"}}]}))
    acc.feed("data: " + json.dumps({"error": {"message": "boom"}}))
    for line in tail:
        acc.feed(line)
    assert acc.response() is None


def test_stream_without_finish_reason_is_not_storable() -> None:
    acc = StreamAccumulator("chat")
    acc.feed("data: " + json.dumps({"id": "x", "choices": [{"index": 0, "delta": {"content": "Par"}}]}))
    acc.feed("data: [DONE]")
    response = acc.response()
    assert response is not None and not storable(response)


def test_storable() -> None:
    assert storable(CHAT) and storable(TEXT)
    assert not storable({"error": {"message": "x"}})
    assert not storable({"choices": []})
    assert not storable({"choices": [{"finish_reason": "abort"}]})


def test_entry_comment_is_an_sse_comment() -> None:
    assert entry_comment(42) == b": x-semcache-entry 42\n\n"
