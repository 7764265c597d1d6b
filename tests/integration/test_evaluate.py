"""``semcache.tools.evaluate`` leaves nothing behind: each row's entry and index partition go."""

from __future__ import annotations

from pathlib import Path

import pytest

from semcache.cache import SemanticCache
from semcache.tools.evaluate import evaluate, load_rows

pytestmark = pytest.mark.integration
DEV = Path(__file__).parents[2] / "benchmarks" / "data" / "hardneg_dev.jsonl"


def test_evaluate_removes_each_rows_entry_and_partition(tmp_path: Path) -> None:
    rows = load_rows(DEV)[:40]
    with SemanticCache(f"sqlite:///{tmp_path / 'eval.db'}", stats_interval=0) as cache:
        keep = cache.store(cache_request("How do I reverse a list in Python?"), {"answer": "reversed()"})
        report = evaluate(cache, rows, progress=False)
        assert report["n"] == 40 and report["hits"] > 0  # rows were really stored and looked up
        assert cache.index.ids() == {keep}, "evaluation rows must not stay in the index"
        assert len(cache.index.partitions()) == 1
        assert cache.db.count_entries() == 1, "evaluation rows must not stay in the store"


def cache_request(text: str):  # type: ignore[no-untyped-def]
    from semcache.types import CacheRequest, Scope

    return CacheRequest(text, Scope(tenant="user", model="m"))
