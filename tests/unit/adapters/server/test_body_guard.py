"""The body checks: depth, lone surrogates and UTF-8, with the cheap path left alone."""

from __future__ import annotations

import json

import pytest
from semcache.adapters.server.body_guard import body_problem, json_problem

from semcache.storage.bounds import MAX_AGE_S, clamp_age_s, cutoff, is_id, retention_age_s

pytestmark = pytest.mark.unit


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_depth_is_counted_through_objects_and_lists() -> None:
    assert json_problem(json.loads(_nested(64))) is None
    assert "deeper than 64" in (json_problem(json.loads(_nested(65))) or "")
    assert "deeper than 2" in (json_problem({"a": [{"b": 1}]}, max_depth=2) or "")
    assert json_problem({"a": [{"b": 1}]}, max_depth=3) is None
    assert "deeper than" in (body_problem(_nested(5000).encode()) or "")  # past the parser's own limit


def test_lone_surrogates_are_refused_in_values_and_keys_but_pairs_are_not() -> None:
    assert "surrogate" in (body_problem(b'{"content": "a \\ud800 b"}') or "")
    assert "surrogate" in (body_problem(b'{"\\udfff": 1}') or "")
    assert body_problem('{"x": "\ud800"}'.encode("utf-8", "surrogatepass")) == "request body is not valid UTF-8"
    assert body_problem(b'{"content": "smile \\ud83d\\ude00"}') is None
    assert body_problem(b'{"content": "\\\\ud800 is only text"}') is None  # an escaped backslash


def test_ordinary_and_malformed_bodies_pass_to_the_handler() -> None:
    assert body_problem(json.dumps({"messages": [{"role": "user", "content": "hi"}] * 100}).encode()) is None
    assert body_problem(b"{not json") is None  # the handler answers its own 400
    assert body_problem(b"\xff\xfe") == "request body is not valid UTF-8"


def test_store_bounds_clamp_instead_of_overflowing() -> None:
    import datetime as dt

    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert cutoff(now, float("inf")).year == 1970 and cutoff(now, 1e308).year == 1970
    assert cutoff(now, 60) == now - dt.timedelta(seconds=60)
    assert clamp_age_s(float("nan")) == 0.0 and clamp_age_s(1e300) == MAX_AGE_S
    assert retention_age_s(10**12) == 36_600 * 86400.0 and retention_age_s(None) is None
    assert is_id(1) and not is_id(0) and not is_id(2**63) and not is_id(True)
