"""Geometry for the dashboard's inline SVG bar charts (the template draws them, escaped)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

WIDTH, HEIGHT, PAD = 640, 180, 24
MAX_DAYS = 30


def day_bars(by_day: Mapping[str, Mapping[str, Any]], field: str) -> dict[str, Any]:
    """Bars of ``field`` for the last ``MAX_DAYS`` days of ``by_day`` (ISO date -> counters)."""
    days = sorted(by_day)[-MAX_DAYS:]
    values = [float(by_day[d][field]) for d in days]
    top = max(values, default=0.0) or 1.0
    slot = (WIDTH - 2 * PAD) / max(1, len(days))
    bars = []
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        height = (HEIGHT - 2 * PAD) * value / top
        bars.append({"x": round(PAD + i * slot + slot * 0.15, 1), "y": round(HEIGHT - PAD - height, 1),
                     "w": round(slot * 0.7, 1), "h": round(height, 1), "day": day, "value": value})
    return {"width": WIDTH, "height": HEIGHT, "pad": PAD, "bars": bars, "top": top, "field": field}
