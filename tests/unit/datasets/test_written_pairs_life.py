"""Schema and balance checks for the hand-written `life` verifier pairs."""
import json
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[3] / "datasets" / "pairs" / "written" / "life.jsonl"
MIN_ROWS = 810  # target 900 minus 10%
FIELDS = {"cached": str, "query": str, "should_hit": bool, "category": str, "kind": str,
          "domain": str, "template": str, "split": str, "writer": str}
CATEGORIES = {"support", "code", "factual", "medical", "howto", "conversational", "math", "other"}
HIT_KINDS = {"paraphrase", "synonym", "register", "filler", "typo", "typo_paraphrase", "casing",
             "reorder", "abbreviation"}
MISS_KINDS = {"negation", "antonym", "entity_swap", "number", "unit", "scope", "time", "direction",
              "role", "condition", "specificity", "related", "reworded_trap"}
DOMAINS = {"health", "cooking", "home_garden", "cars_bikes", "pets", "parenting_education",
           "workplace", "legal_public"}


@pytest.fixture(scope="module")
def rows():
    return [json.loads(line) for line in PATH.read_text(encoding="utf-8").splitlines()]


def test_schema(rows):
    for i, r in enumerate(rows):
        assert set(r) == set(FIELDS), i
        for key, typ in FIELDS.items():
            assert type(r[key]) is typ, (i, key)
        assert r["cached"].strip() and r["query"].strip(), i
        assert r["category"] in CATEGORIES, i
        assert r["domain"] in DOMAINS, i
        assert r["kind"] in (HIT_KINDS if r["should_hit"] else MISS_KINDS), i
        assert (r["template"], r["split"], r["writer"]) == ("written", "train", "life"), i


def test_no_duplicates_and_no_identical_sides(rows):
    pairs = [(r["cached"], r["query"]) for r in rows]
    assert len(set(pairs)) == len(pairs)
    assert not [p for p in pairs if p[0] == p[1]]


def test_size_and_balance(rows):
    assert len(rows) >= MIN_ROWS
    hits = sum(r["should_hit"] for r in rows) / len(rows)
    assert 0.45 <= hits <= 0.65, hits
    per_domain = {d: sum(r["domain"] == d for r in rows) for d in DOMAINS}
    assert min(per_domain.values()) >= len(rows) / len(DOMAINS) / 2, per_domain
