"""``SemcacheChatModel``: wrap any LangChain chat model so that invoke, batch *and* stream are cached.

LangChain's own cache path is skipped by ``stream()``; this wrapper looks up first on
every path, replays a hit as a stream of chunks, and stores a streamed miss only once it
completed. Calls with tools, functions, ``tool_choice`` or ``response_format``, answers
with tool calls or another finish reason than ``stop``/``length``, and conversations
without a user text turn are bypassed."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from pydantic import ConfigDict, field_validator
from semcache.adapters.langchain.cache import as_backend
from semcache.adapters.langchain.codec import decode_generations, encode_generations
from semcache.adapters.langchain.parsing import (
    build_request,
    scope_for,
    split_turns,
    turns_from_messages,
)

from semcache.types import CacheRequest, Hit

BYPASS_KWARGS = ("tools", "functions", "tool_choice", "response_format", "ls_structured_output_format")
UNCACHEABLE_FINISH = ("tool_calls", "function_call", "content_filter", "error")
_WORD = re.compile(r"\s*\S+\s*|\s+")


def replay_pieces(text: str) -> list[str]:
    """``text`` cut into word-sized pieces whose concatenation is ``text``."""
    return _WORD.findall(text) if text else []


def storable(message: BaseMessage) -> bool:
    """Whether a finished answer may be cached: text, no tool calls, a normal finish."""
    if not isinstance(message, AIMessage):
        return False
    if message.tool_calls or message.invalid_tool_calls:
        return False
    extra = message.additional_kwargs or {}
    if extra.get("tool_calls") or extra.get("function_call"):
        return False
    if (message.response_metadata or {}).get("finish_reason") in UNCACHEABLE_FINISH:
        return False
    return bool(message.content)


class SemcacheChatModel(BaseChatModel):
    """A chat model that answers from semcache when it can and from ``model`` otherwise.

    ``backend`` is a ``LocalBackend``/``RemoteBackend``, a ``SemanticCache`` or a
    store URL. Every answer carries ``response_metadata["semcache"]``:
    ``{"cache": "hit"|"miss"|"bypass", ...}`` with the match kind, similarity,
    entry id and the latency the hit saved.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: BaseChatModel
    backend: Any
    tenant: str = "langchain"
    user: str | None = None
    threshold: float | None = None
    category: str | None = None
    cache: Any = False  # the wrapper does its own caching; LangChain's cache path would double it

    @field_validator("backend", mode="before")
    @classmethod
    def _coerce_backend(cls, value: Any) -> Any:
        return as_backend(value)

    @field_validator("tenant")
    @classmethod
    def _check_tenant(cls, value: str) -> str:
        if not value:
            raise ValueError("tenant must be a non-empty string")
        return value

    @property
    def _llm_type(self) -> str:
        return f"semcache-{self.model._llm_type}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"wrapped": self.model._llm_type, "tenant": self.tenant}

    # ------------------------------------------------------------ delegation
    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        """Tool calling bypasses the cache: the wrapped model's own ``bind_tools``."""
        return self.model.bind_tools(tools, **kwargs)

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Runnable[LanguageModelInput, Any]:
        """Structured output bypasses the cache: the wrapped model's own runnable."""
        return self.model.with_structured_output(schema, **kwargs)

    # ---------------------------------------------------------------- keying
    def request_for(self, messages: Sequence[BaseMessage], stop: list[str] | None = None,
                    **kwargs: Any) -> CacheRequest | None:
        """The cache request for a call, or None when the call bypasses the cache."""
        if any(kwargs.get(k) for k in BYPASS_KWARGS):
            return None
        parsed = split_turns(turns_from_messages(messages))
        if parsed.prompt is None:
            return None
        # The same key LangChain's own cache uses for the wrapped model (model class + params + call kwargs).
        llm_string = self.model._get_llm_string(stop=stop, **kwargs)
        return build_request(parsed, scope_for(llm_string, tenant=self.tenant, user=self.user),
                             category=self.category, threshold=self.threshold)

    @staticmethod
    def _hit_message(hit: Hit | None) -> AIMessage | None:
        if hit is None:
            return None
        generations = decode_generations(hit.response)
        if not generations or not isinstance(generations[0], ChatGeneration):
            return None
        message = generations[0].message
        if not isinstance(message, AIMessage):
            return None
        saved = hit.response.get("latency_ms") if isinstance(hit.response, dict) else None
        meta = {"cache": "hit", "match": hit.match, "similarity": round(hit.similarity, 4),
                "entry_id": hit.entry_id, "cached_prompt": hit.cached_prompt, "saved_ms": saved}
        return message.model_copy(update={"response_metadata": {**message.response_metadata, "semcache": meta}})

    @staticmethod
    def _prepare(request: CacheRequest | None, message: BaseMessage,
                 latency_ms: float) -> tuple[dict[str, Any], int] | None:
        """The payload and token count to store, or None when this answer must not be cached."""
        if request is None or not isinstance(message, AIMessage) or not storable(message):
            return None
        clean = message.model_copy(update={"id": None})
        payload = encode_generations([ChatGeneration(message=clean)])
        payload["latency_ms"] = round(latency_ms, 3)
        tokens = message.usage_metadata["total_tokens"] if message.usage_metadata else 0
        return payload, int(tokens or 0)

    @staticmethod
    def _tag(message: AIMessage, state: str, entry_id: int | None = None) -> AIMessage:
        meta = {"cache": state, "entry_id": entry_id}
        return message.model_copy(update={"response_metadata": {**message.response_metadata, "semcache": meta}})

    @staticmethod
    def _replay(message: AIMessage) -> Iterator[ChatGenerationChunk]:
        content = message.content
        pieces: list[Any] = replay_pieces(content) if isinstance(content, str) else [content]
        for piece in pieces:
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="" if isinstance(content, str) else [], response_metadata=message.response_metadata,
            usage_metadata=message.usage_metadata, additional_kwargs=message.additional_kwargs,
            chunk_position="last"))

    # ------------------------------------------------------------------ sync
    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        request = self.request_for(messages, stop, **kwargs)
        if request is not None:
            cached = self._hit_message(self.backend.lookup(request))
            if cached is not None:
                return _result(cached)
        start = time.perf_counter()
        answer = _as_ai(self.model.invoke(messages, stop=stop, **kwargs))
        prepared = self._prepare(request, answer, (time.perf_counter() - start) * 1000)
        if request is None or prepared is None:
            return _result(self._tag(answer, "bypass"))
        payload, tokens = prepared
        entry_id = self.backend.store(request, payload, tokens=tokens, latency_ms=payload["latency_ms"])
        return _result(self._tag(answer, "miss", entry_id))

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        request = self.request_for(messages, stop, **kwargs)
        if request is not None:
            cached = self._hit_message(self.backend.lookup(request))
            if cached is not None:
                yield from self._replay(cached)
                return
        start = time.perf_counter()
        seen: list[AIMessageChunk] = []
        for chunk in self.model.stream(messages, stop=stop, **kwargs):
            seen.append(chunk)
            yield ChatGenerationChunk(message=chunk)
        # Only a stream that ran to its end gets here (an error or an early close skips the store).
        prepared = None if not seen else self._prepare(
            request, _merge(seen), (time.perf_counter() - start) * 1000)
        if request is not None and prepared is not None:
            payload, tokens = prepared
            self.backend.store(request, payload, tokens=tokens, latency_ms=payload["latency_ms"])

    # ----------------------------------------------------------------- async
    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        request = self.request_for(messages, stop, **kwargs)
        if request is not None:
            cached = self._hit_message(await self.backend.alookup(request))
            if cached is not None:
                return _result(cached)
        start = time.perf_counter()
        answer = _as_ai(await self.model.ainvoke(messages, stop=stop, **kwargs))
        prepared = self._prepare(request, answer, (time.perf_counter() - start) * 1000)
        if request is None or prepared is None:
            return _result(self._tag(answer, "bypass"))
        payload, tokens = prepared
        entry_id = await self.backend.astore(request, payload, tokens=tokens, latency_ms=payload["latency_ms"])
        return _result(self._tag(answer, "miss", entry_id))

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        request = self.request_for(messages, stop, **kwargs)
        if request is not None:
            cached = self._hit_message(await self.backend.alookup(request))
            if cached is not None:
                for piece in self._replay(cached):
                    yield piece
                return
        start = time.perf_counter()
        seen: list[AIMessageChunk] = []
        async for chunk in self.model.astream(messages, stop=stop, **kwargs):
            seen.append(chunk)
            yield ChatGenerationChunk(message=chunk)
        prepared = None if not seen else self._prepare(
            request, _merge(seen), (time.perf_counter() - start) * 1000)
        if request is not None and prepared is not None:
            payload, tokens = prepared
            await self.backend.astore(request, payload, tokens=tokens, latency_ms=payload["latency_ms"])


def _merge(chunks: list[AIMessageChunk]) -> BaseMessage:
    """One message from a finished stream (a single merge: pairwise ``+`` is quadratic)."""
    return message_chunk_to_message(add_ai_message_chunks(chunks[0], *chunks[1:]))


def _as_ai(message: BaseMessage) -> AIMessage:
    return message if isinstance(message, AIMessage) else AIMessage(content=message.content)


def _result(message: AIMessage) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=message)])
