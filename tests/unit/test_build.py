"""``build_cache(settings)``: every core setting changes what gets built."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from semcache import CacheRequest, Scope
from semcache.build import build_cache
from semcache.index import FaissIndex, HnswIndex
from semcache.settings import CoreSettings
from tests.fixtures.embedders import HashEmbedder

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path: Path):
    def make(**fields) -> CoreSettings:
        return CoreSettings(db_url=f"sqlite:///{tmp_path / 'cache.db'}", feed="off", **fields)
    return make


def test_index_setting_picks_the_backend(settings) -> None:
    pytest.importorskip("faiss")
    for kind, expected in (("hnsw", HnswIndex), ("faiss", FaissIndex)):
        with build_cache(settings(index=kind), embedder=HashEmbedder(), stats_interval=0) as cache:
            assert isinstance(cache.index, expected)


def test_verifier_setting_turns_the_rules_off(settings) -> None:
    request = CacheRequest("What is the dose for a 10 mg tablet?", Scope())
    cached = "What is the dose for a 100 mg tablet?"
    verdicts = {}
    for name in ("hardneg", "none"):
        with build_cache(settings(verifier=name), embedder=HashEmbedder(), stats_interval=0) as cache:
            verdicts[name] = cache.judge(request, None, cached, (), None, category="factual")
    assert verdicts["hardneg"] is not None and verdicts["hardneg"].rule == "number"
    assert verdicts["none"] is None


def test_context_settings_change_which_conversations_match(settings) -> None:
    embed = HashEmbedder().embed
    asked, cached = ["tell me about the weather in paris"], ["tell me about weather in paris please"]
    history = ["one", "two", "three", "four", "five"]
    similarity = float(embed(asked)[0] @ embed(cached)[0])
    assert 0.5 < similarity < 0.95  # the two thresholds below fall on either side of it
    outcomes = {}
    for threshold in (0.5, 0.95):
        with build_cache(settings(context_max_turns=2, context_threshold=threshold),
                         embedder=HashEmbedder(), stats_interval=0) as cache:
            context = cache.context
            # "and tomorrow?" refers back: the topics must reach the context threshold
            outcomes[threshold] = context.match("and tomorrow?", asked, None, "and tomorrow?", cached, None,
                                                embed=embed).ok
            assert [t.content for t in context.window(history)] == ["four", "five"]
    assert outcomes == {0.5: True, 0.95: False}
    with build_cache(settings(), embedder=HashEmbedder(), stats_interval=0) as cache:
        assert len(cache.context.window(history * 2)) == 8


def test_rebuild_progress_min_shows_the_progress_bar(settings, capsys) -> None:
    with build_cache(settings(), embedder=HashEmbedder(), stats_interval=0) as cache:
        for n in range(3):
            cache.store(CacheRequest(f"What is fact {n}?", Scope(), category="factual"), {"n": n})
    shown = {}
    for threshold in (1, 5000):
        with build_cache(settings(rebuild_progress_min=threshold), embedder=HashEmbedder(),
                         stats_interval=0) as cache:
            assert len(cache.index) == 3
        shown[threshold] = "loading index" in capsys.readouterr().err
    assert shown == {1: True, 5000: False}


def test_parts_are_built_without_loading_or_starting_anything(settings) -> None:
    from semcache.cache import SemanticCache
    from semcache.parts import build_parts

    with build_cache(settings(), embedder=HashEmbedder(), stats_interval=0) as first:
        first.store(CacheRequest("What is the capital of Peru?", Scope(), category="factual"), {"a": 1})
    threads = {t.name for t in threading.enumerate()}
    cache = SemanticCache.from_parts(build_parts(settings().db_url, embedder=HashEmbedder(),
                                                 stats_interval=0.05, feed=True))
    try:
        assert len(cache.index) == 0 and {t.name for t in threading.enumerate()} == threads
        cache.start()
        assert len(cache.index) == 1
        assert {"semcache-change-feed", "semcache-recorder"} <= {t.name for t in threading.enumerate()}
    finally:
        cache.close()
