"""The blend's settings (``BlendConfig``) and the design a quality gate is calibrated for."""

from __future__ import annotations

from dataclasses import dataclass

from semcache.gpu.chunks.anchor import ANCHOR_VERSION
from semcache.gpu.ops.dispatch import IMPLS

SCORES = ("k", "v", "kv")
SELECTS = ("query", "deviation")


@dataclass(frozen=True, slots=True)
class BlendConfig:
    """Selective-recompute settings (``docs/design/gpu_blend.md`` gives the exact accounting).

    ``ratio``: share of chunk tokens recomputed after the check layer. ``check_layer``: the layer
    whose K/V are compared or from which only selected tokens are carried (None: 0 for
    ``select="query"``, 1 for ``"deviation"``). ``score``: the deviation score's parts.
    ``boundary_tokens``: first tokens of each chunk always recomputed. ``impl``: ops dispatch.
    """

    ratio: float = 0.15
    check_layer: int | None = None
    select: str = "query"
    score: str = "kv"  # the deviation score (select="deviation", or no question tokens)
    boundary_tokens: int = 0
    impl: str = "auto"

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"ratio must be in [0, 1], got {self.ratio}")
        if self.select not in SELECTS:
            raise ValueError(f"select must be one of {SELECTS}, got {self.select!r}")
        if self.check_layer is None:
            object.__setattr__(self, "check_layer", default_check_layer(self.select))
        if self.check_layer < 0:
            raise ValueError(f"check_layer must be >= 0, got {self.check_layer}")
        if self.check_layer == 0 and self.select == "deviation":
            raise ValueError("select='deviation' needs check_layer >= 1: layer-0 K/V have no "
                             "context, so cached and fresh K/V are equal there")
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {self.score!r}")
        if self.boundary_tokens < 0:
            raise ValueError(f"boundary_tokens must be >= 0, got {self.boundary_tokens}")
        if self.impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {self.impl!r}")

    @property
    def layer(self) -> int:
        """The check layer, resolved (``__post_init__`` fills None in)."""
        assert self.check_layer is not None
        return self.check_layer


def default_check_layer(select: str) -> int:
    """0 for query selection (layer-0 K/V are context-free, so cached ones are exact), else 1."""
    return 0 if select == "query" else 1


def blend_design(check_layer: int, select: str, score: str, boundary_tokens: int,
                 anchor: str = ANCHOR_VERSION) -> dict[str, object]:  # fmt: skip
    """The settings a quality gate is calibrated for (``anchor``: ``anchor.anchor_version``)."""
    return {"check_layer": check_layer, "select": select, "score": score,
            "boundary_tokens": boundary_tokens, "anchor": anchor}
