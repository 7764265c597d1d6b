"""Token layouts of engine requests: ``[prefix ids][chunk ids ...][suffix ids]``.

Explicit chunks (the ``semcache.chunks`` extension) are tokenised one by one (``chunk +
separator``), so chunk boundaries are exact and a chunk's ids never depend on its neighbours.
Chat: the template is rendered once with a marker at the end of the first system message; the
text before it is the prefix, the rest the suffix (without a system message, one holding only the
chunks goes first). Completions: the chunks, then the prompt. The plain runs are also searched
for registered chunks by rolling hash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from semcache.gpu.chunks.ids import CHUNKS_MARKER, ChunkRegistry, PromptLayout, Segment

ROLES = ("system", "user", "assistant")


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False)) if text else []


def _normalise(messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    if not messages:
        raise ValueError("messages must hold at least one message")
    out = []
    for m in messages:
        role = "system" if m.get("role") == "developer" else m.get("role")
        if role not in ROLES:
            raise ValueError(f"message role must be one of {ROLES} or 'developer', got {role!r}")
        content = m.get("content")
        if not isinstance(content, str):
            raise TypeError(f"message content must be a string, got {type(content).__name__}")
        out.append({"role": role, "content": content})
    return out


def render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The chat template with the generation prompt (a plain ``role: text`` layout without one)."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return str(text)
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join([*lines, "Assistant:"])


def _plain(registry: ChunkRegistry, ids: list[int]) -> list[Segment]:
    return registry.segments(ids) if ids else []


def _chunk_segments(tokenizer: Any, chunks: Sequence[str], registry: ChunkRegistry,
                    separator: str) -> list[Segment]:
    out = []
    for chunk in chunks:
        if not isinstance(chunk, str) or not chunk.strip():
            raise ValueError("chunks must be non-empty strings")
        ids = tuple(_encode(tokenizer, chunk + separator))
        out.append(Segment(ids, registry.register(ids)))
    return out


def chat_layout(tokenizer: Any, messages: Sequence[Mapping[str, str]], chunks: Sequence[str],
                registry: ChunkRegistry, separator: str = "\n\n") -> PromptLayout:
    """Layout of a chat request with ``chunks`` between the system message and the next turn."""
    msgs = _normalise(messages)
    if not chunks:
        return PromptLayout(tuple(_plain(registry, _encode(tokenizer, render_chat(tokenizer, msgs)))))
    system = next((i for i, m in enumerate(msgs) if m["role"] == "system"), None)
    if system is None:
        msgs.insert(0, {"role": "system", "content": CHUNKS_MARKER})
    else:
        msgs[system] = {"role": "system", "content": msgs[system]["content"] + separator + CHUNKS_MARKER}
    text = render_chat(tokenizer, msgs)
    if text.count(CHUNKS_MARKER) != 1:
        raise ValueError("the chat template dropped or repeated the system message; "
                         "cannot place chunks")
    prefix, suffix = text.split(CHUNKS_MARKER)
    segments = [*_plain(registry, _encode(tokenizer, prefix)),
                *_chunk_segments(tokenizer, chunks, registry, separator),
                *_plain(registry, _encode(tokenizer, suffix))]
    return PromptLayout(tuple(segments))


def completion_layout(tokenizer: Any, prompt: str, chunks: Sequence[str], registry: ChunkRegistry,
                      separator: str = "\n\n") -> PromptLayout:
    """Layout of a completion request: ``chunks`` first, then the prompt."""
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty string")
    segments = [*_chunk_segments(tokenizer, chunks, registry, separator),
                *_plain(registry, _encode(tokenizer, prompt))]
    if not segments:
        raise ValueError("the prompt tokenised to no tokens")
    return PromptLayout(tuple(segments))
