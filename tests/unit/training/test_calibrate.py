"""The held-back-writer margin for the pair model's thresholds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "training" / "verifier"))
import calibrate  # noqa: E402


def _rows(writer: str, hits: int, traps: int) -> list[dict]:
    return [{"writer": writer, "should_hit": True}] * hits + [{"writer": writer, "should_hit": False}] * traps


def test_a_writer_whose_traps_score_high_lowers_the_level() -> None:
    rng = np.random.default_rng(0)
    rows, scores = [], []
    for writer, trap_top in (("a", 0.5), ("b", 0.5), ("c", 0.95)):
        rows += _rows(writer, 100, 100)
        scores += list(rng.uniform(0.9, 1.0, 100)) + list(rng.uniform(0.0, trap_top, 100))
    found = calibrate.shift_level(np.array(scores), rows)
    # writer c's traps reach 0.95: thresholds set on a and b serve many of them at any level
    # above zero, and only the strictest levels keep the pooled wrong rate at 1%
    assert found["held_back_wrong"]["0.01"] > 0.01
    assert found["level"] < 0.01
    assert found["groups"] == ["a", "b", "c"]


def test_writers_alike_keep_a_level_near_one_percent() -> None:
    rng = np.random.default_rng(1)
    rows, scores = [], []
    for writer in "abcd":
        rows += _rows(writer, 200, 200)
        scores += list(rng.uniform(0.6, 1.0, 200)) + list(rng.uniform(0.0, 0.5, 200))
    found = calibrate.shift_level(np.array(scores), rows)
    # with no shift between writers a held-back writer sees about the dev level itself
    assert found["held_back_wrong"]["0.01"] <= 0.02
    assert found["level"] >= 0.0075
