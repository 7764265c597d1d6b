"""Scope rule: quantifiers, ordinals, extremes and restrictions."""

import pytest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("How do I delete all branches in git?", "How do I delete some branches in git?"),
        ("Get the first element of a tuple", "Get the last element of a tuple"),
        ("Find the minimum of a column in SQL", "Find the maximum of a column in SQL"),
        ("How do I select rows in pandas?", "How do I select only rows in pandas?"),
        ("Print each key of a dict", "Print any key of a dict"),
        ("Who was the first king of Norway?", "Who was the second king of Norway?"),
    ],
)
def test_scope_change_rejects(verifier, cached, query):
    verdict = verifier.verify(query, cached)
    assert not verdict.accepted
    assert verdict.rule in ("scope", "negation", "content")


def test_scope_reason(verifier):
    verdict = verifier.verify(
        "Delete some files older than a week", "Delete all files older than a week"
    )
    assert verdict.rule == "scope"
    assert verdict.reason == "scope changed: all -> some"


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("Remove every empty line from a file", "Remove all empty lines from a file"),
        ("How long does jet lag last?", "How long does jet lag usually last?"),
        ("Numbers greater than 10 in a list", "Numbers above 10 in a list"),
    ],
)
def test_same_scope_in_other_words_passes(verifier, cached, query):
    assert verifier.verify(query, cached).accepted
