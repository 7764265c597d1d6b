"""``CharGramIndex``: misspelled repeats found, partitions kept apart, adds and deletes in step."""

from __future__ import annotations

import pytest

from semcache.index.chargram import CharGramIndex, char_grams

pytestmark = pytest.mark.unit

QUESTIONS = ["How do I reset my password?", "When are you open on Sundays?",
             "How do I cancel my order?", "What is the capital of France?",
             "How do I change my delivery address?", "Can I pay with a gift card?"]


@pytest.fixture
def index() -> CharGramIndex:
    idx = CharGramIndex()
    idx.add("a", list(range(len(QUESTIONS))), QUESTIONS)
    return idx


@pytest.mark.parametrize(("query", "expected"), [
    ("how do i rest my pasword", 0), ("how do i chnage my delivry adress", 4),
    ("wehn are you opne on sundyas", 1), ("can i pay with a gfit crad", 5)])
def test_misspelled_repeat_ranks_first(index: CharGramIndex, query: str, expected: int) -> None:
    found = index.search("a", query, 3)
    assert found[0][0] == expected
    assert len(found) == 1 or found[0][1] > found[1][1] + 0.1
    assert all(0.0 < s <= 1.0 + 1e-6 for _, s in found)


def test_identical_text_scores_one_and_unrelated_text_nothing(index: CharGramIndex) -> None:
    assert index.search("a", QUESTIONS[3], 1) == [(3, pytest.approx(1.0))]
    assert index.search("a", "zzz qqq", 3) == []
    assert index.search("a", "?!", 3) == []


def test_partitions_are_kept_apart(index: CharGramIndex) -> None:
    index.add("b", [100], ["How do I reset my password?"])
    assert [i for i, _ in index.search("b", "how do i rest my pasword", 5)] == [100]
    assert 100 not in [i for i, _ in index.search("a", "how do i rest my pasword", 10)]
    assert index.search("nowhere", "how do i rest my pasword", 5) == []
    assert index.partitions() == ["a", "b"] and len(index) == len(QUESTIONS) + 1


def test_delete_and_re_add(index: CharGramIndex) -> None:
    index.delete([0, 999])  # an unknown id is ignored
    assert 0 not in index and all(i != 0 for i, _ in index.search("a", "how do i rest my pasword", 10))
    index.add("b", [4], [QUESTIONS[4]])  # an existing id moves
    assert 4 not in [i for i, _ in index.search("a", QUESTIONS[4], 10)]
    assert index.search("b", QUESTIONS[4], 1)[0][0] == 4
    index.add("a", [0], [QUESTIONS[0]])
    assert index.search("a", "how do i rest my pasword", 1)[0][0] == 0


def test_many_deletes_compact_and_keep_frequencies_exact() -> None:
    idx = CharGramIndex()
    idx.add("p", list(range(300)), [f"question number {i} about topic {i % 7}" for i in range(300)])
    idx.add("p", [1000], ["How do I reset my password?"])
    idx.delete(range(300))
    # every n-gram of the deleted rows is counted out again
    assert int(idx._df.sum()) == len(idx.grams("How do I reset my password?"))  # noqa: SLF001
    assert idx.search("p", "how do i rest my pasword", 5) == [(1000, pytest.approx(idx.search(
        "p", "how do i rest my pasword", 1)[0][1]))]
    idx.delete([1000])
    assert len(idx) == 0 and idx.partitions() == [] and int(idx._df.sum()) == 0  # noqa: SLF001


def test_grams_ignore_case_and_punctuation() -> None:
    assert set(char_grams("How do I reset my password?").tolist()) == set(
        char_grams("how do i RESET my password").tolist())
    assert len(char_grams("")) == 0


def test_bad_arguments(index: CharGramIndex) -> None:
    with pytest.raises(ValueError, match="k must"):
        index.search("a", "x", 0)
    with pytest.raises(ValueError, match="ids"):
        index.add("a", [1, 2], ["one"])
    with pytest.raises(TypeError, match="partition"):
        index.add(3, [1], ["one"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bits"):
        CharGramIndex(bits=40)
