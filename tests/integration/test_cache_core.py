"""SemanticCache end to end on a real SQLite file and the real MiniLM embedder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from semcache.lookup.policies import PolicySet
from semcache.types import CacheRequest, Document, Scope

pytestmark = pytest.mark.integration

SCOPE = Scope.of(tenant="acme", model="m", params={"temperature": 0})


def req(text: str, scope: Scope = SCOPE, **kw) -> CacheRequest:
    return CacheRequest(text, scope, **kw)


def test_exact_then_semantic_hit_and_hard_negative_miss(make_cache):
    cache = make_cache()
    entry = cache.store(req("How do I reverse a list in Python?"), {"a": 1})
    exact = cache.lookup_detailed(req("how do i reverse a list in python"))
    assert exact.hit and exact.hit.match == "exact" and exact.hit.entry_id == entry
    assert exact.hit.response == {"a": 1}
    semantic = cache.lookup(req("How can I reverse a Python list?"))
    assert semantic and semantic.match == "semantic" and semantic.entry_id == entry
    negative = cache.lookup_detailed(req("How do I reverse a list in Rust?"))
    assert negative.hit is None
    assert negative.reason  # the verifier (or the threshold) says why


def test_restart_rebuilds_index_and_mirror_equal_to_sql(make_cache, tmp_path):
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    first = make_cache(url)
    ids = [first.store(req(f"What is the population of city number {i}?"), {"i": i}) for i in range(30)]
    first.store(req("How old is he?", history=("Who is Barack Obama?",)), {"age": 1})
    first.close()
    second = make_cache(url)
    assert second.index.ids() == second.db.all_ids() == second.mirror.ids()
    assert set(ids) <= second.index.ids()
    hit = second.lookup(req("What is the population of city number 7?"))
    assert hit and hit.response == {"i": 7}
    follow = second.lookup(req("how old is he", history=("Tell me who Barack Obama is",)))
    assert follow and follow.response == {"age": 1}


def test_ttl_expiry_misses_and_is_removed(make_cache, tmp_path):
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    policies = PolicySet.from_file().with_overrides({"factual": {"ttl_seconds": 60}})
    cache = make_cache(policies=policies, clock=lambda: now[0])
    entry = cache.store(req("What is the capital of Australia?", category="factual"), {"a": "Canberra"})
    assert cache.lookup(req("What is the capital of Australia?", category="factual"))
    now[0] += timedelta(seconds=61)
    assert cache.lookup(req("What is the capital of Australia?", category="factual")) is None
    assert cache.lookup(req("Which city is the capital of Australia?", category="factual")) is None
    assert entry not in cache.index.ids()
    assert entry not in cache.db.all_ids()


def test_quota_evicts_least_valuable_first(make_cache):
    policies = PolicySet.from_file().with_overrides({"factual": {"max_entries": 3}})
    cache = make_cache(policies=policies)
    ids = [cache.store(req(f"Who was the king of country {i}?", category="factual"), {"i": i}) for i in range(3)]
    assert cache.lookup(req("Who was the king of country 0?", category="factual"))  # entry 0 gains a hit
    cache.flush()
    newest = cache.store(req("Who was the king of country 3?", category="factual"), {"i": 3})
    live = cache.db.all_ids()
    assert len(live) == 3 and newest in live and ids[0] in live
    assert live == cache.index.ids()


def test_documents_change_the_partition_and_invalidate_by_source(make_cache):
    cache = make_cache()
    v1 = (Document("Rate limit: 100 requests per minute.", source="kb/limits"),)
    v2 = (Document("Rate limit: 500 requests per minute.", source="kb/limits"),)
    entry = cache.store(req("What is the rate limit?", documents=v1), {"a": "100"})
    assert cache.lookup(req("What is the rate limit?", documents=v1))
    assert cache.lookup(req("What is the rate limit?", documents=v2)) is None
    assert cache.lookup(req("What is the rate limit?")) is None
    assert cache.invalidate(document="kb/limits", dry_run=True) == [entry]
    assert cache.invalidate(document="kb/limits") == [entry]
    assert cache.lookup(req("What is the rate limit?", documents=v1)) is None


def test_multi_turn_follow_up_needs_equivalent_history(make_cache):
    cache = make_cache()
    cache.store(req("How old is he?", history=("Who is Barack Obama?",)), {"a": "born 1961"})
    assert cache.lookup(req("How old is he?", history=("Tell me who Barack Obama is.",)))
    assert cache.lookup(req("How old is he?", history=("Who is Emmanuel Macron?",))) is None
    assert cache.lookup(req("How old is he?")) is None


def test_disabled_and_personal_categories(make_cache):
    policies = PolicySet.from_file().with_overrides(
        {"support": {"personal": True}, "conversational": {"enabled": False}})
    cache = make_cache(policies=policies)
    assert cache.store(req("What is my account balance?", category="support"), {"a": 1}) is None
    user = Scope.of("acme", "m", {"temperature": 0}, user="u1")
    entry = cache.store(req("What is my account balance?", user, category="support"), {"a": 1})
    assert entry is not None
    assert cache.lookup(req("What is my account balance?", user, category="support"))
    other = Scope.of("acme", "m", {"temperature": 0}, user="u2")
    assert cache.lookup(req("What is my account balance?", other, category="support")) is None
    assert cache.store(req("hello there", category="conversational"), {"a": 1}) is None


def test_bad_input_leaves_nothing_half_written(make_cache):
    cache = make_cache()
    with pytest.raises(ValueError):
        cache.store(req("Is this stored?"), {"not json": object()})
    assert cache.db.count_entries() == 0 and len(cache.index) == 0 and len(cache.mirror) == 0
    with pytest.raises(ValueError, match="unknown category"):
        cache.lookup(req("Is this stored?", category="poetry"))


def test_changed_embedder_reembeds_instead_of_mixing_spaces(make_cache, minilm, tmp_path):
    url = f"sqlite:///{tmp_path / 'swap.db'}"
    first = make_cache(url)
    first.store(req("How do I reverse a list in Python?"), {"a": 1})
    first.close()

    class Renamed:
        """The same model under another version string: entries must be re-embedded."""

        name, version, dim = minilm.name, "other-version", minilm.dim

        def embed(self, texts):
            return minilm.embed(texts)

        def embed_one(self, text):
            return minilm.embed_one(text)

    second = make_cache(url, embedder=Renamed())
    row = next(iter(second.db.iter_entries()))[0]
    assert row.embedder.endswith("@other-version")
    assert np.allclose(row.embedding, minilm.embed_one("How do I reverse a list in Python?"), atol=1e-5)
    assert second.lookup(req("How can I reverse a Python list?"))


def test_async_lookup_and_store(make_cache):
    import asyncio

    cache = make_cache()

    async def run():
        entry = await cache.astore(req("What is the speed of light?"), {"a": "c"})
        hit = await cache.alookup(req("What's the speed of light?"))
        return entry, hit

    entry, hit = asyncio.run(run())
    assert hit is not None and hit.entry_id == entry
