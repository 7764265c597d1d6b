"""The learned verifier inside ``SemanticCache``: real MiniLM, real pair model, real SQLite.

Candidates below the category threshold (down to the floor) and misspelled repeats found by
the character n-gram index reach the model, all of one lookup in one call; the best accepted
one is served; the n-gram index is rebuilt from the store and follows invalidation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from semcache.types import CacheRequest, Scope
from semcache.verify import HardNegativeVerifier
from semcache.verify.learned import LearnedVerifier
from semcache.verify.pair_model import PairModel
from tests.fixtures.models import CountingPairModel

pytestmark = pytest.mark.integration
SCOPE = Scope(tenant="t", model="m")
TYPO = ("How can I change my delivery address?", "how can i chnage my delivry adress")
OPEN = ("What are your opening hours?", "When are you open?")




@pytest.fixture(scope="module")
def pair_model() -> PairModel:
    return PairModel.load()


def cosine(minilm: Any, a: str, b: str) -> float:
    v = minilm.embed([a, b])
    return float(v[0] @ v[1])


def test_misspelled_repeat_below_the_floor_reaches_the_model(make_cache: Any, minilm: Any,
                                                             pair_model: PairModel) -> None:
    cache = make_cache(verifier=LearnedVerifier(pair_model), candidate_floor=0.5)
    assert cosine(minilm, *TYPO) < cache.search.floor  # only the n-gram index can bring it
    entry = cache.store(CacheRequest(TYPO[0], SCOPE), {"a": 1})
    result = cache.lookup_detailed(CacheRequest(TYPO[1], SCOPE))
    assert result.hit is not None and result.hit.entry_id == entry


def test_paraphrase_between_floor_and_threshold_is_scored(make_cache: Any, minilm: Any,
                                                          pair_model: PairModel, tmp_path: Any) -> None:
    learned = make_cache(verifier=LearnedVerifier(pair_model))
    learned.store(CacheRequest(OPEN[0], SCOPE), {"a": 1})
    result = learned.lookup_detailed(CacheRequest(OPEN[1], SCOPE))
    assert learned.search.floor <= (result.best_similarity or 0) < result.threshold
    score = float(pair_model.score([OPEN])[0])
    if result.hit is None:  # the model, not the cosine, decided
        assert result.rejections[0].rule == "model" and f"{score:.3f}" in result.rejections[0].reason
    # the rule verifier keeps today's walk: stopped at the category threshold
    rules = make_cache(f"sqlite:///{tmp_path / 'rules.db'}", verifier=HardNegativeVerifier())
    rules.store(CacheRequest(OPEN[0], SCOPE), {"a": 1})
    assert rules.lookup_detailed(CacheRequest(OPEN[1], SCOPE)).rejections[0].rule == "threshold"


def test_one_model_call_per_lookup_and_the_best_accepted_wins(make_cache: Any, pair_model: PairModel) -> None:
    counting = CountingPairModel(pair_model)
    cache = make_cache(verifier=LearnedVerifier(counting, threshold=0.0, rules=False), candidate_floor=0.5)
    cached = ["How do I reset my router?", "How do I reset my password?", "How do I reset my phone?",
              "How do I change my password?", "Where do I reset my email password?", "Who wrote Hamlet?"]
    ids = {cache.store(CacheRequest(q, SCOPE), {"q": q}): q for q in cached}
    query = "how do i rest my pasword"
    result = cache.lookup_detailed(CacheRequest(query, SCOPE))
    assert len(counting.calls) == 1 and 2 <= len(counting.calls[0]) <= cache.search.k
    judged = counting.calls[0]
    scores = pair_model.score(judged)
    # every candidate is accepted at threshold 0: the one served has the top score
    assert result.hit is not None and ids[result.hit.entry_id] == judged[int(np.argmax(scores))][0]
    assert len(set(np.round(scores, 4))) > 1  # the order is decided by the scores, not a tie


def test_text_index_is_rebuilt_from_the_store_and_follows_invalidation(make_cache: Any, tmp_path: Any,
                                                                       pair_model: PairModel) -> None:
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    first = make_cache(url, verifier=LearnedVerifier(pair_model), candidate_floor=0.5)
    entry = first.store(CacheRequest(TYPO[0], SCOPE), {"a": 1})
    first.close()
    again = make_cache(url, verifier=LearnedVerifier(pair_model), candidate_floor=0.5)
    assert entry in again.parts.text_index
    hit = again.lookup_detailed(CacheRequest(TYPO[1], SCOPE)).hit
    assert hit is not None and hit.entry_id == entry
    again.invalidate([entry])
    assert entry not in again.parts.text_index
    assert again.lookup_detailed(CacheRequest(TYPO[1], SCOPE)).hit is None


def test_text_index_follows_another_process_through_the_change_feed(make_cache: Any, tmp_path: Any,
                                                                    pair_model: PairModel) -> None:
    from tests.fixtures.polling import wait_for

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    writer = make_cache(url, verifier=LearnedVerifier(pair_model))
    reader = make_cache(url, verifier=LearnedVerifier(pair_model), feed=True, feed_poll_s=0.1)
    entry = writer.store(CacheRequest(TYPO[0], SCOPE), {"a": 1})
    assert wait_for(lambda: entry in reader.parts.text_index, 20.0)
    hit = reader.lookup_detailed(CacheRequest(TYPO[1], SCOPE)).hit
    assert hit is not None and hit.entry_id == entry
    writer.invalidate([entry])
    assert wait_for(lambda: entry not in reader.parts.text_index, 20.0)


def test_the_same_text_up_to_punctuation_is_served_without_the_model(make_cache: Any, pair_model: PairModel) -> None:
    counting = CountingPairModel(pair_model)
    cache = make_cache(verifier=LearnedVerifier(counting), candidate_floor=0.5)
    ids = {cache.store(CacheRequest(q, SCOPE), {"q": q}): q
           for q in ("How do I reset my e-mail password?", "How do I reset my email password?",
                     "How do I reset my router?")}
    # not an exact hit: the exact path keeps the hyphen
    result = cache.lookup_detailed(CacheRequest("how do i reset my e mail password", SCOPE))
    assert result.hit is not None and ids[result.hit.entry_id] == "How do I reset my e-mail password?"
    assert result.hit.match == "semantic" and counting.calls == []  # the other candidates were never scored
    other = cache.lookup_detailed(CacheRequest("how do I reset my mail password?", SCOPE))
    assert len(counting.calls) == 1 and other.best_similarity is not None
