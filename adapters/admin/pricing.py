"""A configurable price table: what a model's tokens cost, to turn saved tokens into money."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


class PriceTable:
    """USD per 1,000 tokens for each model, with a default for models not listed."""

    def __init__(self, per_1k_tokens: Mapping[str, float] | None = None, *, default: float = 0.0) -> None:
        prices = dict(per_1k_tokens or {})
        for model, price in [*prices.items(), ("default", default)]:
            if not isinstance(model, str) or not model:
                raise ValueError(f"price table keys must be model names, got {model!r}")
            if isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price) \
                    or price < 0:
                raise ValueError(f"price of {model!r} must be a finite number >= 0 (USD per 1K tokens), "
                                 f"got {price!r}")
        self.prices = {k: float(v) for k, v in prices.items()}
        self.default = float(default)

    @classmethod
    def from_file(cls, path: str | Path) -> PriceTable:
        """Load ``{default: 0.001, models: {name: price}}`` from a YAML (or JSON) file."""
        data: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(data, Mapping) or set(data) - {"default", "models"}:
            raise ValueError(f"{path}: expected a mapping with 'default' and 'models'")
        return cls(data.get("models") or {}, default=data.get("default", 0.0))

    def price(self, model: str) -> float:
        """USD per 1,000 tokens of ``model``."""
        return self.prices.get(model, self.default)

    def cost(self, model: str, tokens: int) -> float:
        """What ``tokens`` tokens of ``model`` cost."""
        return self.price(model) * tokens / 1000.0
