"""Generations <-> the JSON payload stored in the cache.

Messages go through ``langchain_core.messages.message_to_dict`` /
``messages_from_dict`` (stable, and they only ever build message classes), so
reading a payload back never instantiates arbitrary serialised objects.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.outputs import ChatGeneration, Generation

FORMAT = "langchain.generations/1"


def _jsonable(value: Any) -> Any:
    """``value`` made JSON-safe (unknown objects become their ``str``)."""
    return json.loads(json.dumps(value, default=str))


def encode_generations(generations: Sequence[Generation]) -> dict[str, Any]:
    """The cache payload for a list of generations."""
    if isinstance(generations, (str, bytes)) or not isinstance(generations, Sequence):
        raise TypeError(f"generations must be a list of Generation, got {type(generations).__name__}")
    items: list[dict[str, Any]] = []
    for gen in generations:
        if isinstance(gen, ChatGeneration):
            message = message_chunk_to_message(gen.message)
            items.append({"kind": "chat", "message": message_to_dict(message),
                          "generation_info": gen.generation_info})
        elif isinstance(gen, Generation):
            items.append({"kind": "text", "text": gen.text, "generation_info": gen.generation_info})
        else:
            raise TypeError(f"generations must contain Generation objects, got {type(gen).__name__}")
    text = generations[0].text if generations else None  # readable in the admin UI and logs
    return _jsonable({"format": FORMAT, "text": text, "generations": items})


def decode_generations(payload: Any) -> list[Generation] | None:
    """Generations from a payload written by ``encode_generations``; None for anything else."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        return None
    items = payload.get("generations")
    if not isinstance(items, list):
        return None
    out: list[Generation] = []
    for item in items:
        if not isinstance(item, dict):
            return None
        info = item.get("generation_info")
        if item.get("kind") == "chat":
            message = messages_from_dict([item["message"]])[0]
            out.append(ChatGeneration(message=message, generation_info=info))
        elif item.get("kind") == "text":
            out.append(Generation(text=str(item.get("text", "")), generation_info=info))
        else:
            return None
    return out


def first_message(generations: Sequence[Generation]) -> BaseMessage | None:
    """The message of the first chat generation, if there is one."""
    if generations and isinstance(generations[0], ChatGeneration):
        return generations[0].message
    return None
