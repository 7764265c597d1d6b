"""Server-sent events: replaying stored answers and accumulating streamed ones.

A hit for ``stream: true`` is replayed as a well-formed OpenAI stream. A streamed miss
is forwarded line by line and accumulated into the equivalent non-streaming response,
stored only when the stream completed normally; the stored entry's id follows as an
SSE comment before ``[DONE]`` (``: x-semcache-entry 42``), which SSE clients ignore."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from semcache.adapters.proxy.parse import Endpoint
from starlette.responses import StreamingResponse
from starlette.types import Receive, Send
from starlette.types import Scope as ASGIScope

DONE = b"data: [DONE]\n\n"
STORABLE_FINISH = frozenset({"stop", "length"})
_WORDS = re.compile(r"\S+\s*|\s+")
WORDS_PER_CHUNK = 4


def sse(payload: Any) -> bytes:
    """One SSE data event."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def entry_comment(entry_id: int) -> bytes:
    """The SSE comment that carries the stored entry id of a streamed miss."""
    return f": x-semcache-entry {entry_id}\n\n".encode()


def storable(response: Any) -> bool:
    """True for a complete, successful completion: every choice ended with stop or length."""
    if not isinstance(response, dict) or "error" in response:
        return False
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    return all(isinstance(c, dict) and c.get("finish_reason") in STORABLE_FINISH for c in choices)


def _pieces(text: str) -> Iterator[str]:
    words = _WORDS.findall(text)
    for i in range(0, len(words), WORDS_PER_CHUNK):
        yield "".join(words[i:i + WORDS_PER_CHUNK])


def replay(endpoint: Endpoint, response: dict[str, Any], *, include_usage: bool) -> Iterator[bytes]:
    """A stored (non-streaming) response as a complete SSE stream ending in ``[DONE]``."""
    base = {
        "id": response.get("id", "cmpl-semcache"),
        "object": "chat.completion.chunk" if endpoint == "chat" else "text_completion",
        "created": response.get("created", int(time.time())),
        "model": response.get("model", ""),
    }
    if response.get("system_fingerprint") is not None:
        base["system_fingerprint"] = response["system_fingerprint"]
    extra = {"usage": None} if include_usage else {}

    def chunk(choice: dict[str, Any]) -> bytes:
        return sse({**base, "choices": [choice], **extra})

    for choice in response.get("choices", []):
        index = choice.get("index", 0)
        if endpoint == "chat":
            message = choice.get("message") or {}
            yield chunk({"index": index, "delta": {"role": message.get("role", "assistant"), "content": ""},
                         "logprobs": None, "finish_reason": None})
            for piece in _pieces(message.get("content") or ""):
                yield chunk({"index": index, "delta": {"content": piece}, "logprobs": None, "finish_reason": None})
            for i, call in enumerate(message.get("tool_calls") or []):
                yield chunk({"index": index, "delta": {"tool_calls": [{"index": i, **call}]},
                             "logprobs": None, "finish_reason": None})
            yield chunk({"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason")})
        else:
            for piece in _pieces(choice.get("text") or ""):
                yield chunk({"index": index, "text": piece, "logprobs": None, "finish_reason": None})
            yield chunk({"index": index, "text": "", "logprobs": None, "finish_reason": choice.get("finish_reason")})
    if include_usage:
        yield sse({**base, "choices": [], "usage": response.get("usage")})
    yield DONE


@dataclass
class _Choice:
    role: str = "assistant"
    text: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None


class StreamAccumulator:
    """Rebuilds the non-streaming response from the SSE lines of a streamed one."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.meta: dict[str, Any] = {}
        self.choices: dict[int, _Choice] = {}
        self.usage: Any = None
        self.done = False
        self.error: str | None = None

    def feed(self, line: str) -> None:
        """Take one SSE line (comments, blank lines and event names are ignored)."""
        if not line.startswith("data:"):
            return
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            self.error = "malformed chunk"
            return
        if not isinstance(chunk, dict):
            self.error = "malformed chunk"
            return
        if "error" in chunk or chunk.get("object") == "error":
            self.error = str(chunk.get("error") or chunk.get("message") or "error event")
            return
        for key in ("id", "created", "model", "system_fingerprint"):
            if key in chunk and key not in self.meta:
                self.meta[key] = chunk[key]
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for raw in chunk.get("choices") or []:
            self._choice(raw)

    def _choice(self, raw: dict[str, Any]) -> None:
        choice = self.choices.setdefault(int(raw.get("index", 0)), _Choice())
        if self.endpoint == "chat":
            delta = raw.get("delta") or {}
            if delta.get("role"):
                choice.role = delta["role"]
            if delta.get("content"):
                choice.text.append(delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = choice.tool_calls.setdefault(int(call.get("index", 0)),
                                                    {"type": "function", "function": {"name": "", "arguments": ""}})
                if call.get("id"):
                    slot["id"] = call["id"]
                fn = call.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
        elif raw.get("text"):
            choice.text.append(raw["text"])
        if raw.get("finish_reason"):
            choice.finish_reason = raw["finish_reason"]

    def response(self) -> dict[str, Any] | None:
        """The equivalent complete response, or None if the stream did not complete normally.

        A complete response is not necessarily storable: check it with :func:`storable`.
        """
        if not self.done or self.error is not None or not self.choices:
            return None
        choices = []
        for index in sorted(self.choices):
            c = self.choices[index]
            if self.endpoint == "chat":
                message: dict[str, Any] = {"role": c.role, "content": "".join(c.text)}
                if c.tool_calls:
                    message["tool_calls"] = [c.tool_calls[i] for i in sorted(c.tool_calls)]
                choices.append({"index": index, "message": message, "logprobs": None,
                                "finish_reason": c.finish_reason})
            else:
                choices.append({"index": index, "text": "".join(c.text), "logprobs": None,
                                "finish_reason": c.finish_reason})
        response = {
            "id": self.meta.get("id", "cmpl-semcache"),
            "object": "chat.completion" if self.endpoint == "chat" else "text_completion",
            "created": self.meta.get("created", int(time.time())),
            "model": self.meta.get("model", ""),
            "choices": choices,
            "usage": self.usage,
        }
        if self.meta.get("system_fingerprint") is not None:
            response["system_fingerprint"] = self.meta["system_fingerprint"]
        return response


class ManagedStream(StreamingResponse):
    """A streaming response whose cleanup runs even if the client leaves before the first byte."""

    def __init__(self, content: AsyncIterator[bytes], cleanup: Callable[[], Awaitable[None]], **kw: Any) -> None:
        super().__init__(content, **kw)
        self._cleanup = cleanup

    async def __call__(self, asgi_scope: ASGIScope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(asgi_scope, receive, send)
        finally:
            await self._cleanup()
