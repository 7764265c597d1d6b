"""Schema, uniqueness and balance checks for each file of hand-written verifier pairs."""

import json
import sys
from pathlib import Path

import pytest

WRITTEN = Path(__file__).resolve().parents[3] / "datasets" / "pairs" / "written"
sys.path.insert(0, str(WRITTEN))
from pair_schema import CATEGORIES, DOMAINS, HIT_KINDS, MISS_KINDS  # noqa: E402

MIN_ROWS = 810  # each file's target of 900 pairs, less 10%
FIELDS = {"cached": str, "query": str, "should_hit": bool, "category": str, "kind": str,
          "domain": str, "template": str, "split": str, "writer": str}
# writers whose every domain holds at least half of an even share of the rows
EVEN_DOMAINS = {"life", "services"}


@pytest.fixture(scope="module", params=sorted(DOMAINS))
def written(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    writer = request.param
    lines = (WRITTEN / f"{writer}.jsonl").read_text(encoding="utf-8").splitlines()
    return writer, [json.loads(line) for line in lines]


def test_schema(written: tuple[str, list[dict]]) -> None:
    writer, rows = written
    for i, row in enumerate(rows):
        assert set(row) == set(FIELDS), f"row {i}: fields {sorted(row)}"
        for name, typ in FIELDS.items():
            assert type(row[name]) is typ, f"row {i}: {name} is {type(row[name]).__name__}"
        assert row["cached"].strip() and row["query"].strip(), f"row {i}: empty text"
        assert row["category"] in CATEGORIES, f"row {i}: category {row['category']}"
        assert row["domain"] in DOMAINS[writer], f"row {i}: domain {row['domain']}"
        allowed = HIT_KINDS if row["should_hit"] else MISS_KINDS
        assert row["kind"] in allowed, f"row {i}: kind {row['kind']} for hit={row['should_hit']}"
        assert (row["template"], row["split"], row["writer"]) == ("written", "train", writer), i


def test_no_duplicates_or_identical_sides(written: tuple[str, list[dict]]) -> None:
    pairs = [(r["cached"], r["query"]) for r in written[1]]
    assert len(set(pairs)) == len(pairs), "duplicate (cached, query) pairs"
    assert not [p for p in pairs if p[0] == p[1]], "pair with cached == query"


def test_size_balance_and_domains(written: tuple[str, list[dict]]) -> None:
    writer, rows = written
    assert len(rows) >= MIN_ROWS, f"{len(rows)} rows, expected at least {MIN_ROWS}"
    share = sum(r["should_hit"] for r in rows) / len(rows)
    assert 0.45 <= share <= 0.65, f"hit share {share:.2%} outside 45-65%"
    per_domain = {d: sum(r["domain"] == d for r in rows) for d in DOMAINS[writer]}
    assert min(per_domain.values()) > 0, per_domain  # every domain present
    if writer in EVEN_DOMAINS:
        assert min(per_domain.values()) >= len(rows) / len(per_domain) / 2, per_domain
