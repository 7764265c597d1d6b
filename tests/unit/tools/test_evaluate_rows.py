import json

import pytest

from semcache.lookup.turns import Turn
from semcache.tools.evaluate import load_rows, metrics

pytestmark = pytest.mark.unit


def test_metrics_definitions():
    m = metrics([(True, True), (True, False), (False, True), (False, False), (False, False)])
    assert m["n"] == 5 and m["hits"] == 2
    assert m["precision"] == 0.5 and m["recall"] == 0.5
    assert m["accuracy"] == 3 / 5
    assert m["false_hit_rate"] == 1 / 3
    none_hit = metrics([(True, False), (False, False)])
    assert none_hit["precision"] == 1.0 and none_hit["recall"] == 0.0


def test_rows_accept_string_and_message_histories(tmp_path):
    p = tmp_path / "pairs.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in [
        {"cached": "a", "query": "b", "should_hit": True, "extra": 1},
        {"cached": "a", "query": "b", "should_hit": False, "history_cached": ["x"],
         "history_query": [{"role": "user", "content": "y"}, {"role": "assistant", "content": "z"}]},
    ]) + "\n\n")
    rows = load_rows(p)
    assert rows[1].history_cached == (Turn("user", "x"),)
    assert rows[1].history_query == (Turn("user", "y"), Turn("assistant", "z"))  # assistant turns kept


@pytest.mark.parametrize("line, message", [
    ("{not json", "invalid JSON"),
    ('{"cached": "", "query": "b", "should_hit": true}', "'cached' must be a non-empty string"),
    ('{"cached": "a", "query": "b", "should_hit": "yes"}', "should_hit"),
    ('{"cached": "a", "query": "b", "should_hit": true, "history_query": "x"}', "history_query"),
    ('{"cached": "a", "query": "b", "should_hit": true, "history_query": [{"role": "bot", "content": "x"}]}',
     "role one of"),
    ('[1, 2]', "expected a JSON object"),
])
def test_bad_rows_raise_value_errors_with_line_numbers(tmp_path, line, message):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"cached": "a", "query": "b", "should_hit": true}\n' + line + "\n")
    with pytest.raises(ValueError, match=message):
        load_rows(p)


def test_conversation_rows_are_judged_through_the_lookup_path(tmp_path):
    """Two conversation rows of the labelled set: a flipped offer misses, a reworded reply hits."""
    from semcache.cache import SemanticCache
    from semcache.tools.evaluate import evaluate
    from tests.fixtures.embedders import HashEmbedder

    topic = {"role": "user", "content": "My Streamly subscription renews tomorrow."}
    cancel = {"role": "assistant", "content": "Would you like me to cancel it before then?"}
    annual = {"role": "assistant", "content": "Would you like me to switch you to annual billing?"}
    p = tmp_path / "conv.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in [
        {"cached": "yes please", "query": "yes please", "should_hit": False, "kind": "flipped_offer",
         "history_cached": [topic, cancel], "history_query": [topic, annual]},
        {"cached": "yes please", "query": "Sure, go ahead.", "should_hit": True, "kind": "reworded_reply",
         "history_cached": [topic, cancel], "history_query": [topic, cancel]},
    ]))
    with SemanticCache(f"sqlite:///{tmp_path / 'c.db'}", embedder=HashEmbedder(), stats_interval=0) as cache:
        report = evaluate(cache, load_rows(p), progress=False)
    assert report["per_kind"]["flipped_offer"]["hits"] == 0
    assert report["per_kind"]["reworded_reply"]["hits"] == 1
