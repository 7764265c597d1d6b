"""The verifier's per-epoch augmentation: noise keeps labels, synthetic traps change one thing."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "training" / "verifier"))
import augment  # noqa: E402

HIT = {"cached": "How do I enable dark mode on my phone?", "query": "how to turn on dark mode",
       "should_hit": True, "category": "howto", "kind": "paraphrase"}


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def test_noise_keeps_the_label_and_one_side() -> None:
    rng = random.Random(0)
    for row in (HIT, {**HIT, "should_hit": False, "kind": "negation"}):
        for _ in range(50):
            out = augment.noisy(row, rng)
            assert out["should_hit"] == row["should_hit"] and out["kind"] == row["kind"]
            assert out["cached"] == row["cached"] or out["query"] == row["query"]


def test_synthetic_trap_changes_one_word_or_number_and_flips_the_label() -> None:
    rng = random.Random(1)
    made = [augment.synth_trap(HIT, rng) for _ in range(40)]
    assert all(t is not None for t in made)
    for trap in made:
        assert trap["should_hit"] is False and trap["kind"].startswith("synth_")
        side = "cached" if trap["cached"] != HIT["cached"] else "query"
        before, after = _words(HIT[side]), _words(trap[side])
        assert len(set(before) ^ set(after)) <= 4, (before, after)  # "turn on" -> "turn off"
    # no opposite word and no number: no trap
    assert augment.synth_trap({**HIT, "cached": "Why is the sky blue?", "query": "why's the sky blue"},
                              rng) is None


def test_opposites_hold_no_held_out_trap_word() -> None:
    rules = augment.opposite_rules()
    assert len(rules) >= 300 and all(kind == "opposite" for kind, _, _ in rules)
    held_out = {w.lower() for _, a, b in augment.traps.HELDOUT_RULES for w in (a, b)
                if w.lower() not in {"my", "today", "this week", "this year", "last night", "tonight",
                                      "hours", "minutes", "dollars", "first", "each"}}
    assert not held_out & {w.lower() for _, a, b in rules for w in (a, b)}


def test_my_and_our_make_no_trap() -> None:
    rng = random.Random(2)
    row = {**HIT, "cached": "My dog ate chocolate, help", "query": "help, my dog ate chocolate"}
    assert all(augment.synth_trap(row, rng) is None for _ in range(20))


def test_epoch_rows_adds_traps_only_from_hits() -> None:
    rng = random.Random(3)
    miss = {**HIT, "should_hit": False, "kind": "negation"}
    assert len(augment.epoch_rows([miss] * 20, rng, 0.0, 1.0)) == 20
    assert len(augment.epoch_rows([HIT] * 20, rng, 0.0, 1.0)) == 40


def test_opposites_only_when_asked() -> None:
    row = {**HIT, "cached": "How do I open the file?", "query": "how to open the file"}
    assert augment.epoch_rows([row] * 10, random.Random(4), 0.0, 1.0) == [row] * 10
    made = augment.epoch_rows([row] * 10, random.Random(4), 0.0, 1.0, opposites=True)
    assert len(made) == 20 and any("close" in r["cached"] + r["query"] for r in made)
