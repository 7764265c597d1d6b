"""Online adaptation, by simulation: a stream of lookups with known wrong hits fed back."""

import random

import pytest

from semcache.lookup.adaptive import AdaptiveThresholds, wilson_upper

pytestmark = pytest.mark.unit


def test_wilson_upper_bound_shrinks_with_evidence():
    assert wilson_upper(0, 0) == 1.0
    assert wilson_upper(1, 10) > wilson_upper(10, 100) > wilson_upper(100, 1000) > 0.1
    assert wilson_upper(0, 1000) < 0.01


def simulate(adaptive, *, n=6000, base=0.80, ceiling=0.99, seed=7):
    """Similarities are uniform in [base, 1); hits below 0.9 are wrong 30% of the time."""
    rng = random.Random(seed)
    served = []  # (index, wrong)
    for i in range(n):
        similarity = base + rng.random() * (1 - base)
        if similarity < adaptive.threshold("code", base, ceiling):
            continue  # a miss
        wrong = similarity < 0.9 and rng.random() < 0.3
        adaptive.observe_hit("code", i, similarity)
        if wrong:
            adaptive.report_wrong("code", i, similarity, base=base, ceiling=ceiling)
        served.append((i, wrong))
    return served


def test_error_rate_stays_within_bound_and_threshold_tightens():
    bound = 0.02
    adaptive = AdaptiveThresholds(error_bound=bound)
    served = simulate(adaptive)
    # Without adaptation the wrong-hit rate at the base threshold would be 0.3 * 0.5 = 15%.
    later = served[len(served) // 2:]
    rate = sum(w for _, w in later) / len(later)
    assert rate <= bound, rate
    overall = sum(w for _, w in served) / len(served)
    assert overall < 0.05, overall
    assert adaptive.threshold("code", 0.80, 0.99) >= 0.88
    assert len(later) > 500  # still serving hits: it did not just shut the category


def test_nothing_moves_without_wrong_reports_and_ceiling_is_respected():
    adaptive = AdaptiveThresholds(error_bound=0.02)
    for i in range(100):
        adaptive.observe_hit("math", i, 0.9)
    assert adaptive.threshold("math", 0.85, 0.95) == 0.85
    adj = adaptive.report_wrong("math", 5, None, base=0.85, ceiling=0.95)
    # every hit sat at 0.9 and one was wrong: only just above 0.9 is safe
    assert adj is not None and adj.new == pytest.approx(0.905)
    assert adaptive.threshold("math", 0.85, 0.95) == pytest.approx(0.905)
    assert adaptive.category_of(5) == "math"
    adaptive.observe_hit("math", 200, 0.948)
    adj = adaptive.report_wrong("math", 200, 0.948, base=0.85, ceiling=0.95)
    assert adj is not None and adj.new == 0.95  # capped at the policy's ceiling


def test_rare_errors_within_bound_do_not_tighten():
    adaptive = AdaptiveThresholds(error_bound=0.05)
    for i in range(1000):
        adaptive.observe_hit("factual", i, 0.86 + (i % 100) / 1000)
    assert adaptive.report_wrong("factual", 500, None, base=0.85, ceiling=0.99) is None
    assert adaptive.threshold("factual", 0.85, 0.99) == 0.85


def test_bad_bound():
    with pytest.raises(ValueError):
        AdaptiveThresholds(error_bound=0)
