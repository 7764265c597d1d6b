"""Conversation context: when may a follow-up reuse an earlier answer?

Context has two parts:

* **Exact context** — the system prompt and retrieved documents. They enter the
  partition key (``CacheRequest.partition``), so the same question over other or
  updated documents lands in another partition and cannot hit.
* **Soft context** — the earlier user turns. "How old is he?" means different
  things after "Who is Obama?" and after "Who is Macron?". Following MeanCache's
  context chains, each earlier turn is embedded, and a candidate matches only
  when its chain has the same length and every aligned turn is close in meaning
  *and* passes the verifier. Reworded history still matches; a changed entity or
  number in an earlier turn does not.

A follow-up is searched by a *context-conditioned* text: the previous user turn
followed by the question (``search_text``). "What are its types?" alone says
little; after "Explain inflation" it is a specific question, and a reworded
conversation lands near it. Questions without history are searched as they are.

Only the most recent ``max_turns`` user turns are compared: older turns rarely
change what a follow-up refers to, and comparing them would turn hits into misses.

The turn threshold (0.70) sits on the plateau of best accuracy (0.40-0.71) that
``semcache.tools.calibrate.calibrate_context`` finds on the calibration half of the
MeanCache multi-turn rows (``benchmarks/results/precision.json``,
``context_calibration``); above it reworded parents start to miss.
"""

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
