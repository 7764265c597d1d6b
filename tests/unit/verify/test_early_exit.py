"""Early exit in the learned lookup: candidates decided without the model (prejudged, or the same
text) come first in rank order, and the real pair model runs only when none of them is served;
the entry served is the one scoring every candidate would serve."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from semcache.index import HnswIndex
from semcache.lookup.candidates import CandidateSearch, Outcome
from semcache.replication.mirror import EntryMeta
from semcache.replication.state import LocalState
from semcache.types import Rejection
from semcache.verify.learned import LearnedVerifier
from semcache.verify.pair_model import PairModel
from tests.fixtures.models import CountingPairModel

pytestmark = pytest.mark.unit
NOW = datetime(2026, 1, 1, tzinfo=UTC)
QUERY = "how do i reset my e mail password"
# cached questions in the order the vector search ranks them (cosines 0.9, 0.85, ...)
CACHED = ["How do I reset my router?", "How do I change my email password?",
          "How do I reset my e-mail password?", "How do I reset my phone?", "Reset my email password"]




@pytest.fixture(scope="module")
def pair_model() -> PairModel:
    return PairModel.load()


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return v / np.linalg.norm(v)


def at_cosine(base: np.ndarray, other: np.ndarray, cos: float) -> np.ndarray:
    ortho = other - (other @ base) * base
    ortho /= np.linalg.norm(ortho)
    return (cos * base + np.sqrt(1 - cos**2) * ortho).astype(np.float32)


def search_over(texts: list[str], verifier: Any) -> tuple[CandidateSearch, np.ndarray]:
    state = LocalState(HnswIndex(dim=8), clock=lambda: NOW)
    query = unit(0)
    for i, text in enumerate(texts):
        meta = EntryMeta(i + 1, "p", f"key-{i + 1}", text, "other", "t", None, (), None)
        state.add_local(meta, at_cosine(query, unit(i + 1), 0.9 - 0.05 * i), {})
    return CandidateSearch(state.index, state.mirror, verifier, floor=0.5), query


def lookup(search: CandidateSearch, vector: np.ndarray, prejudge: Any = None, out: Outcome | None = None) -> Any:
    return search.accepted("p", vector, QUERY, gate=0.95, now=NOW, out=out or Outcome(), judge=lambda m, s: None,
                           prejudge=prejudge or (lambda m, s: None), category="other", in_context=False)


def test_the_same_text_is_served_before_any_model_call(pair_model: PairModel) -> None:
    counting = CountingPairModel(pair_model)
    search, vector = search_over(CACHED, LearnedVerifier(counting, threshold=0.0))
    found = lookup(search, vector)
    meta, _ = next(found)
    assert meta.prompt == "How do I reset my e-mail password?"
    assert counting.calls == []  # served without the model: scoring all would have run it once
    rest = [m.prompt for m, _ in found]  # the lookup asks for more: the others in one call
    assert len(counting.calls) == 1 and len(counting.calls[0]) == len(CACHED) - 1
    assert "How do I reset my e-mail password?" not in rest and len(rest) == len(CACHED) - 1


def test_a_prejudged_pair_is_served_before_any_model_call(pair_model: PairModel) -> None:
    counting = CountingPairModel(pair_model)
    search, vector = search_over(CACHED, LearnedVerifier(counting, threshold=0.0))
    found = lookup(search, vector, prejudge=lambda m, s: True if m.entry_id == 4 else None)
    assert [next(found)[0].entry_id, next(found)[0].entry_id] == [4, 3]  # prejudged, then the same text
    assert counting.calls == []


def test_a_miss_still_scores_every_candidate_once_and_records_why(pair_model: PairModel) -> None:
    counting = CountingPairModel(pair_model)
    search, vector = search_over(CACHED[:2] + CACHED[3:], LearnedVerifier(counting, threshold=1.0))
    out = Outcome()
    assert list(lookup(search, vector, out=out)) == []
    assert len(counting.calls) == 1 and len(counting.calls[0]) == len(CACHED) - 1
    assert [r.rule for r in out.rejections] == ["model"] * (len(CACHED) - 1)


def served_by_scoring_all(verifier: LearnedVerifier, texts: list[str], prejudged: set[int]) -> str | None:
    """The entry the search served before early exit: every pair judged, then prejudged (2.0) and
    accepted ones by score, ties in rank order."""
    rest = [(i, t) for i, t in enumerate(texts) if i not in prejudged]
    verdicts = verifier.verify_many(QUERY, [t for _, t in rest])
    ranked = [(2.0, i) for i in sorted(prejudged)]
    ranked += [(score, i) for (i, _), (score, v) in zip(rest, verdicts, strict=True) if v.accepted]
    ranked.sort(key=lambda r: -r[0])
    return texts[ranked[0][1]] if ranked else None


@pytest.mark.parametrize("threshold", [0.0, 0.5, 0.99])
@pytest.mark.parametrize("prejudged", [set(), {3}])
@pytest.mark.parametrize("texts", [CACHED, CACHED[:2] + CACHED[3:], CACHED[::-1]], ids=["same", "none", "reversed"])
def test_the_entry_served_is_the_one_scoring_all_would_serve(pair_model: PairModel, threshold: float,
                                                             prejudged: set[int], texts: list[str]) -> None:
    verifier = LearnedVerifier(pair_model, threshold=threshold)
    search, vector = search_over(texts, verifier)
    first = next(lookup(search, vector, prejudge=lambda m, s: True if m.entry_id - 1 in prejudged else None), None)
    assert (first[0].prompt if first else None) == served_by_scoring_all(verifier, texts, prejudged)


def test_a_pre_check_rejection_is_recorded_without_the_model(pair_model: PairModel) -> None:
    counting = CountingPairModel(pair_model)
    verifier = LearnedVerifier(counting)
    search, vector = search_over(["Why can't I log in?"], verifier)
    out = Outcome()
    got = list(search.accepted("p", vector, "Why can t I log in?", gate=0.95, now=NOW, out=out, judge=lambda m, s: None,
                               prejudge=lambda m, s: None, category="other", in_context=False))
    assert got == [] and counting.calls == []
    assert out.rejections == [Rejection(1, pytest.approx(0.9, abs=1e-4), out.rejections[0].reason, "negation")]
