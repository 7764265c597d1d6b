"""The one recipe for a request's partition key, and its version."""

from __future__ import annotations

import pytest

from semcache import CacheRequest, Document, Scope
from semcache.lookup import partition
from semcache.lookup.partition import PARTITION_VERSION, generation_params, partition_key

pytestmark = pytest.mark.unit


def _key(**changes) -> str:
    fields = dict(tenant="acme", model="m", params="p", user=None, system="be brief",
                  document_hashes=["d1", "d2"])
    return partition_key(**{**fields, **changes})


def test_the_key_carries_its_version(monkeypatch) -> None:
    key = _key()
    assert key.startswith(f"v{PARTITION_VERSION}:")
    monkeypatch.setattr(partition, "PARTITION_VERSION", PARTITION_VERSION + 1)
    assert _key() != key and _key().startswith(f"v{PARTITION_VERSION + 1}:")


@pytest.mark.parametrize("change", [
    {"tenant": "other"}, {"model": "m2"}, {"params": "q"}, {"user": "ann"}, {"system": "be long"},
    {"document_hashes": ["d1"]}, {"document_hashes": ["d1", "d3"]}, {"document_order": "exact"},
], ids=lambda c: "".join(f"{k}={v}" for k, v in c.items()))
def test_everything_the_key_covers_changes_it(change) -> None:
    assert _key(**change) != _key()


def test_documents_are_a_set_unless_the_order_is_asked_for() -> None:
    assert _key(document_hashes=["d2", "d1", "d2"]) == _key()
    assert _key(document_hashes=["d2", "d1"], document_order="exact") != _key(document_order="exact")
    with pytest.raises(ValueError, match="document order"):
        _key(document_order="sorted")


def test_version_1_keys_are_never_produced() -> None:
    """Entries stored under version 1 hashed documents in order: none of them can be found."""
    assert PARTITION_VERSION == 2 and _key().startswith("v2:")


def test_whitespace_in_the_system_prompt_does_not(monkeypatch) -> None:
    assert _key(system="  be   brief ") == _key()


def test_cache_request_partition_is_the_key() -> None:
    scope = Scope.of("acme", "m", {"temperature": 0.0})
    request = CacheRequest("q?", scope, system="s", documents=(Document("text one"),))
    assert request.partition() == partition_key(
        tenant="acme", model="m", params=scope.params, user=None, system="s",
        document_hashes=[Document("text one").content_hash])


def test_generation_params_normalise_what_the_proxy_and_the_cache_api_send() -> None:
    body = {"model": "m", "messages": [], "stream": True, "user": "u", "max_tokens": 16}
    assert generation_params(body, default_temperature=0.0) == generation_params(
        {"max_tokens": 16, "temperature": 0}) == {"max_tokens": 16, "temperature": 0.0, "_endpoint": "chat"}
    assert generation_params({}, endpoint="completions")["_endpoint"] == "completions"
    with pytest.raises(ValueError, match="temperature"):
        generation_params({"temperature": "hot"})
