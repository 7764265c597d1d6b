"""Fresh variants of the training rows each epoch: noise that keeps a label, traps from hits.

- ``noisy``: a row with typos (1 to 3 edits), a filler word or a casing change on one side.
  The label stays: a trap with a typo is still a trap, so noise alone never signals a hit.
- ``synth_traps``: from a hit, the same pair with one word of one side turned into its
  opposite, or one number changed: the training word lists of ``datasets/pairs/traps.py``,
  and with ``opposites`` also the hand-written pairs of ``opposites.txt`` (none of them a
  held-out trap word).

Only the training templates of ``datasets/pairs/noise.py`` and ``traps.py`` are used; their
held-out lists stay unseen.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "datasets" / "pairs"))
import noise  # noqa: E402
import traps  # noqa: E402


def noisy(row: dict, rng: random.Random) -> dict:
    """``row`` with one side changed by typos, a filler word or casing; same label."""
    side = rng.choice(("cached", "query"))
    text = row[side]
    pick = rng.random()
    if pick < 0.6:
        text = noise.add_typos(text, rng.choice((1, 2, 2, 3)), rng, noise.TRAIN)
    elif pick < 0.8:
        text = noise.add_filler(text, rng, noise.TRAIN)[0]
    else:
        text = noise.recase(text, rng, noise.TRAIN)[0]
    return {**row, side: text}


OPPOSITES = Path(__file__).with_name("opposites.txt")


def opposite_rules(path: Path = OPPOSITES) -> list[traps.Rule]:
    """Both directions of each "a | b" line of ``path``."""
    pairs = [tuple(w.strip() for w in line.split("|")) for line in path.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return [("opposite", a, b) for a, b in pairs] + [("opposite", b, a) for a, b in pairs]


# "my" -> "our" rarely changes the answer ("my dog ate chocolate" / "our dog ..."), so it
# makes no synthetic trap; every other training rule does.
RULES = [r for r in traps.TRAIN_RULES if {r[1], r[2]} != {"my", "our"}]


def synth_trap(row: dict, rng: random.Random, rules: list[traps.Rule] = RULES) -> dict | None:
    """A trap made from the hit ``row`` by one opposite word or one changed number, or None."""
    side = rng.choice(("cached", "query"))
    text = row[side]
    options = [(kind, new) for kind, new, _ in traps.rule_traps(text, rules, rng)]
    number = traps.change_number(text, rng, heldout=False)
    if number is not None:
        options.append(("number_swap", number))
    if not options:
        return None
    kind, new = rng.choice(options)
    return {**row, side: new, "should_hit": False, "kind": "synth_" + kind}


def epoch_rows(rows: list[dict], rng: random.Random, noise_share: float,
               trap_share: float, opposites: bool = False) -> list[dict]:
    """The rows of one epoch: each row (noisy with probability ``noise_share``), plus a
    synthetic trap for a ``trap_share`` of the hits."""
    rules = RULES + opposite_rules() if opposites else RULES
    out = []
    for row in rows:
        out.append(noisy(row, rng) if rng.random() < noise_share else row)
        if row["should_hit"] and rng.random() < trap_share:
            trap = synth_trap(row, rng, rules)
            if trap is not None:
                out.append(noisy(trap, rng) if rng.random() < noise_share else trap)
    return out
