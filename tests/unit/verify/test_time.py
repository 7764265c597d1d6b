"""Time rule: a different day, week or year is a different question."""

import pytest

from semcache.verify.time import time_expressions

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("Is it going to snow in Denver today?", "Is it going to snow in Denver tomorrow?"),
        ("What were the top songs this week?", "What were the top songs last year?"),
        ("Who is the current CEO of Intel?", "Who was the previous CEO of Intel?"),
        ("Is the pharmacy open on Sunday?", "Is the pharmacy open on Monday?"),
        ("What happened in the markets yesterday?", "What happened in the markets this morning?"),
        ("Traffic on the bridge tonight", "Traffic on the bridge last night"),
    ],
)
def test_time_shift_rejects(verifier, cached, query):
    verdict = verifier.verify(query, cached)
    assert not verdict.accepted
    assert verdict.rule == "time"


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("What is the price of gold right now?", "What's the current price of gold?"),
        ("Any plans for this weekend?", "Any plans for the weekend?"),
        ("Is the library open today?", "Is the libary open today?"),
    ],
)
def test_same_time_passes(verifier, cached, query):
    assert verifier.verify(query, cached).accepted


def test_time_expressions():
    assert time_expressions("delete the last 3 commits".split()) == []
    assert time_expressions("what happened last night".split()) == ["last night"]
    assert time_expressions("what is the weather today's".split()) == ["today"]
    assert time_expressions("currently and right-now".split()) == ["now", "now"]
