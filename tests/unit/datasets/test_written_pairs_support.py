"""Schema, uniqueness and balance checks for the hand-written support pairs."""

import json
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[3] / "datasets/pairs/written/support.jsonl"
MIN_ROWS = 810  # target 900 minus 10%
FIELDS = {"cached": str, "query": str, "should_hit": bool, "category": str, "kind": str,
          "domain": str, "template": str, "split": str, "writer": str}
CATEGORIES = {"support", "code", "factual", "medical", "howto", "conversational", "math", "other"}
HIT_KINDS = {"paraphrase", "synonym", "register", "filler", "typo", "typo_paraphrase",
             "casing", "reorder", "abbreviation"}
MISS_KINDS = {"negation", "antonym", "entity_swap", "number", "unit", "scope", "time",
              "direction", "role", "condition", "specificity", "related", "reworded_trap"}
DOMAINS = {"accounts", "subscriptions", "retail", "telecom", "smart_home"}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [json.loads(line) for line in PATH.read_text().splitlines()]


def test_schema(rows):
    for row in rows:
        assert set(row) == set(FIELDS), row
        for name, typ in FIELDS.items():
            assert isinstance(row[name], typ), (name, row)
        assert row["category"] in CATEGORIES and row["domain"] in DOMAINS, row
        assert row["kind"] in (HIT_KINDS if row["should_hit"] else MISS_KINDS), row
        assert (row["template"], row["split"], row["writer"]) == ("written", "train", "support")
        assert row["cached"].strip() and row["query"].strip(), row


def test_no_duplicates_or_identical_sides(rows):
    pairs = [(r["cached"], r["query"]) for r in rows]
    assert len(pairs) == len(set(pairs))
    assert all(cached != query for cached, query in pairs)


def test_size_and_balance(rows):
    assert len(rows) >= MIN_ROWS
    hits = sum(r["should_hit"] for r in rows) / len(rows)
    assert 0.45 <= hits <= 0.65, hits
