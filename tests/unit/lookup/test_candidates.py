"""Candidate selection for a batch verifier: the n-gram index follows the local state, and
vector and n-gram candidates merge alternately, without repeats, capped, above their floors."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from semcache.index import HnswIndex
from semcache.index.chargram import CharGramIndex
from semcache.lookup.candidates import Candidate, CandidateSearch, Outcome, TextIndexedMirror
from semcache.replication.mirror import EntryMeta
from semcache.replication.state import LocalState
from semcache.types import Verdict
from semcache.verify import HardNegativeVerifier
from semcache.verify.learned import LearnedVerifier

pytestmark = pytest.mark.unit
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def meta(entry_id: int, prompt: str, partition: str = "p") -> EntryMeta:
    return EntryMeta(entry_id, partition, f"key-{entry_id}", prompt, "other", "t", None, (), None)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def state() -> LocalState:
    return LocalState(HnswIndex(dim=8), clock=lambda: NOW, mirror=TextIndexedMirror(CharGramIndex()))


def test_text_index_follows_adds_moves_and_deletes(state: LocalState) -> None:
    text = state.mirror.text_index  # type: ignore[attr-defined]
    state.add_local(meta(1, "How do I reset my password?"), unit(1), {"a": 1})
    state.add_local(meta(2, "How do I reset my password?", "q"), unit(2), {"a": 2})
    assert [i for i, _ in text.search("p", "how do i rest my pasword", 5)] == [1]
    assert [i for i, _ in text.search("q", "how do i rest my pasword", 5)] == [2]
    state.add_local(meta(1, "How do I reset my password?", "q"), unit(1), {"a": 1})  # moved
    assert text.search("p", "how do i rest my pasword", 5) == []
    state.apply_deleted([2])
    assert [i for i, _ in text.search("q", "how do i rest my pasword", 5)] == [1]
    assert 2 not in text and not state.add_local(meta(2, "How do I reset my password?", "q"), unit(2), {})
    assert 2 not in text  # a tombstoned id is not indexed again


def search_with(state: LocalState, verifier: object, **kw: object) -> CandidateSearch:
    return CandidateSearch(state.index, state.mirror, verifier, text_index=state.mirror.text_index,  # type: ignore[attr-defined]
                           **kw)  # type: ignore[arg-type]


def test_merge_alternates_dedupes_caps_and_applies_floors(state: LocalState) -> None:
    prompts = ["How do I reset my password?", "How do I reset my router?", "How do I reset my phone?",
               "When are you open?", "What is the capital of France?"]
    for i, p in enumerate(prompts):
        state.add_local(meta(i, p), unit(i), {})
    search = search_with(state, LearnedVerifier(), k=3, floor=0.5)
    found = [(3, 0.9), (4, 0.6), (0, 0.55), (1, 0.4)]  # as the vector search ranks them
    out = Outcome()
    merged = search.merge(found, "p", "how do i rest my pasword", 0.5, out)
    # vector 3, n-gram 0, vector 4: then the cap; 0 comes once; 1 is below the floor
    assert [(c.entry_id, c.source) for c in merged] == [(3, "vector"), (0, "chargram"), (4, "vector")]
    assert merged[1].similarity == pytest.approx(search.text_index.search("p", "how do i rest my pasword", 1)[0][1])
    assert out.rejections == []
    none = search.merge([(4, 0.3)], "p", "zzzz", 0.5, out)
    assert none == [] and out.rejections[0].rule == "threshold" and "0.300" in out.rejections[0].reason


def test_char_floor_keeps_weak_n_gram_matches_out(state: LocalState) -> None:
    state.add_local(meta(1, "How do I reset my password?"), unit(1), {})
    strict = search_with(state, LearnedVerifier(), char_floor=0.99)
    assert strict.merge([], "p", "how do i rest my pasword", 0.5, Outcome()) == []
    loose = search_with(state, LearnedVerifier(), char_floor=0.2)
    assert loose.merge([], "p", "how do i rest my pasword", 0.5, Outcome()) == [
        Candidate(1, pytest.approx(loose.text_index.search("p", "how do i rest my pasword", 1)[0][1]),
                  "chargram")]


def test_one_by_one_verifiers_keep_the_threshold_walk(state: LocalState) -> None:
    state.add_local(meta(1, "How do I reset my password?"), unit(1), {})
    search = search_with(state, HardNegativeVerifier())
    assert not search.batch
    out = Outcome()
    judged: list[int] = []
    got = list(search.accepted("p", unit(1) * -1, "how do i rest my pasword", gate=0.8, now=NOW, out=out,
                               judge=lambda m, s: judged.append(m.entry_id),  # type: ignore[func-returns-value]
                               prejudge=lambda m, s: None, category="other", in_context=False))
    # no n-gram candidates and no floor: the one vector candidate is below the gate
    assert got == [] and judged == [] and out.rejections[0].rule == "threshold"


def test_bad_floors(state: LocalState) -> None:
    with pytest.raises(ValueError, match="floor"):
        search_with(state, LearnedVerifier(), floor=1.5)


class FixedScores:
    """A batch verifier with known scores per cached question (accepts at 0.5), recording calls."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores
        self.calls: list[list[str]] = []

    def verify_many(self, query: str, cached: list[str], **_kw: object) -> list[tuple[float, Verdict]]:
        self.calls.append(list(cached))
        return [(self.scores[c], Verdict(self.scores[c] >= 0.5, f"score {self.scores[c]}", None if
                                         self.scores[c] >= 0.5 else "model")) for c in cached]


