"""``LearnedVerifier``: the shipped pair model decides, per-category thresholds, rule vetoes, one
model call per lookup."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from semcache.verify.base import Verifier
from semcache.verify.learned import LearnedVerifier
from semcache.verify.pair_model import PairModel

pytestmark = pytest.mark.unit

TYPO = ("How can I change my delivery address?", "how can i change my delivry address")
NUMBER = ("How many calories are in 2 boiled eggs?", "How many calories are in 5 boiled eggs?")
NEGATED = ("Can I bring a folding bike on the train?", "Can I not bring a folding bike on the train?")
PARAPHRASE = ("How long should I boil an egg for a runny yolk?",
              "For a soft yolk, how many minutes do eggs need in boiling water?")


class CountingModel:
    """The real shipped model, counting how often it is called and with how many pairs."""

    def __init__(self, model: PairModel) -> None:
        self.model, self.config, self.calls = model, model.config, []

    @property
    def threshold(self) -> float:
        return self.model.threshold

    def score(self, pairs: Any) -> np.ndarray:
        self.calls.append(len(pairs))
        return self.model.score(pairs)


@pytest.fixture(scope="module")
def pair_model() -> PairModel:
    return PairModel.load()


@pytest.fixture
def counting(pair_model: PairModel) -> CountingModel:
    return CountingModel(pair_model)


def test_is_a_verifier_and_scores_candidates_in_one_call(counting: CountingModel) -> None:
    verifier = LearnedVerifier(counting, rules=False)
    assert isinstance(verifier, Verifier)
    query = TYPO[1]
    cached = [TYPO[0], NUMBER[0], NEGATED[0], PARAPHRASE[0], "What is the capital of France?"]
    results = verifier.verify_many(query, cached, category="support")
    assert counting.calls == [5]
    direct = counting.model.score([(c, query) for c in cached])
    np.testing.assert_allclose([s for s, _ in results], direct, atol=1e-6)
    accepted = [v.accepted for _, v in results]
    assert accepted == [bool(s >= counting.threshold) for s in direct] and accepted[0]
    assert not all(accepted)  # a constant or broken model would take (or refuse) them all


def test_repeated_pairs_come_from_the_lru(counting: CountingModel) -> None:
    verifier = LearnedVerifier(counting)
    verifier.verify(TYPO[1], TYPO[0])
    verifier.verify_many(TYPO[1], [TYPO[0], NUMBER[0]])
    assert counting.calls == [1, 1]  # only the new pair was scored
    uncached = LearnedVerifier(counting, cache_size=0)
    uncached.verify(TYPO[1], TYPO[0])
    uncached.verify(TYPO[1], TYPO[0])
    assert counting.calls == [1, 1, 1, 1]


def test_category_threshold_then_the_global_one(pair_model: PairModel) -> None:
    score = pair_model.score([PARAPHRASE])[0]
    assert score < pair_model.threshold  # the shipped model is strict on this paraphrase
    verifier = LearnedVerifier(pair_model, thresholds={"factual": float(score) - 0.01})
    assert verifier.threshold("factual") == pytest.approx(float(score) - 0.01)
    assert verifier.threshold("code") == pytest.approx(pair_model.threshold)
    assert verifier.verify(PARAPHRASE[1], PARAPHRASE[0], category="factual").accepted
    refused = verifier.verify(PARAPHRASE[1], PARAPHRASE[0], category="code")
    assert not refused.accepted and refused.rule == "model" and "below" in str(refused.reason)
    assert LearnedVerifier(pair_model, threshold=0.0).verify(PARAPHRASE[1], PARAPHRASE[0]).accepted
    # a given threshold replaces the model's per-category ones too, unless thresholds are given
    assert pair_model.config.thresholds  # the shipped model has some
    assert all(LearnedVerifier(pair_model, threshold=0.3).threshold(c) == 0.3 for c in pair_model.config.thresholds)
    both = LearnedVerifier(pair_model, threshold=0.3, thresholds={"factual": 0.6})
    assert (both.threshold("factual"), both.threshold("howto")) == (0.6, 0.3)


@pytest.mark.parametrize(("pair", "rule"), [(NUMBER, "number"), (NEGATED, "negation")], ids=["number", "negation"])
def test_principled_rules_veto_what_the_model_would_take(pair_model: PairModel, pair: tuple[str, str],
                                                         rule: str) -> None:
    # a threshold of 0 accepts every score, so only the rule can refuse
    vetoing = LearnedVerifier(pair_model, threshold=0.0)
    verdict = vetoing.verify(pair[1], pair[0])
    assert not verdict.accepted and verdict.rule == rule
    assert LearnedVerifier(pair_model, threshold=0.0, rules=False).verify(pair[1], pair[0]).accepted


def test_rules_do_not_veto_a_typo(pair_model: PairModel) -> None:
    assert LearnedVerifier(pair_model, threshold=0.0).verify(TYPO[1], TYPO[0]).accepted


def test_bad_arguments(pair_model: PairModel) -> None:
    with pytest.raises(ValueError, match="thresholds"):
        LearnedVerifier(pair_model, threshold=1.5)
    with pytest.raises(ValueError, match="cache_size"):
        LearnedVerifier(pair_model, cache_size=-1)
    with pytest.raises(TypeError):
        LearnedVerifier(pair_model).verify_many("q", [b"bytes"])  # type: ignore[list-item]


def test_shipped_model_loads_by_default() -> None:
    verifier = LearnedVerifier().load()
    assert 0.0 < verifier.threshold() < 1.0
    assert verifier.verify(TYPO[1], TYPO[0]).accepted


def test_per_category_thresholds_come_from_the_model_config() -> None:
    from dataclasses import replace

    model = PairModel.load()
    score = float(model.score([PARAPHRASE])[0])
    model.config = replace(model.config, thresholds={"factual": score - 0.01})
    verifier = LearnedVerifier(model)
    assert verifier.threshold("factual") == pytest.approx(score - 0.01)
    assert verifier.threshold("code") == pytest.approx(model.threshold)
    assert verifier.verify(PARAPHRASE[1], PARAPHRASE[0], category="factual").accepted
    assert not verifier.verify(PARAPHRASE[1], PARAPHRASE[0], category="code").accepted
