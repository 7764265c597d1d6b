"""Typos, reordering and rewording pass; a single changed word does not."""

import pytest

from semcache.verify.align import analyse, correct_typos, diff, is_typo, typo_distance

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        (
            "How do I merge two dictionaries in Python?",
            "How do I mrege two dictionaries in Python?",
        ),
        ("Which vegetables grow well in shade?", "Which vegtables grow well in shade?"),
        ("What is the tallest building in Chicago?", "What is the tallest bulding in Chicago?"),
        ("Why does my dishwasher smell bad?", "Why does my dishwahser smell bad?"),
    ],
)
def test_typos_pass(verifier, cached, query):
    verdict = verifier.verify(query, cached)
    assert verdict.accepted
    assert verdict.reason.startswith("typo")


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        (
            "In Go, how do I read environment variables?",
            "How do I read environment variables in Go?",
        ),
        ("After a workout, what should I eat?", "What should I eat after a workout?"),
        ("How do I sort a dict by value in Python?", "In Python, how do I sort a dict by value?"),
    ],
)
def test_reordering_passes(verifier, cached, query):
    assert verifier.verify(query, cached).accepted


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        (
            "How do I make my laptop battery last longer?",
            "What can I do to extend the battery life of my laptop?",
        ),
        (
            "How can I stop my cat from scratching the sofa?",
            "What's a way to keep my cat from clawing at the couch?",
        ),
        (
            "What is a healthy breakfast for a busy morning?",
            "Suggest a nutritious quick breakfast for a hectic morning.",
        ),
    ],
)
def test_rewording_passes(verifier, cached, query):
    assert verifier.verify(query, cached).accepted


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("How do I sort a list of tuples?", "How do I shuffle a list of tuples?"),
        ("Best soil for growing roses", "Best soil for growing orchids"),
        ("How do I clean a leather jacket?", "How do I clean a suede jacket?"),
        ("How do I reverse a linked list?", "How do I reverse a circular linked list?"),
    ],
)
def test_single_changed_word_rejects(verifier, cached, query):
    verdict = verifier.verify(query, cached)
    assert not verdict.accepted
    assert verdict.rule in ("content", "entity")


def test_content_reason(verifier):
    verdict = verifier.verify(
        "How do I shuffle a list of tuples?", "How do I sort a list of tuples?"
    )
    assert verdict.reason == "word changed: sort -> shuffle"


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("Convert Celsius to Fahrenheit", "Convert Fahrenheit to Celsius"),
        (
            "How do I move money from savings to checking?",
            "How do I move money from checking to savings?",
        ),
        (
            "Switch me from the weekly plan to the daily plan",
            "Switch me from the daily plan to the weekly plan",
        ),
    ],
)
def test_reversed_direction_rejects(verifier, cached, query):
    verdict = verifier.verify(query, cached)
    assert not verdict.accepted
    assert verdict.rule == "order"


def test_typo_helpers():
    assert typo_distance("recieve", "receive") == 1
    assert typo_distance("kitten", "sitting") == 3
    assert is_typo("receive", "recieve")
    assert is_typo("running", "run") is False or is_typo("runs", "run")
    assert not is_typo("austria", "australia")
    assert not is_typo("potatoes", "tomatoes")
    assert not is_typo("enable", "unable")
    assert correct_typos("how do I merge dicts", "how do I mrege dicts") == (
        "how do I merge dicts",
        (("mrege", "merge"),),
    )


def test_diff_counts_slots():
    one = diff(
        analyse("How do I sort a list of tuples?"), analyse("How do I shuffle a list of tuples?")
    )
    assert (one.removed, one.added, one.slots) == (("sort",), ("shuffle",), 1)
    many = diff(
        analyse("How do I make my laptop battery last longer?"),
        analyse("What can I do to extend the battery life of my laptop?"),
    )
    assert many.slots > 1