def at_cosine(base: np.ndarray, other: np.ndarray, cos: float) -> np.ndarray:
    """A unit vector at cosine ``cos`` from ``base`` (in the plane of ``base`` and ``other``)."""
    ortho = other - (other @ base) * base
    ortho /= np.linalg.norm(ortho)
    return (cos * base + np.sqrt(1 - cos**2) * ortho).astype(np.float32)


def test_batch_judges_down_to_the_floor_and_serves_the_best_score_first() -> None:
    state = LocalState(HnswIndex(dim=8), clock=lambda: NOW)
    query = unit(0)
    prompts = {1: "first by cosine", 2: "second by cosine", 3: "below the floor"}
    for entry_id, cos in ((1, 0.8), (2, 0.7), (3, 0.4)):
        state.add_local(meta(entry_id, prompts[entry_id]), at_cosine(query, unit(entry_id), cos), {})
    verifier = FixedScores({"first by cosine": 0.6, "second by cosine": 0.9, "below the floor": 1.0})
    search = CandidateSearch(state.index, state.mirror, verifier, floor=0.5)
    out = Outcome()
    got = list(search.accepted("p", query, "q", gate=0.9, now=NOW, out=out, judge=lambda m, s: None,
                               prejudge=lambda m, s: None, category="other", in_context=False))
    # both candidates above the floor (not the gate) in one call; the better score first
    assert verifier.calls == [["first by cosine", "second by cosine"]]
    assert [m.entry_id for m, _ in got] == [2, 1] and got[0][1] == pytest.approx(0.7, abs=1e-4)
    assert out.best == pytest.approx(0.8, abs=1e-4)


def test_batch_records_rejections_and_takes_prejudged_pairs_first() -> None:
    state = LocalState(HnswIndex(dim=8), clock=lambda: NOW)
    query = unit(0)
    for entry_id, cos in ((1, 0.9), (2, 0.8), (3, 0.7)):
        state.add_local(meta(entry_id, f"cached {entry_id}"), at_cosine(query, unit(entry_id), cos), {})
    verifier = FixedScores({"cached 1": 0.2, "cached 2": 0.99})
    search = CandidateSearch(state.index, state.mirror, verifier, floor=0.5)
    out = Outcome()
    got = list(search.accepted("p", query, "q", gate=0.9, now=NOW, out=out, judge=lambda m, s: None,
                               prejudge=lambda m, s: True if m.entry_id == 3 else None,
                               category="other", in_context=False))
    assert [m.entry_id for m, _ in got] == [3, 2]
    assert [(r.entry_id, r.rule) for r in out.rejections] == [(1, "model")]


def test_a_request_threshold_holds_the_batch_to_the_gate() -> None:
    state = LocalState(HnswIndex(dim=8), clock=lambda: NOW, mirror=TextIndexedMirror(CharGramIndex()))
    query = unit(0)
    state.add_local(meta(1, "How do I reset my password?"), at_cosine(query, unit(1), 0.7), {})
    verifier = FixedScores({"How do I reset my password?": 0.9})
    search = search_with(state, verifier, floor=0.5)
    kw = {"gate": 0.9, "now": NOW, "judge": lambda m, s: None, "prejudge": lambda m, s: None,
          "category": "other", "in_context": False}
    assert list(search.accepted("p", query, "how do i rest my pasword", out=Outcome(), floor=False, **kw)) == []
    assert verifier.calls == []
    got = list(search.accepted("p", query, "how do i rest my pasword", out=Outcome(), **kw))
    assert [m.entry_id for m, _ in got] == [1] and verifier.calls == [["How do I reset my password?"]]
    below = Outcome()
    list(search.accepted("p", query, "how do i rest my pasword", out=below, floor=False, **kw))
    assert [(r.entry_id, r.rule) for r in below.rejections] == [(1, "threshold")]
