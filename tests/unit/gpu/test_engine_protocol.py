"""The engine's OpenAI request/response models, SSE framing, sampling and stop-string handling."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import ValidationError
from semcache.gpu.engine import protocol as p
from semcache.gpu.engine.decoding import SamplingParams, TextStream, next_token

pytestmark = pytest.mark.unit

MSG = [{"role": "user", "content": "hi"}]


def test_chat_request_reads_the_semcache_extension() -> None:
    req = p.ChatCompletionRequest.model_validate(
        {"model": "m", "messages": MSG, "semcache": {"chunks": ["a", "b"], "ratio": 0.2},
         "user": "ignored-field"})
    assert req.chunks() == ["a", "b"] and req.ratio() == 0.2
    assert p.ChatCompletionRequest(model="m", messages=MSG).chunks() == []  # type: ignore[arg-type]


@pytest.mark.parametrize("semcache", [
    {"chunks": ["ok", "  "]},  # blank chunk
    {"chunks": ["a"], "ratio": 1.5},  # ratio out of range
    {"chunks": ["a"], "unknown": 1},  # typo in the extension is refused, not ignored
], ids=["blank-chunk", "ratio-range", "unknown-key"])
def test_bad_extension_is_refused(semcache: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        p.ChatCompletionRequest.model_validate({"model": "m", "messages": MSG, "semcache": semcache})


@pytest.mark.parametrize("body", [
    {"model": "m", "messages": []},
    {"model": "m", "messages": MSG, "n": 2},
    {"model": "m", "messages": MSG, "max_tokens": 0},
    {"model": "m", "messages": MSG, "temperature": 3},
    {"model": "m", "messages": [{"role": "tool", "content": "x"}]},
], ids=["no-messages", "n2", "max0", "temp3", "tool-role"])
def test_invalid_chat_requests(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        p.ChatCompletionRequest.model_validate(body)


def test_token_limit_precedence_and_text_parts() -> None:
    req = p.ChatCompletionRequest.model_validate(
        {"model": "m", "max_tokens": 9, "max_completion_tokens": 4,
         "messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                   {"type": "text", "text": "b"}]}]})
    assert req.token_limit(100) == 4
    assert req.messages[0].text() == "ab"
    assert p.ChatCompletionRequest.model_validate({"model": "m", "messages": MSG}).token_limit(7) == 7
    assert p.CompletionRequest(model="m", prompt="x").token_limit(99) == 16  # OpenAI's default


def test_stop_list() -> None:
    assert p.CompletionRequest(model="m", prompt="x", stop="\n").stop_list() == ["\n"]
    assert p.CompletionRequest(model="m", prompt="x").stop_list() == []
    with pytest.raises(ValueError, match="stop"):
        p.CompletionRequest(model="m", prompt="x", stop=["a", "b", "c", "d", "e"]).stop_list()


def test_sse_roundtrip_keeps_null_finish_reason() -> None:
    chunk = p.ChatCompletionChunk(id="c1", created=1, model="m",
                                  choices=[p.ChatChunkChoice(delta=p.ChatDelta(content="hi"))])
    raw = p.sse(chunk) + p.DONE
    assert raw.endswith(b"data: [DONE]\n\n")
    events = p.parse_sse(raw)
    assert events[-1] == "[DONE]"
    first = events[0]
    assert isinstance(first, dict)
    assert first["choices"][0] == {"index": 0, "delta": {"content": "hi"}, "finish_reason": None}
    assert "usage" not in first and "semcache" not in first
    with pytest.raises(ValueError):
        p.parse_sse("event: x\n\n")


def test_error_body_is_openai_shaped() -> None:
    assert p.error_body("bad", code="c") == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": None, "code": "c"}}


@pytest.mark.parametrize("kwargs", [
    {"max_tokens": 0}, {"temperature": -0.1}, {"top_p": 0.0}, {"stop": ("",)}, {"stop": ("a",) * 5},
], ids=["max0", "temp", "top_p", "empty-stop", "five-stops"])
def test_sampling_params_validate(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SamplingParams(**kwargs)


def test_greedy_and_seeded_sampling() -> None:
    logits = torch.tensor([0.0, 3.0, 1.0, 2.9])
    assert next_token(logits, SamplingParams(temperature=0.0), None) == 1
    params = SamplingParams(temperature=1.0, seed=5)
    a = [next_token(logits, params, g) for g in [params.generator(torch.device("cpu"))] * 20]
    b = [next_token(logits, params, g) for g in [params.generator(torch.device("cpu"))] * 20]
    assert a == b and len(set(a)) > 1  # reproducible, and really sampling
    nucleus = SamplingParams(temperature=1.0, top_p=0.5, seed=1)
    gen = nucleus.generator(torch.device("cpu"))
    assert {next_token(logits, nucleus, gen) for _ in range(30)} <= {1, 3}


class _CharTokenizer:
    """Token id = one character (0 = a special token decoded to nothing)."""

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids if i != 0)


def _run(text: str, stop: tuple[str, ...]) -> tuple[list[str], TextStream]:
    ts = TextStream(_CharTokenizer(), stop)
    deltas = []
    for ch in text:
        deltas.append(ts.push(ord(ch)))
        if ts.stopped:
            break
    if not ts.stopped:
        deltas.append(ts.flush())
    return [d for d in deltas if d], ts


def test_text_stream_cuts_at_stop_string_across_tokens() -> None:
    deltas, ts = _run("hello END world", ("END",))
    assert "".join(deltas) == "hello " == ts.text and ts.stopped


def test_text_stream_earliest_stop_wins_and_no_stop_flushes_everything() -> None:
    deltas, ts = _run("abcXYdef", ("def", "XY"))
    assert "".join(deltas) == "abc"
    deltas, ts = _run("abcdef", ("zz",))
    assert "".join(deltas) == "abcdef" and not ts.stopped
