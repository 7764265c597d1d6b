"""Schema and balance checks for the hand-written tech verifier pairs."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PAIRS = ROOT / "datasets" / "pairs" / "written" / "tech.jsonl"
MIN_ROWS = 810  # target of 900 pairs less 10%

CATEGORIES = {"support", "code", "factual", "medical", "howto", "conversational", "math", "other"}
HIT_KINDS = {"paraphrase", "synonym", "register", "filler", "typo", "typo_paraphrase",
             "casing", "reorder", "abbreviation"}
MISS_KINDS = {"negation", "antonym", "entity_swap", "number", "unit", "scope", "time",
              "direction", "role", "condition", "specificity", "related", "reworded_trap"}
DOMAINS = {"programming", "it_help", "math"}
FIELDS = {"cached": str, "query": str, "should_hit": bool, "category": str, "kind": str,
          "domain": str, "template": str, "split": str, "writer": str}


@pytest.fixture(scope="module")
def rows():
    with PAIRS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_schema(rows):
    for i, row in enumerate(rows):
        assert set(row) == set(FIELDS), f"row {i}: fields {sorted(row)}"
        for name, typ in FIELDS.items():
            assert type(row[name]) is typ, f"row {i}: {name} is {type(row[name]).__name__}"
        assert row["cached"].strip() and row["query"].strip(), f"row {i}: empty text"
        assert row["category"] in CATEGORIES, f"row {i}: category {row['category']}"
        assert row["domain"] in DOMAINS, f"row {i}: domain {row['domain']}"
        allowed = HIT_KINDS if row["should_hit"] else MISS_KINDS
        assert row["kind"] in allowed, f"row {i}: kind {row['kind']} for hit={row['should_hit']}"
        assert (row["template"], row["split"], row["writer"]) == ("written", "train", "tech")


def test_no_duplicates_or_self_pairs(rows):
    pairs = [(r["cached"], r["query"]) for r in rows]
    assert len(set(pairs)) == len(pairs), "duplicate (cached, query) pairs"
    assert not [p for p in pairs if p[0] == p[1]], "pair with cached == query"


def test_size_and_balance(rows):
    assert len(rows) >= MIN_ROWS, f"{len(rows)} rows, expected at least {MIN_ROWS}"
    share = sum(r["should_hit"] for r in rows) / len(rows)
    assert 0.45 <= share <= 0.65, f"hit share {share:.2%} outside 45-65%"


def test_every_domain_present(rows):
    assert {r["domain"] for r in rows} == DOMAINS
