"""Role-tagged turns, their details, and the conversation pair data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semcache.lookup.turns import Turn, as_turns, details

pytestmark = pytest.mark.unit
DATA = Path(__file__).resolve().parents[3] / "datasets" / "conversations"


def test_old_string_history_becomes_user_turns() -> None:
    assert as_turns(["hi", "book it"]) == (Turn("user", "hi"), Turn("user", "book it"))
    mixed = as_turns([{"role": "assistant", "content": "Cancel it?"}, Turn("tool", "{}"), "yes"])
    assert [t.role for t in mixed] == ["assistant", "tool", "user"]


def test_bad_turns_are_refused() -> None:
    with pytest.raises(ValueError, match="role"):
        as_turns([{"role": "system", "content": "x"}])
    with pytest.raises(TypeError):
        as_turns([42])  # type: ignore[list-item]


@pytest.mark.parametrize(("a", "b"), [
    ("three nights from 12 March", "3 nights starting March 12"),
    ("the 3rd of April at 7pm", "April 3 at 19:00"),
    ("8 in the morning", "8am"),
    ("see Dr. Kim on Friday", "see Dr. Kim this Friday"),
])
def test_equal_details(a: str, b: str) -> None:
    assert details(a) == details(b)


@pytest.mark.parametrize(("a", "b"), [
    ("two tickets", "four tickets"), ("on Monday", "on Tuesday"), ("at 7am", "at 7pm"),
    ("a table at Luigi's Trattoria", "a table at Sakura Sushi"), ("May 5", "May 6"),
])
def test_different_details(a: str, b: str) -> None:
    assert details(a) != details(b)


def test_names_but_not_sentence_openers() -> None:
    found = details("Sure. Your iPhone 15 ships to Harbor View Inn. Shall I add AppleCare?").entities
    assert found == {"iphone 15", "harbor view inn", "applecare"}


def _rows(split: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / f"{split}.jsonl").read_text().splitlines()]


def test_conversation_pairs_are_labelled_role_tagged_and_split_by_domain() -> None:
    dev, heldout = _rows("dev"), _rows("heldout")
    assert len(dev) + len(heldout) >= 600
    for r in dev + heldout:
        assert {t["role"] for t in r["history_cached"] + r["history_query"]} <= {"user", "assistant", "tool"}
        assert isinstance(r["should_hit"], bool) and r["cached"] and r["query"]
    assert not {r["domain"] for r in dev} & {r["domain"] for r in heldout}
    for rows in (dev, heldout):
        assert 0.3 < sum(r["should_hit"] for r in rows) / len(rows) < 0.7
