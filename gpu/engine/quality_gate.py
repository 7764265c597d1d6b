"""Per-model quality gate for chunk reuse: the smallest recompute ratio that met a floor.

``semcache.gpu.engine.calibrate`` measures it; ``pick_ratio`` picks the smallest r of the grid
whose agreement meets the floor, else r = 1 (a full prefill) with ``met`` false. The gate is a
JSON file. The engine loads it at start, refuses to start when the gate was
calibrated for another model or other blend settings, and refuses requests (and a configured
default) asking for a ratio below the gate's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_FLOOR = 0.95
DEFAULT_RATIOS = (0.0, 0.05, 0.10, 0.15, 0.20, 0.30, 0.50, 1.0)
METRIC = "teacher_forced_top1_agreement"


@dataclass(frozen=True, slots=True)
class QualityGate:
    """The smallest recompute ratio meeting ``floor`` for ``model`` under blend ``design``."""

    model: str
    ratio: float
    floor: float
    met: bool
    design: dict[str, Any]
    agreement: dict[str, float] = field(default_factory=dict)  # str(r) -> mean agreement
    kl: dict[str, float] = field(default_factory=dict)  # str(r) -> mean per-token KL
    prompts: int = 0
    new_tokens: int = 0
    metric: str = METRIC

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"gate ratio must be in [0, 1], got {self.ratio}")
        if not 0.0 < self.floor <= 1.0:
            raise ValueError(f"gate floor must be in (0, 1], got {self.floor}")
        if self.metric != METRIC:
            raise ValueError(f"unknown gate metric {self.metric!r}, expected {METRIC!r}")

    def check(self, ratio: float) -> None:
        """Raise ``ValueError`` when ``ratio`` is below the gate."""
        if ratio < self.ratio - 1e-9:
            raise ValueError(
                f"recompute ratio {ratio} is below the quality gate {self.ratio} calibrated for "
                f"{self.model} (agreement floor {self.floor})")

    def check_design(self, model: str, design: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` unless the gate was calibrated for ``model`` and ``design``."""
        if model != self.model:
            raise ValueError(f"quality gate was calibrated for model {self.model!r}, not {model!r}")
        if dict(design) != self.design:
            raise ValueError(f"quality gate was calibrated with blend settings {self.design}, "
                             f"the engine uses {dict(design)}; recalibrate")

    def save(self, path: str | Path) -> None:
        """Write the gate as JSON (parent folders are created)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> QualityGate:
        """Read a gate file written by ``save``; ``ValueError`` on a malformed file."""
        try:
            data = json.loads(Path(path).read_text())
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"malformed quality gate file {path}: {exc}") from exc


def pick_ratio(agreement: Mapping[float, float], floor: float) -> tuple[float, bool]:
    """Smallest r whose agreement is ``>= floor``: ``(r, True)``, else ``(1.0, False)``."""
    if not agreement:
        raise ValueError("no ratios measured")
    for r in sorted(agreement):
        if agreement[r] >= floor:
            return float(r), True
    return 1.0, False
