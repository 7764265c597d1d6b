"""Per-model quality gate for chunk reuse: calibrate the recompute ratio, save it, enforce it.

``calibrate`` measures, on RAG prompts built from real text (``pydoc_data.topics``), how often
the blend prefill at ratio r agrees with a full prefill: teacher-forced top-1 agreement along full
prefill's own greedy continuation (and the mean per-token KL(full || reuse) in nats). It picks
the smallest r of the grid whose mean agreement meets the floor; if none does, the gate is r = 1
(every chunk token recomputed, which equals a full prefill) and ``met`` is false.

The gate is a JSON file. The engine loads it at start, refuses to start when the gate was
calibrated for another model or other blend settings, and refuses requests (and a configured
default) asking for a ratio below the gate's.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from semcache.gpu.engine.engine import Engine

DEFAULT_FLOOR = 0.95
DEFAULT_RATIOS = (0.0, 0.05, 0.10, 0.15, 0.20, 0.30, 0.50, 1.0)
METRIC = "teacher_forced_top1_agreement"
SYSTEM = "Answer the question using only the documents below."


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


@dataclass(frozen=True, slots=True)
class CalibrationPrompt:
    system: str
    chunks: tuple[str, ...]
    question: str


def calibration_prompts(n: int, chunks_per_prompt: int = 4, chunk_words: int = 90,
                        seed: int = 0) -> list[CalibrationPrompt]:
    """``n`` RAG prompts of shuffled documentation chunks and a question about one of them.

    Chunks are the first ``chunk_words`` words of documentation topics (``pydoc_data.topics``),
    headed by the topic name; the question quotes a phrase of one chunk. Deterministic in ``seed``.
    """
    if n < 1 or chunks_per_prompt < 1:
        raise ValueError(f"need n >= 1 and chunks_per_prompt >= 1, got {n}, {chunks_per_prompt}")
    from pydoc_data.topics import topics

    pool = []
    for name in sorted(topics):
        words = re.sub(r"\s+", " ", topics[name]).split(" ")
        if len(words) >= chunk_words + 10:
            pool.append((name, " ".join(words[:chunk_words])))
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        picked = rng.sample(pool, chunks_per_prompt)
        name, body = rng.choice(picked)
        words = body.split(" ")
        at = rng.randrange(0, max(1, len(words) - 8))
        phrase = " ".join(words[at:at + 6])
        chunks = tuple(f'Document "{t}":\n{b}' for t, b in picked)
        question = (f'In the document "{name}", what does the passage containing "{phrase}" '
                    f"explain? Answer in two sentences.")
        out.append(CalibrationPrompt(SYSTEM, chunks, question))
    return out


@torch.inference_mode()
def measure(engine: Engine, prompt: CalibrationPrompt, ratios: Sequence[float],
            new_tokens: int = 32) -> dict[float, tuple[float, float]]:
    """Per ratio: (teacher-forced agreement, mean KL) of the blend prefill against full prefill."""
    messages = [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.question}]
    layout = engine.layout(messages, chunks=prompt.chunks)
    runner = engine.runner
    logits, kv = runner.prefill(layout.token_ids)
    rows, cont = [logits], [int(logits.argmax())]
    while len(cont) < new_tokens:
        logits = runner.decode_step(cont[-1], kv)
        rows.append(logits)
        cont.append(int(logits.argmax()))
    ref = torch.log_softmax(torch.stack(rows), dim=-1)
    target = torch.tensor(cont, device=ref.device)
    out = {}
    for r in ratios:
        res = engine.blender.prefill(list(layout.segments), engine.config.blend(float(r)))
        assert res.logits is not None
        parts = [res.logits[None]]
        if len(cont) > 1:
            parts.append(runner.extend(cont[:-1], res.kv, all_logits=True))
        logp = torch.log_softmax(torch.cat(parts), dim=-1)
        agree = float((logp.argmax(-1) == target).float().mean())
        kl = max(0.0, float((ref.exp() * (ref - logp)).sum(-1).mean()))  # float noise at r = 1
        out[float(r)] = (agree, kl)
    return out


def calibrate(engine: Engine, ratios: Sequence[float] = DEFAULT_RATIOS, prompts: int = 16,
              floor: float = DEFAULT_FLOOR, new_tokens: int = 32, seed: int = 0,
              progress: Callable[[int, int], None] | None = None) -> QualityGate:
    """Measure agreement over ``prompts`` calibration prompts for each ratio and build the gate."""
    grid = sorted({float(r) for r in ratios})
    if not grid or any(not 0.0 <= r <= 1.0 for r in grid):
        raise ValueError(f"ratios must be a non-empty list of numbers in [0, 1], got {list(ratios)}")
    if not 0.0 < floor <= 1.0:
        raise ValueError(f"floor must be in (0, 1], got {floor}")
    if new_tokens < 1:
        raise ValueError(f"new_tokens must be >= 1, got {new_tokens}")
    sums = {r: [0.0, 0.0] for r in grid}
    items = calibration_prompts(prompts, seed=seed)
    for i, p in enumerate(items):
        for r, (agree, kl) in measure(engine, p, grid, new_tokens).items():
            sums[r][0] += agree
            sums[r][1] += kl
        if progress is not None:
            progress(i + 1, len(items))
    agreement = {r: s[0] / len(items) for r, s in sums.items()}
    ratio, met = pick_ratio(agreement, floor)
    return QualityGate(
        model=engine.name, ratio=ratio, floor=floor, met=met, design=engine.blend_design(),
        agreement={str(r): round(a, 4) for r, a in agreement.items()},
        kl={str(r): round(s[1] / len(items), 5) for r, s in sums.items()},
        prompts=len(items), new_tokens=new_tokens)
