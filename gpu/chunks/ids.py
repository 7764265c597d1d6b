"""Chunks: identity, registry, detection in a token sequence, and prompt layout.

- A chunk's id is a hash of its token ids (``chunk_id``). Before reusing anything stored under an
  id, the token ids themselves are compared, so a hash collision can never splice wrong KV in.
- ``ChunkRegistry.find`` locates registered chunks anywhere in a token sequence with a rolling
  hash over token ids (Rabin-Karp on each chunk's first ``window`` tokens, then a full token
  comparison). No separator strings are involved, so BPE merges cannot break detection as long as
  the chunk was tokenised on its own, which ``build_prompt`` guarantees.
- ``build_prompt`` tokenises ``[prefix][chunk 1]...[chunk N][suffix]`` by concatenating token-id
  lists: the chunks sit between the system message and the user turn, with exact boundaries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_MOD = (1 << 61) - 1
_BASE = 1_000_003
CHUNKS_MARKER = "\x1fsemcache-chunks\x1f"


def chunk_id(token_ids: Sequence[int]) -> str:
    """Stable id of a chunk: blake2b-128 of its token ids as little-endian int64."""
    if len(token_ids) == 0:
        raise ValueError("a chunk needs at least one token")
    data = np.asarray(token_ids, dtype="<i8").tobytes()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _window_hash(tokens: Sequence[int]) -> int:
    h = 0
    for t in tokens:
        h = (h * _BASE + int(t) + 1) % _MOD
    return h


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of prompt tokens; ``chunk_id`` is set when the run is a reusable chunk."""

    token_ids: tuple[int, ...]
    chunk_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChunkMatch:
    """A registered chunk found at ``token_ids[start:end]``."""

    chunk_id: str
    start: int
    end: int


@dataclass(slots=True)
class ChunkRegistry:
    """Registered chunks by id, with a rolling-hash index for detection.

    Chunks shorter than ``window`` tokens can be registered (and reused through explicit
    segments) but are not found by ``find``.
    """

    window: int = 16
    _tokens: dict[str, tuple[int, ...]] = field(default_factory=dict)
    _by_head: dict[int, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")

    def register(self, token_ids: Sequence[int]) -> str:
        """Register a chunk (idempotent) and return its id."""
        tokens = tuple(int(t) for t in token_ids)
        cid = chunk_id(tokens)
        known = self._tokens.get(cid)
        if known is not None:
            if known != tokens:
                raise ValueError(f"chunk id collision on {cid}: different token ids")
            return cid
        self._tokens[cid] = tokens
        if len(tokens) >= self.window:
            self._by_head.setdefault(_window_hash(tokens[: self.window]), []).append(cid)
        return cid

    def tokens(self, cid: str) -> tuple[int, ...]:
        """Token ids of a registered chunk (KeyError if unknown)."""
        return self._tokens[cid]

    def __contains__(self, cid: object) -> bool:
        return cid in self._tokens

    def __len__(self) -> int:
        return len(self._tokens)

    def find(self, token_ids: Sequence[int]) -> list[ChunkMatch]:
        """Non-overlapping registered chunks in ``token_ids``, left to right, longest first.

        Every match is confirmed by comparing the token ids, not only the hash.
        """
        tokens = [int(t) for t in token_ids]
        w, n = self.window, len(tokens)
        matches: list[ChunkMatch] = []
        if n < w or not self._by_head:
            return matches
        top = pow(_BASE, w - 1, _MOD)
        h = _window_hash(tokens[:w])
        i = 0
        while True:
            best: tuple[int, str] | None = None
            for cid in self._by_head.get(h, ()):
                chunk = self._tokens[cid]
                end = i + len(chunk)
                if end <= n and tuple(tokens[i:end]) == chunk and (best is None or end > best[0]):
                    best = (end, cid)
            if best is not None:
                matches.append(ChunkMatch(best[1], i, best[0]))
                i = best[0]
                if i + w > n:
                    break
                h = _window_hash(tokens[i : i + w])
                continue
            if i + w >= n:
                break
            h = ((h - (tokens[i] + 1) * top) * _BASE + tokens[i + w] + 1) % _MOD
            i += 1
        return matches

    def segments(self, token_ids: Sequence[int]) -> list[Segment]:
        """Split ``token_ids`` into plain runs and the registered chunks ``find`` detects."""
        tokens = tuple(int(t) for t in token_ids)
        out: list[Segment] = []
        pos = 0
        for m in self.find(tokens):
            if m.start > pos:
                out.append(Segment(tokens[pos : m.start]))
            out.append(Segment(tokens[m.start : m.end], m.chunk_id))
            pos = m.end
        if pos < len(tokens):
            out.append(Segment(tokens[pos:]))
        return out


@dataclass(frozen=True, slots=True)
class PromptLayout:
    """Tokenised prompt ``[prefix][chunks...][suffix]`` with exact chunk boundaries."""

    segments: tuple[Segment, ...]

    @property
    def token_ids(self) -> list[int]:
        return [t for s in self.segments for t in s.token_ids]

    @property
    def chunk_ids(self) -> list[str]:
        return [s.chunk_id for s in self.segments if s.chunk_id is not None]


def build_prompt(tokenizer: Any, system: str, chunks: Sequence[str], question: str,
                 registry: ChunkRegistry | None = None, chunk_separator: str = "\n\n") -> PromptLayout:
    """Chat prompt with ``chunks`` placed, in order, between the system message and the user turn.

    The chat template is rendered once with a marker at the end of the system message; the text
    before the marker (the prefix) and after it (the suffix: end of system turn, the user turn and
    the generation prompt) are tokenised separately, and each chunk (``chunk + chunk_separator``)
    is tokenised on its own, so chunk token ids never depend on their neighbours. Chunks are
    registered in ``registry`` when one is given. Tokenizers without a chat template get a plain
    ``System:/User:/Assistant:`` layout.
    """
    if not chunks and not question and not system:
        raise ValueError("empty prompt: need a system message, chunks or a question")
    messages = [{"role": "system", "content": f"{system}{chunk_separator}{CHUNKS_MARKER}"},
                {"role": "user", "content": question}]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        text = f"System: {system}{chunk_separator}{CHUNKS_MARKER}\nUser: {question}\nAssistant:"
    prefix_text, suffix_text = text.split(CHUNKS_MARKER)
    segments: list[Segment] = []
    prefix = _encode(tokenizer, prefix_text)
    if prefix:
        segments.append(Segment(tuple(prefix)))
    for chunk in chunks:
        ids = tuple(_encode(tokenizer, chunk + chunk_separator))
        if not ids:
            raise ValueError("a chunk tokenised to no tokens")
        cid = registry.register(ids) if registry is not None else chunk_id(ids)
        segments.append(Segment(ids, cid))
    suffix = _encode(tokenizer, suffix_text)
    if suffix:
        segments.append(Segment(tuple(suffix)))
    return PromptLayout(tuple(segments))


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False)) if text else []
