"""Misspelt repeats are the same question; two real words, added words and changed marks are not."""

from __future__ import annotations

import pytest

from semcache.verify.pair_model import PairModel
from semcache.verify.typos import Misspellings, within_one_edit


@pytest.fixture(scope="module")
def typos() -> Misspellings:
    return Misspellings(PairModel.load().vocabulary)


@pytest.mark.parametrize(("a", "b"), [
    ("How do I reset my password?", "how do i reset my pasword"),
    ("Why was I charged twice this month?", "Wyh was I chrged twice this mnoth?"),
    ("How do I log in to the app?", "how do i login to teh app"),
    ("Who painted the Mona Lisa?", "who paintd the mona lisa"),
    ("Can I take ibuprofen with alcohol?", "Can I take ibuprofne with alcohol?"),
])
def test_misspelt_repeats_are_the_same_question(typos: Misspellings, a: str, b: str) -> None:
    assert typos.same_question(a, b) and typos.same_question(b, a)


@pytest.mark.parametrize(("a", "b"), [
    ("How do I reset my password?", "How do I rest my password?"),  # two real words
    ("Is Iran in the Middle East?", "Is Iraq in the Middle East?"),
    ("What is encryption?", "What is decryption?"),  # the first letter changed
    ("Can I take ibuprofen with alcohol?", "Can I not take ibuprofen with alcohol?"),  # a word added
    ("How do I enable dark mode?", "How do I disable dark mode?"),
    ("What is 15% of 80?", "What is 1.5% of 80?"),  # numbers and marks
    ("Solve 2x + 5 = 15", "Solve 2x - 5 = 15"),
    ("What does \\b mean in a regex?", "What does \\B mean in a regex?"),
    ("What does the ? mean in TypeScript", "What does the ! mean in TypeScript"),
    ("Wht is teh bset wya to lrean", "What is the best way to learn"),  # more than half changed
])
def test_other_questions_are_not(typos: Misspellings, a: str, b: str) -> None:
    assert not typos.same_question(a, b) and not typos.same_question(b, a)


def test_within_one_edit() -> None:
    assert within_one_edit("password", "pasword") and within_one_edit("pasword", "password")
    assert within_one_edit("month", "mnoth") and not within_one_edit("month", "mnoht")  # one swap, two
    assert within_one_edit("twice", "twcie") and within_one_edit("plan", "plam")
    assert not within_one_edit("plan", "planet")
