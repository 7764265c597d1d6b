"""Conversation context: when may an answer cached after one conversation serve another?

The system prompt and documents are exact context (they enter the partition key). The
earlier turns (user, assistant, tool) are soft context, judged by ``followup``: a final
turn that stands on its own ignores its history, so unrelated chat never blocks a hit; a
turn that refers back ("yes please", "book it", "what about Tuesday?") matches only when
its referent does: the last assistant turn, the topic and the entities, numbers and dates
of the turns since. A referring turn is searched with its referent in front
(``search_text``). How "refers back" is decided: ``followup``; how well it works:
``benchmarks/results/conversations_notes.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from semcache.lookup import followup
from semcache.lookup.followup import (
    CONTEXT_THRESHOLD,
    FINAL_THRESHOLD,
    TOPIC_THRESHOLD,
    ContextMatch,
)
from semcache.lookup.turns import Turn, TurnLike, as_turns

EmbedFn = Callable[[Sequence[str]], np.ndarray]
__all__ = ["ContextMatch", "ContextMatcher", "Similarity", "search_text", "stored_history"]


def search_text(prompt: str, history: Iterable[TurnLike] = ()) -> str:
    """What gets embedded for search: the question, preceded by its referent when it refers back.

    Decided by the rules alone (no similarity), so a store, a lookup and a rebuild from SQL
    always embed the same text for the same conversation.
    """
    return followup.search_text(prompt, history)


def stored_history(history: Iterable[TurnLike]) -> list[Any]:
    """The JSON form kept in the store: user turns as plain strings (the old form), others as
    ``{"role", "content"}`` objects; ``as_turns`` reads both back."""
    return [t.content if t.role == "user" else {"role": t.role, "content": t.content}
            for t in as_turns(history)]


class Similarity:
    """Cosine similarity of texts, embedding each text at most once (vectors may be given)."""

    def __init__(self, embed: EmbedFn) -> None:
        self._embed = embed
        self._vectors: dict[str, np.ndarray] = {}

    def add(self, texts: Sequence[str], vectors: np.ndarray | None) -> None:
        if vectors is None or len(vectors) != len(texts):
            return
        for text, vector in zip(texts, np.asarray(vectors, dtype=np.float32), strict=True):
            self._vectors.setdefault(text, vector)

    def __call__(self, a: str, b: str) -> float:
        missing = [t for t in dict.fromkeys((a, b)) if t not in self._vectors]
        if missing:
            self.add(missing, np.asarray(self._embed(missing), dtype=np.float32))
        return float(self._vectors[a] @ self._vectors[b])


class ContextMatcher:
    """Judges two conversations' contexts; ``threshold`` is the cosine that the assistant
    turns and topics of referring turns must reach, ``max_turns`` the window kept."""

    def __init__(self, *, threshold: float = CONTEXT_THRESHOLD, max_turns: int = 8,
                 topic_threshold: float = TOPIC_THRESHOLD) -> None:
        for name, value in (("context threshold", threshold), ("topic threshold", topic_threshold)):
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value!r}")
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns!r}")
        self.threshold = threshold
        self.max_turns = max_turns
        self.topic_threshold = topic_threshold

    def with_threshold(self, threshold: float) -> ContextMatcher:
        """The same matcher (window, topic threshold) with another context threshold."""
        return ContextMatcher(threshold=threshold, max_turns=self.max_turns,
                              topic_threshold=self.topic_threshold)

    def window(self, history: Iterable[TurnLike]) -> tuple[Turn, ...]:
        """The latest ``max_turns`` turns: what is stored and compared."""
        return as_turns(history)[-self.max_turns:]

    def embed(self, history: Iterable[TurnLike], embed: EmbedFn) -> np.ndarray | None:
        """Embeddings of the window's turns, shape (n, d); None for no history."""
        turns = self.window(history)
        if not turns:
            return None
        return np.asarray(embed([t.content for t in turns]), dtype=np.float32)

    def search_gate(self, prompt: str, history: Iterable[TurnLike], threshold: float) -> float:
        """The similarity a search candidate needs: ``threshold``, or for a turn that refers back
        (by the rules) at most the context threshold, since its referent and final turn are then
        compared apart (``match``): "yes please" after a reworded offer embeds further away."""
        turns = self.window(history)
        if turns and followup.refers_back(prompt, turns).refers_back:
            return min(threshold, self.threshold)
        return threshold

    def match(self, query: str, query_history: Iterable[TurnLike], query_vecs: np.ndarray | None,
              cached: str, cached_history: Iterable[TurnLike], cached_vecs: np.ndarray | None, *,
              embed: EmbedFn, final_threshold: float = FINAL_THRESHOLD) -> ContextMatch:
        """Whether the answer cached for (``cached``, its history) may serve ``query``.

        ``*_vecs`` are the windows' embeddings when known; other texts go through ``embed``.
        When either turn refers back, the referents must match and so must the final turns
        themselves (the same reply act, or the same details at ``final_threshold``).
        """
        q, c = self.window(query_history), self.window(cached_history)
        if not q and not c:
            return ContextMatch(True)
        similarity = Similarity(embed)
        similarity.add([t.content for t in q], query_vecs)
        similarity.add([t.content for t in c], cached_vecs)
        back_q = followup.refers_back(query, q, similarity, topic_threshold=self.topic_threshold)
        back_c = followup.refers_back(cached, c, similarity, topic_threshold=self.topic_threshold)
        if not (back_q.refers_back or back_c.refers_back):
            return ContextMatch(True)
        verdict = followup.match_context(followup.referent(q, max_turns=self.max_turns),
                                         followup.referent(c, max_turns=self.max_turns),
                                         similarity, threshold=self.threshold)
        if verdict.ok:
            verdict = followup.match_final_turns(query, cached, similarity, threshold=final_threshold)
            if verdict.ok:
                return verdict
        return ContextMatch(False, f"refers back ({(back_q if back_q.refers_back else back_c).reason}); "
                                   f"{verdict.reason}", verdict.similarity)

