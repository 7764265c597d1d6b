"""The verifier's public surface: protocol, verdicts, errors and the word embedder hook."""

import numpy as np
import pytest

from semcache.types import Verdict
from semcache.verify import HardNegativeVerifier
from semcache.verify.base import Verifier

pytestmark = pytest.mark.unit


class TableEmbedder:
    """Word vectors from a fixed table: enough to exercise the synonym hook."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.calls = 0

    def embed(self, texts):
        self.calls += 1
        rows = np.array([self.table[t] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_implements_protocol():
    verifier = HardNegativeVerifier()
    assert isinstance(verifier, Verifier)
    verdict = verifier.verify("What is the capital of Peru?", "What is the capital of Peru?")
    assert isinstance(verdict, Verdict) and verdict.accepted


def test_every_rejection_has_reason_and_rule():
    verdict = HardNegativeVerifier().verify("Is 5 mg enough?", "Is 50 mg enough?")
    assert not verdict.accepted and verdict.reason and verdict.rule == "number"


@pytest.mark.parametrize(
    "category", ["code", "medical", "conversational", "other", "unknown-category"]
)
def test_category_does_not_flip_clear_cases(category):
    verifier = HardNegativeVerifier()
    assert not verifier.verify(
        "Disable the firewall", "Enable the firewall", category=category
    ).accepted
    assert verifier.verify("Enable the firewal", "Enable the firewall", category=category).accepted


def test_bad_arguments_raise():
    verifier = HardNegativeVerifier()
    with pytest.raises(TypeError, match="must be str"):
        verifier.verify(None, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="category"):
        verifier.verify("x", "y", category=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="embed"):
        HardNegativeVerifier(word_embedder=object())
    with pytest.raises(ValueError, match="synonym_similarity"):
        HardNegativeVerifier(synonym_similarity=0.0)
    with pytest.raises(ValueError, match="cache_size"):
        HardNegativeVerifier(cache_size=-1)


def test_word_embedder_turns_close_words_into_synonyms_and_caches():
    table = {"varnish": [1.0, 0.1], "lacquer": [1.0, 0.12], "whitewash": [0.0, 1.0]}
    embedder = TableEmbedder(table)
    verifier = HardNegativeVerifier(word_embedder=embedder, synonym_similarity=0.9)
    assert (
        verifier.verify("How do I lacquer a fence?", "How do I varnish a fence?").accepted is True
    )
    assert (
        verifier.verify("How do I whitewash a fence?", "How do I varnish a fence?").accepted
        is False
    )
    before = embedder.calls
    verifier.verify("How do I lacquer a fence?", "How do I varnish a fence?")
    assert embedder.calls == before  # the word pair's similarity was cached


def test_without_embedder_the_same_substitution_rejects():
    verdict = HardNegativeVerifier().verify(
        "How do I lacquer a fence?", "How do I varnish a fence?"
    )
    assert verdict.accepted is False
    assert verdict.rule == "content"
