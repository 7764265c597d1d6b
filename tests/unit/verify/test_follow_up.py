"""In-context (follow-up) judging: one-sided number/time/scope words in reworded follow-ups."""

import pytest

from semcache.verify import HardNegativeVerifier

pytestmark = pytest.mark.unit

# (cached follow-up, new follow-up): reworded throughout, with a number, time or scope word
# on one side only. These are MeanCache follow-ups whose earlier turns matched.
REWORDED = [
    ("name some famous figures", "notable people from that period"),
    ("what does DNA stand for", "full form of DNA"),
    ("which dynasty built most sections", "main dynasty responsible for its construction"),
    ("What happens to traits that are advantageous?",
     "How do beneficial characteristics change in a population over time?"),
]

# the same shapes as hard negatives: a value replaced, or a word added to a kept follow-up
STILL_DIFFERENT = [
    ("What does the first law say?", "What does the second law say?", "scope"),
    ("What is the law?", "What is the second law?", "scope"),
    ("What are its side effects?", "What are its side effects after 2 weeks?", "number"),
    ("What was the population in 2019?", "What is the population in 2021?", "number"),
    ("How many people lived there?", "How many people lived there yesterday?", "time"),
    ("Is it open today?", "Was it open yesterday?", "time"),
    ("How do I enable debug logging?", "How do I enable debug logging for only one app?", "scope"),
    ("Is it safe to take?", "Is it not safe to take?", "negation"),
]


@pytest.mark.parametrize(("cached", "query"), REWORDED, ids=[q for _, q in REWORDED])
def test_reworded_follow_up_passes_in_context_only(cached, query):
    verifier = HardNegativeVerifier()
    in_context = verifier.verify(query, cached, in_context=True)
    assert in_context.accepted, in_context.reason
    assert "follow-up rewording:" in in_context.reason  # the tolerated word is named
    alone = verifier.verify(query, cached)
    assert not alone.accepted and alone.rule in ("number", "time", "scope")


@pytest.mark.parametrize(("cached", "query", "rule"), STILL_DIFFERENT,
                         ids=[q for _, q, _ in STILL_DIFFERENT])
def test_changed_follow_up_still_misses_in_context(cached, query, rule):
    verdict = HardNegativeVerifier().verify(query, cached, in_context=True)
    assert not verdict.accepted and verdict.rule == rule, verdict


def test_present_time_word_on_one_side_is_the_default_time():
    verifier = HardNegativeVerifier()
    cached, query = "how many member states are there", "current number of member states"
    verdict = verifier.verify(query, cached, in_context=True)
    assert verdict.accepted and "time reference added: now" in verdict.reason
    assert not verifier.verify(query, cached).accepted  # a single-turn question stays strict


def test_operator_is_not_tolerated():
    verdict = HardNegativeVerifier().verify(
        "Which concept is described by Einstein's most well-known formula?",
        "What does the famous equation E=mc² represent?", in_context=True)
    assert not verdict.accepted and verdict.reason.startswith("operator changed")
