"""Request parsing: from an OpenAI request body to a :class:`~semcache.types.CacheRequest`.

The partition takes the tenant (from the API key), the model, the user (when
``scope_by_user``) and the generation parameters (``generation_params``: every field but
the non-semantic ones, so an unknown parameter partitions rather than leaks). System
messages and ``documents`` (a set) are exact context, and so are tool calls and results, in
their order; the last user turn is the prompt, and the earlier user, assistant and tool turns
the history. A request that cannot be cached safely (``n > 1``,
sampling, a last turn not the user's, non-text content) is bypassed with a reason."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from semcache.adapters.proxy.body_cache import BodyControls, split_cache_field
from semcache.adapters.proxy.models import ChatBody, ContentPart, DocumentObject, Message
from semcache.adapters.proxy.settings import ProxySettings
from semcache.adapters.proxy.validate import validate_body
from semcache.adapters.server.errors import bad_request

from semcache.lookup.partition import generation_params, stable_hash
from semcache.lookup.turns import Turn
from semcache.types import CacheRequest, Document, Scope

Endpoint = Literal["chat", "completions"]

USER_HEADER = "x-semcache-user"
THRESHOLD_HEADER = "x-semcache-threshold"


@dataclass(frozen=True, slots=True)
class Controls:
    """Per-request cache controls from ``x-semcache-control`` / ``Cache-Control``."""

    no_cache: bool = False  # skip the lookup (still store)
    no_store: bool = False  # do not store the answer
    threshold: float | None = None  # x-semcache-threshold, clamped to policy bounds by the core
    ttl_seconds: int | None = None  # body cache.ttl: this answer's TTL
    max_age_seconds: int | None = None  # body cache.s-maxage: older cached answers are not served


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """A parsed request: what to forward, and what (if anything) to cache it as."""

    endpoint: Endpoint
    body: dict[str, Any]
    stream: bool
    include_usage: bool
    cache_request: CacheRequest | None
    bypass_reason: str | None
    controls: Controls
    tenant: str
    user: str | None

    def flight_key(self) -> str:
        """Identity of the request for single-flight: its partition key and the whole body but
        the stream flags (assistant turns included). Computed on demand: only misses need it."""
        semantic = {k: v for k, v in self.body.items() if k not in ("stream", "stream_options")}
        partition = self.cache_request.partition() if self.cache_request is not None else ""
        return stable_hash(partition, self.endpoint, self.tenant, self.user or "",
                           json.dumps(semantic, sort_keys=True, default=str))


def parse_controls(headers: Mapping[str, str]) -> Controls:
    """Read ``x-semcache-control``, ``Cache-Control`` and ``x-semcache-threshold``."""
    tokens: set[str] = set()
    for name in ("x-semcache-control", "cache-control"):
        for value in headers.get(name, "").split(","):
            tokens.add(value.strip().lower())
    threshold = None
    raw = headers.get(THRESHOLD_HEADER)
    if raw is not None:
        try:
            threshold = float(raw)
        except ValueError:
            raise bad_request(f"{THRESHOLD_HEADER} must be a number in (0, 1], got {raw!r}",
                              code="invalid_threshold") from None
        if not (0.0 < threshold <= 1.0) or math.isnan(threshold):
            raise bad_request(f"{THRESHOLD_HEADER} must be in (0, 1], got {raw!r}", code="invalid_threshold")
    return Controls(no_cache="no-cache" in tokens, no_store="no-store" in tokens, threshold=threshold)


def _with_body(controls: Controls, asked: BodyControls) -> Controls:
    """Header controls with the body's ``cache`` field added (either can switch one on)."""
    return dataclasses.replace(
        controls, no_cache=controls.no_cache or asked.no_cache or asked.max_age_seconds == 0,
        no_store=controls.no_store or asked.no_store, ttl_seconds=asked.ttl_seconds,
        max_age_seconds=asked.max_age_seconds)


