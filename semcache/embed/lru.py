"""``CachedEmbedder``: an LRU of recent embeddings in front of another embedder."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from semcache.embed.base import Embedder, check_text, check_texts


class CachedEmbedder:
    """An LRU of recent embeddings in front of another embedder, keyed by exact text."""

    def __init__(self, inner: Embedder, maxsize: int = 4096) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.inner = inner
        self.maxsize = maxsize
        self.name, self.version, self.dim = inner.name, inner.version, inner.dim
        self._entries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _get(self, text: str) -> np.ndarray | None:
        with self._lock:
            vector = self._entries.get(text)
            if vector is None:
                self.misses += 1
                return None
            self._entries.move_to_end(text)
            self.hits += 1
            return vector

    def _put(self, text: str, vector: np.ndarray) -> None:
        frozen = np.array(vector, dtype=np.float32, copy=True)
        frozen.flags.writeable = False
        with self._lock:
            self._entries[text] = frozen
            self._entries.move_to_end(text)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts, computing only the ones not cached (each distinct text once)."""
        items = check_texts(texts)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        for row, text in enumerate(items):
            vector = self._get(text)
            if vector is None:
                missing.setdefault(text, []).append(row)
            else:
                out[row] = vector
        if missing:
            fresh = self.inner.embed(list(missing))
            for (text, rows), vector in zip(missing.items(), fresh, strict=True):
                out[rows] = vector
                self._put(text, vector)
        return out

    def embed_one(self, text: str) -> np.ndarray:
        """Embed one text, from the cache when possible (a fresh copy either way)."""
        vector = self._get(check_text(text))
        if vector is None:
            vector = self.inner.embed_one(text)
            self._put(text, vector)
        return np.array(vector, dtype=np.float32, copy=True)

    async def aembed_one(self, text: str) -> np.ndarray:
        """Async ``embed_one``: uses the inner ``aembed_one`` when it has one."""
        vector = self._get(check_text(text))
        if vector is None:
            inner_async = getattr(self.inner, "aembed_one", None)
            if inner_async is not None:
                vector = await inner_async(text)
            else:
                vector = await asyncio.to_thread(self.inner.embed_one, text)
            self._put(text, vector)
        return np.array(vector, dtype=np.float32, copy=True)
