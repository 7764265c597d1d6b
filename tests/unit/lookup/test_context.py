import hashlib

import numpy as np
import pytest

from semcache.cache import SemanticCache
from semcache.lookup.context import ContextMatcher
from semcache.lookup.policies import PolicySet
from semcache.tools.calibrate import calibrate_context
from semcache.tools.evaluate import EvalRow
from semcache.types import Verdict
from semcache.verify import HardNegativeVerifier
from semcache.verify.base import PassThroughVerifier

pytestmark = pytest.mark.unit


class RejectNumbers:
    """A verifier that rejects when digits differ (enough to test the hook)."""

    def verify(self, query, cached, *, category="other", in_context=False):
        digits = lambda s: [c for c in s if c.isdigit()]  # noqa: E731
        ok = digits(query) == digits(cached)
        return Verdict(ok, None if ok else "number changed", None if ok else "number")


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_no_history_on_either_side_matches():
    assert ContextMatcher().match((), None, (), None).ok


def test_length_mismatch_misses_with_reason():
    m = ContextMatcher().match(("a",), unit([[1, 0]]), (), None)
    assert not m.ok and "length differs" in m.reason


def test_similar_turns_match_dissimilar_turns_miss():
    cm = ContextMatcher(threshold=0.8)
    q = np.stack([unit([1, 0.1])])
    close, far = np.stack([unit([1, 0])]), np.stack([unit([0, 1])])
    assert cm.match(("who is obama",), q, ("tell me about obama",), close).ok
    miss = cm.match(("who is obama",), q, ("who is macron",), far)
    assert not miss.ok and "earlier turn 1 differs" in miss.reason


def test_verifier_runs_on_earlier_turns():
    cm = ContextMatcher(RejectNumbers(), threshold=0.5)
    v = np.stack([unit([1, 0])])
    assert cm.match(("dose for 10 kg",), v, ("dose for 10 kg child",), v).ok
    miss = cm.match(("dose for 10 kg",), v, ("dose for 20 kg",), v)
    assert not miss.ok and "number changed" in miss.reason


def test_only_the_last_turns_are_compared():
    cm = ContextMatcher(threshold=0.9, max_turns=1)
    assert cm.window(["a", "b", "c"]) == ("c",)
    v_same = np.stack([unit([1, 0])])
    assert cm.match(("x", "c"), v_same, ("y", "c"), v_same).ok


def test_bad_arguments():
    with pytest.raises(ValueError):
        ContextMatcher(threshold=0)
    with pytest.raises(ValueError):
        ContextMatcher(max_turns=0)


def test_with_threshold_keeps_verifier_and_window():
    verifier = RejectNumbers()
    cm = ContextMatcher(verifier, threshold=0.7, max_turns=2).with_threshold(0.5)
    assert cm.threshold == 0.5 and cm.verifier is verifier and cm.max_turns == 2
    with pytest.raises(ValueError):
        cm.with_threshold(1.5)


# -- earlier turns through the real hard-negative verifier -------------------------------------

def test_reworded_earlier_turn_matches_with_the_real_verifier():
    cm = ContextMatcher(HardNegativeVerifier(), threshold=0.5)
    v = np.stack([unit([1, 0])])
    ok = cm.match(("Tell me about the Renaissance period.",), v,
                  ("What are the key features of the Renaissance?",), v)
    assert ok.ok, ok.reason


def test_changed_number_or_entity_in_an_earlier_turn_misses():
    cm = ContextMatcher(HardNegativeVerifier(), threshold=0.5)
    v = np.stack([unit([1, 0])])
    number = cm.match(("What was the population of France in 2021?",), v,
                      ("What was the population of France in 2019?",), v)
    assert not number.ok and "earlier turn 1: number changed" in number.reason
    entity = cm.match(("What are the main features of Baroque art?",), v,
                      ("What are the main features of Renaissance art?",), v)
    assert not entity.ok and "entity changed" in entity.reason


# -- calibrate_context --------------------------------------------------------------------------

class HashEmbedder:
    """Bag of hashed words: cosine grows with shared words; no model."""

    name, version, dim = "hash-words", "1", 256

    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace("?", " ").split():
                out[row, int(hashlib.sha1(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        out[:, 0] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def embed_one(self, text):
        return self.embed([text])[0]


def _row(parent_cached, parent_query, should_hit):
    return EvalRow("how tall is it", "how tall is it", should_hit,
                   history_cached=(parent_cached,), history_query=(parent_query,))


@pytest.fixture
def loose_cache(tmp_path):
    """A cache whose candidate gate is low and whose verifier accepts all: only the
    context threshold decides, which is what calibrate_context sweeps."""
    base = PolicySet.from_file(None)
    policies = base.with_overrides({name: {"threshold": 0.3, "min_threshold": 0.3} for name, _ in base.items()})
    with SemanticCache(f"sqlite:///{tmp_path / 'c.db'}", embedder=HashEmbedder(), stats_interval=0,
                       policies=policies, verifier=PassThroughVerifier()) as cache:
        yield cache


def test_calibrate_context_separates_reworded_from_other_parents(loose_cache):
    hits = [_row("tell me about the eiffel tower", "tell me about the eiffel tower in paris", True),
            _row("describe the great wall of china", "describe the great wall of china today", True)]
    misses = [_row("tell me about the eiffel tower", "tell me about the roman empire", False),
              _row("describe the great wall of china", "describe the river nile", False)]
    original = loose_cache.context
    threshold, report = calibrate_context(loose_cache, hits + misses)
    emb = HashEmbedder()

    def cos(row):
        a, b = emb.embed([row.history_cached[0], row.history_query[0]])
        return float(a @ b)

    # the chosen threshold keeps every reworded parent and drops every other parent
    assert max(cos(r) for r in misses) < threshold <= min(cos(r) for r in hits)
    assert report["chosen"]["accuracy"] == 1.0
    assert loose_cache.context is original  # restored after the sweep
    # ties go to the higher threshold: precision first
    best = [c["threshold"] for c in report["curve"] if c["accuracy"] == 1.0]
    assert threshold == max(best)


def test_calibrate_context_needs_multi_turn_rows(loose_cache):
    with pytest.raises(ValueError, match="history"):
        calibrate_context(loose_cache, [EvalRow("a", "a", True)])
