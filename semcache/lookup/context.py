"""Conversation context: when may a follow-up reuse an earlier answer?

The system prompt and documents are exact context (they enter the partition key). The
earlier user turns are soft context: each is embedded, and a candidate matches only when
its chain has the same length and every aligned turn is close in meaning and passes the
verifier. A follow-up is searched by the previous user turn followed by the question
(``search_text``). Why, and how the 0.70 turn threshold was chosen: docs/design/core.md."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from semcache.verify.base import PassThroughVerifier, Verifier

EmbedFn = Callable[[Sequence[str]], np.ndarray]


def search_text(prompt: str, history: Sequence[str] = ()) -> str:
    """What gets embedded for search: the question, preceded by the previous user turn."""
    return f"{history[-1]}\n{prompt}" if history else prompt


@dataclass(frozen=True, slots=True)
class ContextMatch:
    ok: bool
    similarity: float | None = None  # the weakest aligned turn's cosine
    reason: str | None = None


class ContextMatcher:
    def __init__(self, verifier: Verifier | None = None, *, threshold: float = 0.70,
                 max_turns: int = 4) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"context threshold must be in (0, 1], got {threshold!r}")
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns!r}")
        self.verifier = verifier or PassThroughVerifier()
        self.threshold = threshold
        self.max_turns = max_turns

    def with_threshold(self, threshold: float) -> ContextMatcher:
        """The same matcher (verifier, window) with another turn threshold."""
        return ContextMatcher(self.verifier, threshold=threshold, max_turns=self.max_turns)

    def window(self, history: Sequence[str]) -> tuple[str, ...]:
        return tuple(history[-self.max_turns:])

    def embed(self, history: Sequence[str], embed: EmbedFn) -> np.ndarray | None:
        """Embeddings of the compared turns, shape (n, d); None for no history."""
        turns = self.window(history)
        if not turns:
            return None
        return np.asarray(embed(list(turns)), dtype=np.float32)

    def match(
        self,
        query_turns: Sequence[str],
        query_vecs: np.ndarray | None,
        cached_turns: Sequence[str],
        cached_vecs: np.ndarray | None,
        *,
        category: str = "other",
    ) -> ContextMatch:
        q, c = self.window(query_turns), self.window(cached_turns)
        if len(q) != len(c):
            return ContextMatch(False, None, f"conversation length differs: {len(q)} vs {len(c)} earlier turns")
        if not q:
            return ContextMatch(True, None)
        if query_vecs is None or cached_vecs is None:
            return ContextMatch(False, None, "conversation context missing embeddings")
        sims = np.einsum("ij,ij->i", np.asarray(query_vecs, np.float32)[-len(q):],
                         np.asarray(cached_vecs, np.float32)[-len(c):])
        weakest = float(sims.min())
        for turn, (qt, ct, sim) in enumerate(zip(q, c, sims, strict=True)):
            if float(sim) < self.threshold:
                return ContextMatch(False, weakest,
                                    f"earlier turn {turn + 1} differs (similarity {float(sim):.2f})")
            # earlier turns are judged like follow-ups: the hard rules (numbers, negation,
            # entities, time, scope) apply, the single-word rewording rule does not
            verdict = self.verifier.verify(qt, ct, category=category, in_context=True)
            if not verdict.accepted:
                return ContextMatch(False, weakest, f"earlier turn {turn + 1}: {verdict.reason}")
        return ContextMatch(True, weakest)
