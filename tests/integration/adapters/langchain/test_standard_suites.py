"""LangChain's own standard cache suites, unmodified, against SemcacheCache on a fresh SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite  # noqa: E402
from semcache.adapters.langchain import SemcacheCache  # noqa: E402

pytestmark = pytest.mark.integration


def _fresh(make_cache: Any) -> SemcacheCache:
    return SemcacheCache(make_cache(), tenant="standard-suite")


class TestSemcacheCacheSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, make_cache: Any) -> Iterator[SemcacheCache]:
        cache = _fresh(make_cache)
        yield cache
        cache.close()


class TestSemcacheCacheAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, make_cache: Any) -> AsyncIterator[SemcacheCache]:
        cache = _fresh(make_cache)
        yield cache
        cache.close()
