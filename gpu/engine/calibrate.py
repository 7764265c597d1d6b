"""Calibrating an engine's quality gate on RAG prompts built from real text.

For each ratio r of a grid, the blend prefill is compared with a full prefill along the full
prefill's own greedy continuation: teacher-forced top-1 agreement and mean per-token
KL(full || reuse) in nats. The prompts are shuffled documentation chunks
(``pydoc_data.topics``) with a question about one of them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from semcache.gpu.engine.engine import Engine
from semcache.gpu.engine.quality_gate import (
    DEFAULT_FLOOR,
    DEFAULT_RATIOS,
    QualityGate,
    pick_ratio,
)

SYSTEM = "Answer the question using only the documents below."


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
