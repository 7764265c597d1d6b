"""LangChain prompts -> the parts of a ``CacheRequest``.

A prompt is a plain string (LLMs) or ``dumps(messages)`` (chat models), read as data,
never instantiated. The last user turn is the question; the earlier user (``HumanMessage``),
assistant (``AIMessage``) and tool (``ToolMessage``) turns are the history; system prompts
are exact context; tool calls, tool results and non-text content are fingerprinted as
documents tagged with their position, so their order counts. The ``llm_string`` becomes part of the
partition, so two model configurations never share entries."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from semcache.lookup.turns import Turn as HistoryTurn
from semcache.types import CacheRequest, Document, Scope, params_hash, stable_hash

_ROLE_ALIASES = {
    "human": "human", "user": "human", "humanmessage": "human", "humanmessagechunk": "human",
    "system": "system", "developer": "system", "systemmessage": "system", "systemmessagechunk": "system",
    "ai": "ai", "assistant": "ai", "aimessage": "ai", "aimessagechunk": "ai",
    "tool": "tool", "toolmessage": "tool", "toolmessagechunk": "tool",
    "function": "function", "functionmessage": "function", "functionmessagechunk": "function",
}


_HISTORY_ROLES = {"human": "user", "ai": "assistant", "tool": "tool", "function": "tool"}


@dataclass(frozen=True, slots=True)
class Turn:
    """One message reduced to what the cache needs: role, text and exact-context extras."""

    role: str  # human | system | ai | tool | function | other
    text: str
    extras: tuple[str, ...] = ()  # canonical JSON of non-text parts, tool calls, ids


@dataclass(frozen=True, slots=True)
class ParsedPrompt:
    """A conversation split into question, history and exact context; ``prompt`` None = not cacheable."""

    prompt: str | None
    history: tuple[HistoryTurn, ...] = ()
    system: str | None = None
    context: tuple[str, ...] = ()  # exact-context fingerprints (become Documents)
    bypass_reason: str | None = None


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _split_content(content: Any) -> tuple[str, tuple[str, ...]]:
    """Text of a message's content and fingerprints of its non-text parts."""
    if content is None:
        return "", ()
    if isinstance(content, str):
        return content, ()
    if not isinstance(content, list):
        return "", (_canon(content),)
    texts: list[str] = []
    extras: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:  # images, audio, files: identity matters, hash them (base64 payloads can be large)
            extras.append("part:" + stable_hash(_canon(part)))
    return "\n".join(texts), tuple(extras)


def _tool_calls(calls: Any) -> Any:
    """Tool calls without their ids: ids are random per run, the call itself is what matters."""
    if not isinstance(calls, list):
        return calls
    return [{k: v for k, v in c.items() if k not in ("id", "index")} if isinstance(c, dict) else c
            for c in calls]


def _turn(role: str, content: Any, tool_info: dict[str, Any]) -> Turn:
    text, extras = _split_content(content)
    tool_info = {**tool_info, "tool_calls": _tool_calls(tool_info.get("tool_calls"))}
    tool_info.pop("tool_call_id", None)  # random per run; the result's position and text identify it
    info = {k: v for k, v in tool_info.items() if v}
    if info:
        extras = (*extras, "tool:" + _canon(info))
    return Turn(_ROLE_ALIASES.get(role.lower(), "other"), text, extras)


def _turn_from_serialised(obj: Any) -> Turn | None:
    """A Turn from one ``dumpd`` message dict, or None when it is not one."""
    if not isinstance(obj, dict) or obj.get("lc") != 1 or not isinstance(obj.get("kwargs"), dict):
        return None
    ident = obj.get("id")
    if not isinstance(ident, list) or not ident or "messages" not in ident:
        return None
    kwargs = obj["kwargs"]
    role = str(kwargs.get("role") or kwargs.get("type") or ident[-1])
    extra = kwargs.get("additional_kwargs") if isinstance(kwargs.get("additional_kwargs"), dict) else {}
    tool_info = {"tool_calls": kwargs.get("tool_calls"), "tool_call_id": kwargs.get("tool_call_id"),
                 "function_call": extra.get("function_call")}
    if _ROLE_ALIASES.get(role.lower()) in ("tool", "function"):
        tool_info["name"] = kwargs.get("name")
    return _turn(role, kwargs.get("content"), tool_info)


