"""Schema and balance checks for the hand-written verifier pairs in assistant.jsonl."""
import json
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[3] / "datasets/pairs/written/assistant.jsonl"
MIN_ROWS = 810  # target 900 rows, less 10%
FIELDS = {"cached": str, "query": str, "should_hit": bool, "category": str, "kind": str,
          "domain": str, "template": str, "split": str, "writer": str}
CATEGORIES = {"support", "code", "factual", "medical", "howto", "conversational", "math", "other"}
HIT_KINDS = {"paraphrase", "synonym", "register", "filler", "typo", "typo_paraphrase",
             "casing", "reorder", "abbreviation"}
MISS_KINDS = {"negation", "antonym", "entity_swap", "number", "unit", "scope", "time",
              "direction", "role", "condition", "specificity", "related", "reworded_trap"}
DOMAINS = {"science", "history", "geography", "people", "companies", "arts", "sports",
           "language", "writing", "explain", "recommend", "chat"}


@pytest.fixture(scope="module")
def rows():
    lines = PATH.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_schema(rows):
    for row in rows:
        assert set(row) == set(FIELDS), row
        for name, kind in FIELDS.items():
            assert type(row[name]) is kind, (name, row)
        assert row["cached"].strip() and row["query"].strip(), row
        assert row["category"] in CATEGORIES, row
        assert row["domain"] in DOMAINS, row
        assert row["kind"] in (HIT_KINDS if row["should_hit"] else MISS_KINDS), row
        assert (row["template"], row["split"], row["writer"]) == ("written", "train", "assistant")


def test_no_duplicates_or_identical_sides(rows):
    pairs = [(row["cached"], row["query"]) for row in rows]
    assert len(pairs) == len(set(pairs))
    assert not [pair for pair in pairs if pair[0] == pair[1]]


def test_size_and_balance(rows):
    assert len(rows) >= MIN_ROWS
    hit_share = sum(row["should_hit"] for row in rows) / len(rows)
    assert 0.45 <= hit_share <= 0.65, hit_share