def _text(content: str | list[ContentPart] | None) -> str | None:
    """Plain text of a message content; None if it holds non-text parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if any(part.type != "text" for part in content):
        return None
    return "\n".join(part.text or "" for part in content)


def _documents(raw: list[str | DocumentObject] | None) -> list[Document]:
    docs = []
    for doc in raw or ():
        if isinstance(doc, str):
            docs.append(Document(doc))
            continue
        text = doc.text if doc.text is not None else doc.content or ""
        source = doc.source if doc.source is not None else doc.id
        full = f"{doc.title}\n{text}" if doc.title else text
        docs.append(Document(full, str(source) if source not in (None, "") else None))
    return docs


def _chat_parts(messages: list[Message]) -> tuple[str | None, tuple[Turn, ...], str, list[Document], str | None]:
    """(prompt, history, system, extra documents, bypass reason) of a chat conversation.

    Tool calls and results become documents tagged with their position, so their order
    counts although documents are a set; tool results are also turns of the history.
    """
    system: list[str] = []
    turns: list[Turn] = []
    tool_docs: list[Document] = []
    bypass: str | None = None
    for i, msg in enumerate(messages):
        role = msg.role
        text = _text(msg.content)
        if text is None:
            bypass = bypass or "non-text content"
            continue
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            turns.append(Turn(role, text))
            if role == "assistant" and msg.tool_calls:
                calls = [{k: v for k, v in c.items() if k != "id"} for c in msg.tool_calls]
                tool_docs.append(Document(f"#{i} tool_calls\n{json.dumps(calls, sort_keys=True, default=str)}"))
        elif role in ("tool", "function"):
            turns.append(Turn("tool", text))
            tool_docs.append(Document(f"#{i} {role}:{msg.tool_call_id or msg.name or ''}\n{text}"))
    last = messages[-1].role
    if last != "user":
        bypass = bypass or f"last message is from {last!r}, not the user"
    prompt = turns[-1].content if turns and turns[-1].role == "user" else None
    if prompt is not None and not prompt.strip():
        bypass = bypass or "empty prompt"
    return prompt, tuple(turns[:-1]), "\n\n".join(system), tool_docs, bypass


def parse_request(
    endpoint: Endpoint,
    body: Any,
    *,
    tenant: str,
    headers: Mapping[str, str],
    settings: ProxySettings,
) -> ParsedRequest:
    """Validate an OpenAI body (400 on malformed input) and work out its cache scope.

    The model checks the body; the client's own dict, not the model, is what is forwarded."""
    checked = validate_body(endpoint, body)
    body, asked = split_cache_field(body, checked.cache)  # LiteLLM's body field; never forwarded
    controls = _with_body(parse_controls(headers), asked)
    stream = bool(checked.stream)
    include_usage = bool(checked.stream_options and checked.stream_options.include_usage)
    user = headers.get(USER_HEADER) or checked.user
    if not settings.scope_by_user:
        user = None

    temperature = body.get("temperature")
    params = generation_params(body, endpoint=endpoint, default_temperature=settings.default_temperature)
    if temperature is None and settings.cache_unset_temperature:
        # the scope says "not given": apart from every explicit value, 1.0 included
        temperature, params["temperature"] = 0.0, "unset"
    elif temperature is None:
        temperature = settings.default_temperature
    if asked.namespace is not None:
        params["_namespace"] = asked.namespace
    bypass: str | None = None
    if (checked.n or 1) > 1:
        bypass = "n > 1"
    elif (checked.best_of or 1) > 1:
        bypass = "best_of > 1"
    elif temperature > 0 and not settings.cache_sampled:
        bypass = f"temperature {temperature} > 0 (cache_sampled is off)"

    documents = _documents(checked.documents)
    system = None
    history: tuple[Turn, ...] = ()
    prompt: str | None
    if isinstance(checked, ChatBody):
        prompt, history, sys_text, tool_docs, reason = _chat_parts(checked.messages)
        system = sys_text or None
        documents += tool_docs
        bypass = bypass or reason
    else:
        raw = body["prompt"]
        prompt = raw if isinstance(raw, str) else raw[0] if len(raw) == 1 and isinstance(raw[0], str) else None
        if prompt is None:
            bypass = bypass or "batched or token-id prompt"
        elif not prompt.strip():
            bypass = bypass or "empty prompt"

    cache_request = None
    if bypass is None and prompt is not None:
        scope = Scope.of(tenant=tenant, model=body["model"], params=params, user=user)
        cache_request = CacheRequest(prompt=prompt, scope=scope, history=history, system=system,
                                     documents=tuple(documents), threshold=controls.threshold)
    return ParsedRequest(endpoint, body, stream, include_usage, cache_request, bypass, controls, tenant, user)