def turns_from_prompt(prompt: str) -> list[Turn] | None:
    """The turns of a ``dumps(messages)`` prompt, or None when ``prompt`` is plain text."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    stripped = prompt.lstrip()
    if not stripped.startswith("["):
        return None
    try:
        data = json.loads(prompt)
    except ValueError:
        return None
    if not isinstance(data, list) or not data:
        return None
    turns = [_turn_from_serialised(item) for item in data]
    if any(t is None for t in turns):
        return None
    return [t for t in turns if t is not None]


def turns_from_messages(messages: Sequence[Any]) -> list[Turn]:
    """Turns from LangChain ``BaseMessage`` objects (what a chat model receives)."""
    turns = []
    for msg in messages:
        role = str(getattr(msg, "role", None) or getattr(msg, "type", "other"))
        tool_info = {"tool_calls": getattr(msg, "tool_calls", None),
                     "tool_call_id": getattr(msg, "tool_call_id", None),
                     "function_call": (getattr(msg, "additional_kwargs", None) or {}).get("function_call")}
        if _ROLE_ALIASES.get(role.lower()) in ("tool", "function"):
            tool_info["name"] = getattr(msg, "name", None)
        turns.append(_turn(role, getattr(msg, "content", None), tool_info))
    return turns


def split_turns(turns: Sequence[Turn]) -> ParsedPrompt:
    """Question, history and exact context from a conversation."""
    last_user = max((i for i, t in enumerate(turns) if t.role == "human"), default=None)
    if last_user is None:
        return ParsedPrompt(None, bypass_reason="no user message")
    question = turns[last_user].text
    if not question.strip():
        return ParsedPrompt(None, bypass_reason="the last user message has no text")
    systems = [t.text for t in turns if t.role == "system"]
    history = tuple(HistoryTurn(_HISTORY_ROLES[t.role], t.text) for t in turns[:last_user]
                    if t.role in _HISTORY_ROLES and t.text.strip())
    context: list[str] = []
    for i, turn in enumerate(turns):
        context.extend(f"{i}:{e}" for e in turn.extras)
        if i > last_user or turn.role in ("other", "tool", "function"):  # tool results, in order
            context.append(f"{i}:{turn.role}:{turn.text}")
    return ParsedPrompt(question, history, "\n\n".join(systems) if systems else None, tuple(context))


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Split a LangChain cache ``prompt`` (plain text or ``dumps(messages)``)."""
    turns = turns_from_prompt(prompt)
    if turns is None:
        if not prompt.strip():
            return ParsedPrompt(None, bypass_reason="empty prompt")
        return ParsedPrompt(prompt)
    return split_turns(turns)


_MODEL_PATTERNS = (
    re.compile(r"""['"](?:model_name|model|model_id)['"]\s*[:,]\s*['"]([^'"]{1,200})['"]"""),
)


def model_from_llm_string(llm_string: str) -> str:
    """The model name inside an ``llm_string`` when one is visible, else ``""`` (cosmetic only)."""
    for pattern in _MODEL_PATTERNS:
        match = pattern.search(llm_string)
        if match:
            return match.group(1)
    return ""


def scope_for(llm_string: str, *, tenant: str, user: str | None = None) -> Scope:
    """The scope of one model configuration: the whole ``llm_string`` is hashed into the params."""
    if not isinstance(llm_string, str):
        raise TypeError(f"llm_string must be a str, got {type(llm_string).__name__}")
    return Scope(tenant=tenant, model=model_from_llm_string(llm_string),
                 params=params_hash({"llm_string": llm_string}), user=user)


def build_request(parsed: ParsedPrompt, scope: Scope, *, category: str | None = None,
                  threshold: float | None = None) -> CacheRequest | None:
    """The ``CacheRequest`` for a parsed prompt, or None when it is not cacheable."""
    if parsed.prompt is None:
        return None
    return CacheRequest(prompt=parsed.prompt, scope=scope, history=parsed.history, system=parsed.system,
                        documents=tuple(Document(c) for c in parsed.context), category=category,
                        threshold=threshold)
