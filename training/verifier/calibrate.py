"""Thresholds for the pair model that hold on writers and domains the dev rows do not hold.

A threshold set at 1% wrong on the dev rows lets through more than 1% of the traps of a new
writer: their near-misses are worded in ways the model has not seen. ``shift_level`` measures
that gap on the dev rows themselves: for each writer in turn, the threshold is set on the
other writers' dev rows and the held-back writer's traps are counted. It returns the dev
wrong level whose held-back wrong rate, pooled over writers, stays within the target.
"""

from __future__ import annotations

import numpy as np
from train import threshold_at

LEVELS = (0.01, 0.0075, 0.005, 0.0035, 0.0025, 0.0015, 0.001, 0.0)


def held_back_wrong(scores: np.ndarray, labels: np.ndarray, groups: list[str],
                    level: float) -> float:
    """Pooled wrong rate on each group's traps, at the threshold set on the other groups."""
    groups_arr = np.array(groups)
    served = total = 0
    for g in sorted(set(groups)):
        rest, own = groups_arr != g, (groups_arr == g) & (labels == 0)
        if not own.any() or not (labels[rest] == 0).any():
            continue
        served += int((scores[own] >= threshold_at(scores[rest], labels[rest], level)["threshold"]).sum())
        total += int(own.sum())
    return served / total if total else 0.0


def shift_level(scores: np.ndarray, rows: list[dict], target: float = 0.01) -> dict:
    """The highest dev wrong level (of ``LEVELS``) whose held-back-writer wrong is <= target."""
    labels = np.array([r["should_hit"] for r in rows], dtype=np.int64)
    groups = [r.get("writer") or "templated" for r in rows]
    table = {level: held_back_wrong(scores, labels, groups, level) for level in LEVELS}
    level = next((lv for lv in LEVELS if table[lv] <= target), 0.0)
    return {"level": level, "held_back_wrong": {str(k): round(v, 4) for k, v in table.items()},
            "groups": sorted(set(groups))}
