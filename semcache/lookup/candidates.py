"""The semantic path's candidates: which cached questions a lookup judges, and in what order.

With a verifier that judges one pair at a time (``hardneg``, ``none``), the vector search's
candidates are walked best first and stop at the first one below the similarity gate (the
category's threshold). With a batch verifier (``verify_many``: the learned pair model) the
gate drops to ``floor``, so paraphrases at cosine 0.6-0.8 are judged too; the character
n-gram index (``CharGramIndex``) adds misspelled repeats the embedding misses. At most ``k``
candidates, alternately from either search, are judged: first those decided without the
model (accepted by ``prejudge``, then by the verifier's ``precheck`` when it has one), in rank
order; then, only if the lookup asks for more (none of those was served), the rest are scored
in one call and the accepted ones come out best score first. That is the order scoring every
candidate gives (a pre-checked pair counts as the top score), so stopping early never changes
the entry served. Stopping at the first pair the model accepts in rank order would: the best
score is served, and on the held-out questions that was not the first accepted in 30 of 96
lookups (``benchmarks/verifier_latency.py``, ``rank_order_exit``).
``TextIndexedMirror`` keeps the n-gram index in step with the entries the lookup can see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import zip_longest
from typing import Any

import numpy as np

from semcache.index.base import VectorIndex
from semcache.index.chargram import CharGramIndex
from semcache.replication.mirror import EntryMeta, EntryMirror
from semcache.types import Rejection

# Judges the pair before the verifier (conversation context, reply acts): a rejection,
# True when it accepts outright, None when the verifier decides.
PreJudge = Callable[[EntryMeta, float], "Rejection | bool | None"]
Judge = Callable[[EntryMeta, float], "Rejection | None"]


class TextIndexedMirror(EntryMirror):
    """The entry mirror, keeping a ``CharGramIndex`` of the cached questions in step: every
    add, move and delete of an entry (local, change feed, start-up load) goes through here."""

    def __init__(self, text_index: CharGramIndex, response_cache_size: int = 10_000) -> None:
        super().__init__(response_cache_size)
        self.text_index = text_index

    def put(self, meta: EntryMeta, response: Any = None) -> None:
        self.text_index.add(meta.partition, [meta.entry_id], [meta.prompt])
        super().put(meta, response)

    def remove(self, entry_ids: list[int] | set[int]) -> None:
        super().remove(entry_ids)
        self.text_index.delete(entry_ids)


@dataclass(frozen=True, slots=True)
class Candidate:
    entry_id: int
    similarity: float  # the embedding cosine; a candidate only the n-gram index found: its n-gram cosine
    source: str = "vector"  # or "chargram"


@dataclass(slots=True)
class Outcome:
    """What a search met besides its hits: rejections (best candidate first) and expired ids."""

    best: float | None = None
    rejections: list[Rejection] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)


class CandidateSearch:
    """Finds and judges one lookup's candidates (see the module docstring).

    ``k``: candidates judged per lookup; ``floor``: the cosine a candidate needs with a batch
    verifier; ``text_index`` and ``char_floor``: the n-gram search and the n-gram cosine
    its candidates need (0.25: misspelled repeats of the dev slice below cosine 0.5 had 0.26+).
    """

    def __init__(self, index: VectorIndex, mirror: EntryMirror, verifier: Any, *, k: int = 5,
                 floor: float = 0.6, text_index: CharGramIndex | None = None,
                 char_floor: float = 0.25) -> None:
        if not 0.0 <= floor <= 1.0 or not 0.0 <= char_floor <= 1.0:
            raise ValueError(f"floor and char_floor must lie in [0, 1], got {floor!r}, {char_floor!r}")
        self.index, self.mirror, self.verifier = index, mirror, verifier
        self.k, self.floor, self.char_floor = k, floor, char_floor
        self.text_index = text_index
        self.batch = callable(getattr(verifier, "verify_many", None))

    def accepted(self, partition: str, vector: np.ndarray, prompt: str, *, gate: float, now: datetime,
                 out: Outcome, judge: Judge, prejudge: PreJudge, category: str,
                 in_context: bool, floor: bool = True) -> Iterator[tuple[EntryMeta, float]]:
        """The candidates every check accepts, best first, as (entry, similarity). ``floor``
        False holds a batch verifier to the vector candidates at ``gate`` too (a request that
        names its own threshold)."""
        found = self.index.search(partition, vector, self.k)
        out.best = found[0][1] if found else None
        if not self.batch:
            yield from self._one_by_one(found, gate, now, out, judge)
            return
        bar = min(gate, self.floor) if floor else gate
        candidates = self.merge(found, partition, prompt, bar, out, chars=floor)
        yield from self._batched(candidates, prompt, now, out, prejudge, category, in_context)

    def _one_by_one(self, found: Sequence[tuple[int, float]], gate: float, now: datetime,
                    out: Outcome, judge: Judge) -> Iterator[tuple[EntryMeta, float]]:
        for entry_id, similarity in found:
            if similarity < gate:
                if not out.rejections:
                    out.rejections.append(_below(entry_id, similarity, gate))
                return
            meta = self._live(entry_id, now, out)
            if meta is None:
                continue
            rejection = judge(meta, similarity)
            if rejection is not None:
                out.rejections.append(rejection)
                continue
            yield meta, similarity

    def merge(self, found: Sequence[tuple[int, float]], partition: str, prompt: str, bar: float,
              out: Outcome, *, chars: bool = True) -> list[Candidate]:
        """Vector candidates at or above ``bar`` and (with ``chars``) n-gram candidates at or
        above ``char_floor``, alternately (each best first), without repeats, at most ``k``."""
        vector = [Candidate(i, s) for i, s in found if s >= bar]
        by_chars: list[Candidate] = []
        if chars and self.text_index is not None:
            by_chars = [Candidate(i, s, "chargram") for i, s in self.text_index.search(partition, prompt, self.k)
                        if s >= self.char_floor]
        if found and not vector and not by_chars:
            out.rejections.append(_below(found[0][0], found[0][1], bar))
        merged: dict[int, Candidate] = {}
        for pair in zip_longest(vector, by_chars):
            for cand in pair:
                if cand is not None and cand.entry_id not in merged and len(merged) < self.k:
                    merged[cand.entry_id] = cand
        return list(merged.values())

    def _batched(self, candidates: list[Candidate], prompt: str, now: datetime, out: Outcome,
                 prejudge: PreJudge, category: str, in_context: bool) -> Iterator[tuple[EntryMeta, float]]:
        precheck = getattr(self.verifier, "precheck", None)
        sure: list[tuple[Candidate, EntryMeta]] = []  # accepted before any score, in rank order
        to_score: list[tuple[Candidate, EntryMeta]] = []
        for cand in candidates:
            meta = self._live(cand.entry_id, now, out)
            if meta is None:
                continue
            early = prejudge(meta, cand.similarity)
            if isinstance(early, Rejection):
                out.rejections.append(early)
            elif early is True:
                sure.append((cand, meta))
            else:
                to_score.append((cand, meta))
        if callable(precheck):  # pairs the verifier decides without its model, after the prejudged
            unsure = []
            for cand, meta in to_score:
                verdict = precheck(prompt, meta.prompt, category=category, in_context=in_context)
                if verdict is None:
                    unsure.append((cand, meta))
                elif verdict.accepted:
                    sure.append((cand, meta))
                else:
                    out.rejections.append(_rejected(cand, verdict))
            to_score = unsure
        for cand, meta in sure:  # the caller stops at the first it can serve: no model call then
            yield meta, cand.similarity
        if not to_score:
            return
        verdicts = self.verifier.verify_many(prompt, [m.prompt for _, m in to_score],
                                             category=category, in_context=in_context)
        ranked: list[tuple[float, Candidate, EntryMeta]] = []
        for (cand, meta), (score, verdict) in zip(to_score, verdicts, strict=True):
            if verdict.accepted:
                ranked.append((float(score), cand, meta))
            else:
                out.rejections.append(_rejected(cand, verdict))
        ranked.sort(key=lambda r: -r[0])  # best score first; ties keep the rank order
        for _, cand, meta in ranked:
            yield meta, cand.similarity

    def _live(self, entry_id: int, now: datetime, out: Outcome) -> EntryMeta | None:
        meta = self.mirror.get(entry_id)
        if meta is not None and meta.expired(now):
            out.expired.append(entry_id)
            return None
        return meta


def _below(entry_id: int, similarity: float, gate: float) -> Rejection:
    return Rejection(entry_id, similarity, f"similarity {similarity:.3f} below threshold {gate:.2f}",
                     "threshold")


def _rejected(cand: Candidate, verdict: Any) -> Rejection:
    return Rejection(cand.entry_id, cand.similarity, str(verdict.reason), verdict.rule)
