"""Number and unit rule: changed quantities reject, spelled-out numbers compare equal."""

import pytest

from semcache.verify.numbers import normalize_numbers

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("Is 20 mg of cetirizine a normal dose?", "Is 200 mg of cetirizine a normal dose?"),
        ("Which team won the league in 2018?", "Which team won the league in 2022?"),
        ("How far is 8 km in miles?", "How far is 8 mi in miles?"),
        ("Split a 12-page PDF into single pages", "Split a 21-page PDF into single pages"),
        ("What does error code 0x80070005 mean?", "What does error code 0x80070057 mean?"),
        ("Is it okay to run 5 miles a day?", "Is it okay to run fifty miles a day?"),
        ("Solve 4y - 3 = 9", "Solve 4y + 3 = 9"),
    ],
)
def test_changed_number_or_unit_rejects(verifier, cached, query):
    verdict = verifier.verify(query, cached)
    assert not verdict.accepted
    assert verdict.rule == "number"
    assert "->" in verdict.reason or "operator" in verdict.reason or "added" in verdict.reason


def test_reason_names_both_quantities(verifier):
    verdict = verifier.verify("Can a dog eat 100 g of grapes?", "Can a dog eat 10 g of grapes?")
    assert verdict.reason == "number changed: 10 g -> 100 g"


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("Give me three tips for better sleep", "Give me 3 tips for better sleep"),
        ("How long is a twenty minute walk in steps?", "How long is a 20 minute walk in steps?"),
        ("Convert 15 percent into a fraction", "Convert 15% into a fraction"),
        ("Is 250mg of magnesium safe?", "Is 250 mg of magnesium safe?"),
        ("Population of a town of 1,500 people", "Population of a town of 1500 people"),
    ],
)
def test_equal_numbers_in_other_spellings_pass(verifier, cached, query):
    assert verifier.verify(query, cached).accepted


def test_a_and_one_are_interchangeable(verifier):
    assert verifier.verify(
        "How much is one ounce of gold worth?", "How much is an ounce of gold worth?"
    ).accepted


def test_normalize_numbers_spells_digits():
    assert (
        normalize_numbers("twenty five apples and two hundred pears") == "25 apples and 200 pears"
    )
    assert normalize_numbers("take 10mg twice") == "take 10 mg 2 times"
