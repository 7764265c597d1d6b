"""Sampling parameters, next-token choice and incremental detokenisation with stop strings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

MAX_STOPS = 4


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to pick tokens: greedy at ``temperature == 0``, else nucleus sampling."""

    max_tokens: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be an int >= 1, got {self.max_tokens!r}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if len(self.stop) > MAX_STOPS or any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError(f"stop must be up to {MAX_STOPS} non-empty strings, got {self.stop!r}")

    def generator(self, device: torch.device) -> torch.Generator | None:
        """A seeded generator when ``seed`` is set (sampling is then reproducible)."""
        if self.seed is None or self.temperature == 0.0:
            return None
        gen = torch.Generator(device=device)
        gen.manual_seed(self.seed)
        return gen


def next_token(logits: Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """Pick the next token from ``logits [V]``: argmax at temperature 0, else top-p sampling."""
    if params.temperature == 0.0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < params.top_p  # always keeps the top one
        sorted_p = torch.where(keep, sorted_p, torch.zeros_like(sorted_p))
        pick = torch.multinomial(sorted_p / sorted_p.sum(), 1, generator=generator)
        return int(order[pick])
    return int(torch.multinomial(probs, 1, generator=generator))


@dataclass(slots=True)
class TextStream:
    """Turns generated token ids into text deltas, cutting at the first stop string.

    Text is decoded from all ids each step (so multi-byte characters split across tokens come
    out whole), and the last ``len(longest stop) - 1`` characters are held back until they can no
    longer start a stop string.
    """

    tokenizer: Any
    stop: tuple[str, ...] = ()
    ids: list[int] = field(default_factory=list)
    text: str = ""
    emitted: int = 0
    stopped: bool = False

    def push(self, token_id: int) -> str:
        """Add a token; return the newly final text (possibly empty)."""
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for more
            return ""
        self.text = text
        hold = max((len(s) for s in self.stop), default=1) - 1
        hits = [at for s in self.stop if (at := text.find(s, max(0, self.emitted - len(s) + 1))) != -1]
        if hits:
            self.stopped = True
            self.text = text[: max(min(hits), self.emitted)]
            return self._take(len(self.text))
        return self._take(max(self.emitted, len(text) - hold))

    def flush(self) -> str:
        """The held-back remainder, once generation has ended without a stop string."""
        return self._take(len(self.text))

    def _take(self, upto: int) -> str:
        out = self.text[self.emitted:upto]
        self.emitted = max(self.emitted, upto)
        return out
