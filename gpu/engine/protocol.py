"""OpenAI-compatible request/response models for the engine, plus the ``semcache`` extension.

Requests accept the fields the engine honours, ignore other OpenAI fields and refuse those it
cannot deliver (``n > 1``). The extension ``"semcache": {"chunks": [...], "ratio": 0.15}``
places the chunks between the system message and the user turn (chat) or before the prompt, and
may ask for a ratio, never below the quality gate (``extra_body`` with the ``openai`` client).
Responses carry ``usage`` and a ``semcache`` object (``SemcacheUsage``); streams are server-sent
``*.chunk`` events ending with ``data: [DONE]``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_IGNORE = ConfigDict(extra="ignore")
_FORBID = ConfigDict(extra="forbid")


class SemcacheOptions(BaseModel):
    """The ``semcache`` request extension: chunks to reuse and an optional recompute ratio."""

    model_config = _FORBID
    chunks: list[str] = Field(default_factory=list, max_length=256)
    ratio: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("chunks")
    @classmethod
    def _non_empty(cls, chunks: list[str]) -> list[str]:
        if any(not c.strip() for c in chunks):
            raise ValueError("semcache.chunks must not contain empty strings")
        return chunks


class TextPart(BaseModel):
    model_config = _IGNORE
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One chat message; list content may only hold text parts (they are joined)."""

    model_config = _IGNORE
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = _IGNORE
    include_usage: bool = False


class _Sampling(BaseModel):
    model_config = _IGNORE
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=1, description="only n=1 is served")
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    semcache: SemcacheOptions | None = None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop must be up to 4 non-empty strings")
        return stops

    def chunks(self) -> list[str]:
        return list(self.semcache.chunks) if self.semcache else []

    def ratio(self) -> float | None:
        return self.semcache.ratio if self.semcache else None

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions`` body."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def token_limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class CompletionRequest(_Sampling):
    """``POST /v1/completions`` body (a single string prompt)."""

    prompt: str = Field(min_length=1)
    max_tokens: int | None = Field(default=16, ge=1)

    def token_limit(self, default: int) -> int:
        return self.max_tokens or default


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class SemcacheUsage(BaseModel):
    """How the prompt was prefilled.

    - ``chunk_tokens``: prompt tokens inside chunks (explicit or detected);
    - ``reused_tokens``: chunk tokens whose KV came from the chunk store;
    - ``encoded_tokens``: chunk tokens whose KV this request computed (alone) and stored;
    - ``recomputed_tokens``: tokens run through every layer: the non-chunk tokens plus the
      ``ratio`` share of chunk tokens recomputed after the check layer;
    - ``ratio``: the recompute ratio used; ``ttft_ms``: time to the first token, queueing included.
    """

    chunks: int
    chunk_tokens: int
    reused_tokens: int
    encoded_tokens: int
    recomputed_tokens: int
    ratio: float
    ttft_ms: float


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatCompletionMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    semcache: SemcacheUsage


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    semcache: SemcacheUsage


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: ChatDelta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    semcache: SemcacheUsage | None = None


class CompletionChunkChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class CompletionChunk(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChunkChoice]
    usage: Usage | None = None
    semcache: SemcacheUsage | None = None


def new_id(prefix: str) -> str:
    """An OpenAI-style object id, e.g. ``chatcmpl-<hex>``."""
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def sse(payload: BaseModel | str) -> bytes:
    """One server-sent event: ``data: <json>\\n\\n`` (or ``data: [DONE]``)."""
    if isinstance(payload, str):
        body = payload
    else:  # omit absent optional parts, but keep ``finish_reason: null`` as OpenAI sends it
        data = payload.model_dump(exclude_none=True)
        for choice in data.get("choices", ()):
            choice.setdefault("finish_reason", None)
        body = json.dumps(data, separators=(",", ":"))
    return f"data: {body}\n\n".encode()


DONE = sse("[DONE]")


def error_body(message: str, type_: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    """OpenAI's error format."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def parse_sse(raw: bytes | str) -> list[dict[str, Any] | str]:
    """Decode an SSE body into its JSON payloads (``"[DONE]"`` kept as a string); for tests/tools."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    out: list[dict[str, Any] | str] = []
    for block in text.split("\n\n"):
        block = block.strip()
        if not block:
            continue
        if not block.startswith("data: "):
            raise ValueError(f"not an SSE data line: {block[:60]!r}")
        data = block[len("data: "):]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out
