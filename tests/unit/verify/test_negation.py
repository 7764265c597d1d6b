"""Negation and antonym rule."""

import pytest

from semcache.verify.negation import antonym_pair, negation_change

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("How do I enable dark mode in Slack?", "How do I disable dark mode in Slack?"),
        ("Should I stretch before running?", "Should I stretch after running?"),
        ("Why did my credit limit increase?", "Why did my credit limit decrease?"),
        ("How to add a user to a Linux group", "How to remove a user from a Linux group"),
        ("Can I bake bread with yeast?", "Can I bake bread without yeast?"),
        ("Can I freeze cooked rice?", "Can't I freeze cooked rice?"),
        ("Is the museum open on holidays?", "Isn't the museum open on holidays?"),
        ("Why is the fan making noise?", "Why is the fan not making noise?"),
        ("How do I install the printer driver?", "How do I uninstall the printer driver?"),
        ("How do I lock my screen on a Mac?", "How do I unlock my screen on a Mac?"),
        ("How do I upload photos to the cloud?", "How do I download photos to the cloud?"),
    ],
)
def test_negation_or_antonym_rejects(verifier, cached, query):
    verdict = verifier.verify(query, cached)
    assert not verdict.accepted
    assert verdict.rule in ("negation", "order")


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("Why doesn't my laptop charge?", "Why does my laptop not charge?"),
        ("My phone won't turn on, what can I do?", "What can I do, my phone will not turn on?"),
        ("How do I turn on subtitles in VLC?", "How do I enable subtitles in VLC?"),
    ],
)
def test_same_polarity_passes(verifier, cached, query):
    assert verifier.verify(query, cached).accepted


def test_negation_change_counts_parity():
    assert (
        negation_change(["is", "it", "safe"], ["is", "it", "not", "safe"]) == "negation added: not"
    )
    assert negation_change(["not", "never"], ["no"]) == "negation removed: not"
    assert negation_change(["no"], ["not"]) is None


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("enable", "disable", True),
        ("connect", "disconnect", True),
        ("encrypt", "decrypt", True),
        ("careful", "careless", True),
        ("before", "after", True),
        ("report", "import", False),
        ("python", "pythons", False),
    ],
)
def test_antonym_pair(a, b, expected):
    assert antonym_pair(a, b) is expected
