"""The core's side of conversations and document sets, on SQLite and MiniLM: documents in
another order, a policy that asks for their order, restarts, and entries of partition key v1."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from semcache.lookup.normalize import exact_key, normalize_text, prompt_hash
from semcache.lookup.partition import stable_hash
from semcache.lookup.policies import PolicySet
from semcache.storage.store import NewEntry
from semcache.types import CacheRequest, Document, Scope

pytestmark = pytest.mark.integration

SCOPE = Scope.of(tenant="acme", model="m", params={"temperature": 0})
DOCS = (Document("The warranty lasts two years.", "a"), Document("Returns are accepted within 30 days.", "b"))
QUESTION = "Summarise the store's policies."


def test_reordered_documents_hit_and_a_changed_document_misses(make_cache: Any) -> None:
    cache = make_cache()
    entry = cache.store(CacheRequest(QUESTION, SCOPE, documents=DOCS), {"s": 1})
    hit = cache.lookup(CacheRequest(QUESTION, SCOPE, documents=DOCS[::-1] + DOCS[:1]))
    assert hit is not None and hit.entry_id == entry and hit.match == "exact"
    reworded = cache.lookup(CacheRequest("Please summarise the store's policies.", SCOPE, documents=DOCS[::-1]))
    assert reworded is not None and reworded.entry_id == entry
    changed = (DOCS[0], Document("Returns are accepted within 14 days.", "b"))
    assert cache.lookup(CacheRequest(QUESTION, SCOPE, documents=changed)) is None


def test_a_policy_can_demand_the_exact_document_order(make_cache: Any) -> None:
    ordered = PolicySet.from_mapping({"defaults": {"document_order": "exact"}})
    cache = make_cache(policies=ordered)
    entry = cache.store(CacheRequest(QUESTION, SCOPE, documents=DOCS), {"s": 1})
    same = cache.lookup(CacheRequest(QUESTION, SCOPE, documents=DOCS))
    assert same is not None and same.entry_id == entry
    assert cache.lookup(CacheRequest(QUESTION, SCOPE, documents=DOCS[::-1])) is None


def test_conversation_entries_survive_a_restart(db_url: str, make_cache: Any) -> None:
    """Role-tagged turns round-trip through the store's JSON column (SQLite and PostgreSQL)."""
    url = db_url
    history = [{"role": "user", "content": "My Streamly subscription renews tomorrow."},
               {"role": "assistant", "content": "Would you like me to cancel it before then?"}]
    make_cache(url).store(CacheRequest("yes please", SCOPE, history=history), {"a": "cancelled"})
    again = make_cache(url)
    hit = again.lookup(CacheRequest("Sure, go ahead.", SCOPE, history=history))
    assert hit is not None and hit.response == {"a": "cancelled"}
    other = [history[0], {"role": "assistant", "content": "Would you like me to switch you to annual billing?"}]
    assert again.lookup(CacheRequest("yes please", SCOPE, history=other)) is None


def _v1_partition(request: CacheRequest) -> str:
    """The version 1 recipe: documents hashed in order."""
    s = request.scope
    scope_key = stable_hash(s.tenant, s.model, s.params, s.user or "\x00")
    context = stable_hash(" ".join((request.system or "").split()), *[d.content_hash for d in request.documents])
    return f"v1:{stable_hash(scope_key, context)}"


def test_entries_stored_under_partition_key_v1_miss(make_cache: Any, tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'v1.db'}"
    first = make_cache(url)
    request = CacheRequest(QUESTION, SCOPE, documents=DOCS)
    partition = _v1_partition(request)
    vector = first.embedder.embed_one(QUESTION)
    first.db.add_entry(NewEntry(
        partition=partition, exact_key=stable_hash(partition, normalize_text(QUESTION)), tenant="acme",
        model="m", params_hash=SCOPE.params, category="other", prompt=QUESTION,
        prompt_norm=normalize_text(QUESTION), prompt_hash=prompt_hash(QUESTION), context_hash="",
        response={"old": True}, embedding=np.asarray(vector, np.float32), embedder=first.embedder_id))
    first.close()
    cache = make_cache(url)
    assert len(cache.mirror) == 1  # loaded, but in a partition no request reaches
    result = cache.lookup_detailed(request)
    assert result.hit is None
    assert exact_key(request.partition(), QUESTION) != stable_hash(partition, normalize_text(QUESTION))
    fresh = cache.store(request, {"old": False})
    assert cache.lookup(request).entry_id == fresh
