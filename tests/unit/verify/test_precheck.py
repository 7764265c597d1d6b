"""The learned verifier's pre-check: the same words up to case, compatibility forms, spacing and
punctuation are accepted without the model, and the principled rules still judge them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from semcache.types import Verdict
from semcache.verify.learned import SAME_TEXT_SCORE, LearnedVerifier, same_text_key

pytestmark = pytest.mark.unit


class NoModel:
    """A pair model that must not be asked; records what it would have scored."""

    threshold = 0.5
    config = None

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str]]] = []

    def score(self, pairs: Any) -> np.ndarray:
        self.calls.append(list(pairs))
        return np.full(len(pairs), 0.1, dtype=np.float32)


@pytest.mark.parametrize(("a", "b"), [
    ("How do I reset my password?", "how do i reset my password"),
    ("How do I reset my e-mail password?", "How do I reset my e mail password"),
    ("Why won’t my app start?", "why won't my app start"),  # curly and straight apostrophes
    ("What is ＡＰＩ rate limiting?", "what is API rate limiting?"),  # full width (NFKC)
    ("  Where is\tthe  nearest\nstation ?!", "where is the nearest station"),
    ("Hello, how are you?", "hello how are you"),
    ("STRASSE opening hours", "Straße opening hours"),  # case folding
    ("What is x²?", "what is x^2"),
])
def test_same_text_key_sets_aside_case_width_spacing_and_punctuation(a: str, b: str) -> None:
    assert same_text_key(a) == same_text_key(b)


@pytest.mark.parametrize(("a", "b"), [
    ("What is C#?", "What is C++?"),
    ("What is C#?", "What is C?"),
    ("Is 5% of the dose safe?", "Is 5 of the dose safe?"),
    ("Should I take 3.5 mg?", "Should I take 35 mg?"),  # a decimal point between digits stays
    ("Is 1,000 enough?", "Is 1 000 enough?"),
    ("Open from 10:30?", "Open from 1030?"),
    ("Is it 3-5 days?", "Is it 35 days?"),
    ("Can I re-sign the lease?", "Can I resign the lease?"),  # no two words merge
    ("input/output errors", "input output errors"),
    ("How do I reset my password?", "How do I reset my passwords?"),
    ("What is 5²?", "What is 52?"),  # NFKC alone would make both "52"
    ("Is 10⁶ enough?", "Is 106 enough?"),
])
def test_same_text_key_keeps_what_changes_the_question(a: str, b: str) -> None:
    assert same_text_key(a) != same_text_key(b)


def test_precheck_accepts_without_the_model() -> None:
    model = NoModel()
    verifier = LearnedVerifier(model)
    verdict = verifier.precheck("how do i reset my e mail password", "How do I reset my e-mail password?")
    assert verdict is not None and verdict.accepted and verdict.rule is None
    assert verifier.precheck("how do i reset my password", "How do I change my password?") is None
    results = verifier.verify_many("how do i reset my e mail password",
                                   ["How do I reset my e-mail password?", "How do I change my password?"])
    assert model.calls == [[("How do I change my password?", "how do i reset my e mail password")]]
    assert results[0] == (SAME_TEXT_SCORE, verdict)
    assert results[1][0] == pytest.approx(0.1) and not results[1][1].accepted
    # every candidate decided by the pre-check: no model call at all, not even for the threshold
    assert LearnedVerifier(NoModel()).verify("HOW DO I RESET MY PASSWORD", "How do I reset my password?").accepted


class Vetoing:
    """Stands in for the rule verifier: rejects every pair with one rule."""

    def __init__(self, rule: str) -> None:
        self.rule, self.calls = rule, 0

    def verify(self, query: str, cached: str, **_kw: Any) -> Verdict:
        self.calls += 1
        return Verdict(False, f"{self.rule} changed", self.rule)


@pytest.mark.parametrize(("rule", "vetoed"), [("number", True), ("time", True), ("entity", False)])
def test_principled_rules_still_judge_a_pre_checked_pair(rule: str, vetoed: bool) -> None:
    verifier = LearnedVerifier(NoModel())
    verifier._rules = Vetoing(rule)  # type: ignore[assignment]
    verdict = verifier.precheck("Is it open on Sunday", "is it open on sunday?")
    assert verdict is not None and verifier._rules.calls == 1
    assert verdict.accepted is not vetoed and verdict.rule == (rule if vetoed else None)
    without = LearnedVerifier(NoModel(), rules=False)
    without._rules = Vetoing(rule)  # type: ignore[assignment]
    kept = without.precheck("Is it open on Sunday", "is it open on sunday?")
    assert kept is not None and kept.accepted and without._rules.calls == 0


def test_the_real_rules_veto_a_pre_checked_pair() -> None:
    # the same text once the apostrophe is set aside, but the negation rule reads "can't" only
    verifier = LearnedVerifier(NoModel())
    verdict = verifier.precheck("Why can t I log in?", "Why can't I log in?")
    assert verdict is not None and (verdict.accepted, verdict.rule) == (False, "negation")


class NoModelWithWords(NoModel):
    vocabulary = frozenset({"how", "do", "i", "reset", "rest", "my", "password", "not"})


def test_precheck_accepts_misspelt_repeats_without_the_model() -> None:
    model = NoModelWithWords()
    verifier = LearnedVerifier(model)
    verdict = verifier.precheck("how do i resett my pasword", "How do I reset my password?")
    assert verdict is not None and verdict.accepted and "misspell" in str(verdict.reason)
    # two real words ("rest" / "reset"), or a word added: the model decides
    assert verifier.precheck("how do i rest my password", "How do I reset my password?") is None
    assert verifier.precheck("how do i not reset my pasword", "How do I reset my password?") is None
    assert model.calls == []
    # switched off, or with no word list to tell real words from misspellings: the model decides
    assert LearnedVerifier(model, misspellings=False).precheck("how do i resett my pasword",
                                                              "How do I reset my password?") is None
    assert LearnedVerifier(NoModel()).precheck("how do i resett my pasword",
                                               "How do I reset my password?") is None
