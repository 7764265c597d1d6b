import numpy as np
import pytest

from semcache.context import ContextMatcher
from semcache.types import Verdict

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
