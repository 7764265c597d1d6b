"""The ``Embedder`` protocol every embedder meets, and the text checks they share."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors of a fixed dimension."""

    name: str
    version: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed a batch: float32 ``[n, dim]``, rows L2-normalised; ``n == 0`` is allowed."""
        ...

    def embed_one(self, text: str) -> np.ndarray:
        """Embed one text: float32 ``[dim]``, L2-normalised."""
        ...


def check_texts(texts: Sequence[str]) -> list[str]:
    """Validate a batch of texts and return it as a list (TypeError on non-str)."""
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of str, got a single str; use embed_one()")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}")
    return out


def check_text(text: str) -> str:
    """Validate one text (TypeError on non-str)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return text


async def aembed_one(embedder: Embedder, text: str) -> np.ndarray:
    """``embed_one`` without blocking the event loop: the embedder's own ``aembed_one`` if it has
    one (the LRU and the micro-batcher do), else a worker thread."""
    aembed = getattr(embedder, "aembed_one", None)
    if aembed is not None:
        vector: np.ndarray = await aembed(text)
        return vector
    return await asyncio.to_thread(embedder.embed_one, text)
