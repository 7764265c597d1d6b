"""The API-key cache evicts one resolution at a time when full, and forgets after its TTL."""

from __future__ import annotations

from pathlib import Path

import pytest
from semcache.adapters.server import keys as keys_module
from semcache.adapters.server.keys import KeyStore

from semcache.storage.store import Store

pytestmark = pytest.mark.unit


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_full_cache_evicts_one_entry_not_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys_module, "_MAX_CACHED", 3)
    clock = Clock()
    with Store(f"sqlite:///{tmp_path / 'k.db'}") as store:
        ks = KeyStore(store.engine, ttl_s=60, clock=clock)
        issued = [ks.issue_key(f"t{i}", create_tenant=True) for i in range(4)]
        for key in issued:
            assert ks.resolve(key) is not None
        cached = [ks.is_cached(key) for key in issued]
        assert cached.count(True) == 3 and cached[-1], cached
        clock.now += 61
        assert not any(ks.is_cached(key) for key in issued)
        assert ks.resolve("sk-sc-unknown") is None and ks.is_cached("sk-sc-unknown")  # negative answers too
