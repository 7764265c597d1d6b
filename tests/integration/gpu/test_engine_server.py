"""The engine's OpenAI-compatible server with real SmolLM2 on CPU, driven by the real openai client.

The server runs under uvicorn on a free 127.0.0.1 port in a thread; the engine carries a quality
gate at r = 0.15, so requests below it must be refused.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from semcache.gpu.blend import blend_design, default_check_layer

pytestmark = pytest.mark.integration

SYSTEM = "Answer with a few words."
QUESTION = "Which planet is described above as the largest?"
# three short documents used only by the reuse test (fresh chunk KV on the first request)
CHUNKS = [
    "Jupiter is the largest planet of the solar system; it is a gas giant with a great red spot.",
    "Mars is a small rocky planet with two moons, Phobos and Deimos, and a thin atmosphere.",
    "Venus has a thick atmosphere of carbon dioxide and is the hottest planet of the system.",
]
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Name a colour."}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def engine() -> Any:
    from semcache.gpu.engine.engine import Engine
    from semcache.gpu.engine.quality_gate import QualityGate
    from semcache.gpu.model.loader import load_smollm2

    loaded = load_smollm2()
    gate = QualityGate(model="smollm2", ratio=0.15, floor=0.95, met=True,
                       design=blend_design(default_check_layer("query"), "query", "kv", 0))
    return Engine(loaded, gate=gate)


@pytest.fixture(scope="module")
def base_url(engine: Any) -> Iterator[str]:
    import uvicorn
    from semcache.gpu.engine.server import create_engine_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_engine_app(engine), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("engine server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def client(base_url: str) -> Any:
    import openai

    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)


def test_chat_non_stream_matches_engine(client: Any, engine: Any) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="smollm2", messages=MESSAGES, max_tokens=6, temperature=0)
    assert float(raw.headers["x-semcache-ttft-ms"]) > 0
    resp = raw.parse()
    direct = engine.generate(MESSAGES, max_tokens=6)
    assert resp.choices[0].message.content == direct.text
    assert resp.choices[0].finish_reason == direct.finish_reason
    assert resp.usage.prompt_tokens == len(engine.layout(MESSAGES).token_ids)
    assert resp.usage.completion_tokens == len(direct.token_ids)
    extra = resp.to_dict()["semcache"]
    assert extra["chunks"] == 0 and extra["recomputed_tokens"] == resp.usage.prompt_tokens


def test_chat_stream_equals_non_stream(client: Any) -> None:
    kwargs: dict[str, Any] = dict(model="smollm2", messages=MESSAGES, max_tokens=6, temperature=0)
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    events = list(client.chat.completions.create(
        **kwargs, stream=True, stream_options={"include_usage": True}))
    text = "".join(e.choices[0].delta.content or "" for e in events if e.choices)
    assert text == whole
    finishes = [e.choices[0].finish_reason for e in events if e.choices and e.choices[0].finish_reason]
    assert finishes in (["length"], ["stop"])
    assert events[-1].usage is not None and events[-1].usage.completion_tokens >= 1


def test_completions_match_plain_greedy(client: Any, engine: Any) -> None:
    prompt = "The three primary colours are"
    resp = client.completions.create(model="smollm2", prompt=prompt, max_tokens=5, temperature=0)
    ids = engine.tokenizer.encode(prompt, add_special_tokens=False)
    logits, kv = engine.runner.prefill(ids)
    greedy = engine.runner.greedy(logits, kv, 5, stop_ids=tuple(engine.stop_ids))
    greedy = [t for t in greedy if t not in engine.stop_ids]
    assert resp.choices[0].text == engine.tokenizer.decode(greedy, skip_special_tokens=True)
    assert resp.usage.prompt_tokens == len(ids)
    streamed = client.completions.create(model="smollm2", prompt=prompt, max_tokens=5,
                                         temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == resp.choices[0].text


def test_chunks_reused_in_another_order(client: Any) -> None:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]

    def ask(chunks: list[str]) -> dict[str, Any]:
        resp = client.chat.completions.create(
            model="smollm2", messages=messages, max_tokens=4, temperature=0,
            extra_body={"semcache": {"chunks": chunks}})
        assert resp.choices[0].message.content
        return resp.to_dict()

    first = ask(CHUNKS)["semcache"]
    assert first["chunks"] == 3 and first["chunk_tokens"] > 0
    assert first["reused_tokens"] == 0 and first["encoded_tokens"] == first["chunk_tokens"]
    second_body = ask([CHUNKS[2], CHUNKS[0], CHUNKS[1]])
    second = second_body["semcache"]
    assert second["reused_tokens"] == second["chunk_tokens"] == first["chunk_tokens"] > 0
    assert second["encoded_tokens"] == 0
    assert second["recomputed_tokens"] < second_body["usage"]["prompt_tokens"]
    assert second["ratio"] == 0.15


def test_ratio_below_gate_is_refused(client: Any) -> None:
    import openai

    with pytest.raises(openai.BadRequestError, match="quality gate"):
        client.chat.completions.create(
            model="smollm2", messages=MESSAGES, max_tokens=2,
            extra_body={"semcache": {"chunks": CHUNKS[:1], "ratio": 0.05}})
    resp = client.chat.completions.create(
        model="smollm2", messages=MESSAGES, max_tokens=2, temperature=0,
        extra_body={"semcache": {"chunks": CHUNKS[:1], "ratio": 0.5}})
    assert resp.to_dict()["semcache"]["ratio"] == 0.5


def test_bad_requests_use_openai_errors(client: Any) -> None:
    import openai

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=MESSAGES, max_tokens=2)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="smollm2", messages=MESSAGES, max_tokens=2, n=2)
    with pytest.raises(openai.BadRequestError, match="chunks"):
        client.chat.completions.create(model="smollm2", messages=MESSAGES, max_tokens=2,
                                       extra_body={"semcache": {"chunks": [" "]}})


def test_chunks_sit_between_system_message_and_user_turn(engine: Any) -> None:
    tok = engine.tokenizer
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    layout = engine.layout(messages, chunks=CHUNKS)
    chunk_segs = [s for s in layout.segments if s.chunk_id is not None]
    assert [tok.decode(list(s.token_ids)) for s in chunk_segs] == [c + "\n\n" for c in CHUNKS]
    text = tok.decode(layout.token_ids)
    marks = [text.index(x) for x in (SYSTEM, *CHUNKS, "<|im_end|>", QUESTION, "<|im_start|>assistant")]
    assert marks == sorted(marks)
    # moved chunks keep their ids (same token ids), so their KV can be reused anywhere
    moved = engine.layout(messages, chunks=CHUNKS[::-1])
    assert moved.chunk_ids == layout.chunk_ids[::-1]
    # without a system message the chunks form one, ahead of the user turn
    alone = tok.decode(engine.layout(messages[1:], chunks=CHUNKS[:1]).token_ids)
    assert alone.startswith("<|im_start|>system\n" + CHUNKS[0]) and QUESTION in alone


def test_closing_a_stream_early_releases_the_engine(engine: Any) -> None:
    stream = engine.stream(prompt="Count with me: one, two, three,", max_tokens=8, temperature=0)
    first = next(iter(stream))
    assert first and engine._lock.locked()  # the lock is held while the stream runs
    stream.close()
    assert not engine._lock.locked()
    assert stream.finish_reason is None  # it never finished
    assert engine.generate(prompt="Hi", max_tokens=1).token_ids is not None
