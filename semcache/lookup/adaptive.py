"""Online threshold adaptation from wrong-hit feedback (in the spirit of vCache).

Every served semantic hit is remembered with its similarity. When a hit is
reported wrong, the category's threshold is moved to the smallest value at
which the observed error rate of hits at or above it has a one-sided 95%
Wilson upper bound within ``error_bound`` — i.e. we only trust a threshold for
which the evidence says errors are rare. With no wrong report, nothing moves:
absence of feedback is not evidence of a problem. Thresholds only tighten here;
an operator loosens them through the policy editor.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass


def wilson_upper(errors: int, n: int, z: float = 1.645) -> float:
    """One-sided upper confidence bound of an error rate (z=1.645: 95%)."""
    if n == 0:
        return 1.0
    p = errors / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + margin) / denom)


@dataclass(frozen=True, slots=True)
class Adjustment:
    category: str
    old: float
    new: float
    reason: str


class AdaptiveThresholds:
    """Per-category threshold floors learnt from feedback on served hits."""

    def __init__(self, error_bound: float = 0.02, *, window: int = 5000, step: float = 0.005,
                 on_change: Callable[[Adjustment], None] | None = None) -> None:
        if not 0.0 < error_bound < 1.0:
            raise ValueError(f"error_bound must be in (0, 1), got {error_bound!r}")
        self.error_bound = error_bound
        self.step = step
        self._on_change = on_change
        self._lock = threading.Lock()
        self._hits: dict[str, deque[list]] = defaultdict(lambda: deque(maxlen=window))
        self._floor: dict[str, float] = {}
        self._served_as: dict[int, str] = {}  # entry id -> category of its latest semantic hit

    def floor(self, category: str) -> float | None:
        return self._floor.get(category)

    def threshold(self, category: str, base: float, ceiling: float) -> float:
        """The threshold to use: the policy's, raised to the learnt floor, capped at ``ceiling``."""
        floor = self._floor.get(category)
        return base if floor is None else min(ceiling, max(base, floor))

    def observe_hit(self, category: str, entry_id: int, similarity: float) -> None:
        with self._lock:
            self._hits[category].append([entry_id, float(similarity), False])
            self._served_as[entry_id] = category

    def category_of(self, entry_id: int) -> str | None:
        """The category under which ``entry_id`` was last served as a semantic hit."""
        return self._served_as.get(entry_id)

    def report_wrong(self, category: str, entry_id: int, similarity: float | None, *,
                     base: float, ceiling: float) -> Adjustment | None:
        """Record a wrong hit and tighten the category's threshold if the evidence demands it."""
        with self._lock:
            hits = self._hits[category]
            marked = False
            for rec in reversed(hits):
                if rec[0] == entry_id and not rec[2] and (similarity is None or abs(rec[1] - similarity) < 1e-6):
                    rec[2] = marked = True
                    break
            if not marked:
                if similarity is None:
                    return None
                hits.append([entry_id, float(similarity), True])
            old = self.threshold(category, base, ceiling)
            new = self._solve(list(hits), base, ceiling)
            if new <= old:
                return None
            self._floor[category] = new
        adjustment = Adjustment(category, old, new,
                                f"wrong-hit feedback: error bound {self.error_bound:.3f} needs >= {new:.3f}")
        if self._on_change is not None:
            self._on_change(adjustment)
        return adjustment

    def _solve(self, hits: list[list], base: float, ceiling: float) -> float:
        """Smallest threshold >= base whose hits' error upper bound is within the bound."""
        sims = sorted({round(h[1], 6) for h in hits if h[1] >= base})
        for candidate in [base, *[s for s in sims if s > base]]:
            above = [h for h in hits if h[1] >= candidate]
            errors = sum(1 for h in above if h[2])
            # no observed error above a threshold needs no further evidence
            if errors == 0 or wilson_upper(errors, len(above)) <= self.error_bound:
                return candidate
        worst = max((h[1] for h in hits if h[2]), default=base)
        return min(ceiling, worst + self.step)
