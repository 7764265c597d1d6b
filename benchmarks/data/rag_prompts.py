"""RAG prompts built from real text that ships with Python (``pydoc_data.topics``).

Each documentation topic is split at blank lines and the paragraphs are packed into chunks of
``min_tokens..max_tokens`` tokens (measured with the model's tokenizer, chunk text plus the
separator the prompt builder appends). Every chunk starts with a source line naming its topic and
part, so a question can point at one chunk. A prompt holds ``chunks_per_prompt`` chunks drawn from
a pool in shuffled order and a question about one of them (quoting a phrase from it), so the
answer depends on that specific chunk. Everything is deterministic given ``seed``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

SYSTEM = ("You are a helpful assistant for Python programmers. Answer the question using only "
          "the reference documents below.")


@dataclass(frozen=True, slots=True)
class RagPrompt:
    system: str
    chunks: tuple[str, ...]
    question: str
    target: int  # index in ``chunks`` of the chunk the question is about


def _paragraphs(text: str) -> list[str]:
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]


def chunk_pool(tokenizer: Any, min_tokens: int = 110, max_tokens: int = 165,
               separator: str = "\n\n") -> list[str]:
    """Chunks of real documentation text, each ``min_tokens..max_tokens`` tokens long."""
    from pydoc_data.topics import topics

    def ntok(text: str) -> int:
        return len(tokenizer.encode(text + separator, add_special_tokens=False))

    pool: list[str] = []
    for topic in sorted(topics):
        part, body = 1, []
        for para in _paragraphs(topics[topic]):
            if len(para) > 4 * max_tokens:  # very long paragraphs (tables, grammar) are skipped
                continue
            candidate = body + [para]
            header = f'Source: Python reference, topic "{topic}", part {part}.'
            if ntok("\n".join([header, *candidate])) > max_tokens:
                if body and ntok("\n".join([header, *body])) >= min_tokens:
                    pool.append("\n".join([header, *body]))
                    part += 1
                body = [para]
            else:
                body = candidate
        header = f'Source: Python reference, topic "{topic}", part {part}.'
        if body and min_tokens <= ntok("\n".join([header, *body])) <= max_tokens:
            pool.append("\n".join([header, *body]))
    return pool


def _question(chunk: str, rng: random.Random) -> str:
    header, _, body = chunk.partition("\n")
    source = header.removeprefix("Source: Python reference, ").rstrip(".")
    sentences = [s.strip() for s in re.split(r"(?<=[.:])\s+", body.replace("\n", " "))
                 if len(s.split()) >= 8 and not s.strip().startswith(">>>")]
    if not sentences:
        return f"Summarise what the document ({source}) explains, in two sentences."
    words = rng.choice(sentences).split()
    phrase = " ".join(words[: min(len(words), 7)])
    return (f'According to the document ({source}), what does the passage starting with '
            f'"{phrase}" explain? Answer in two sentences.')


def rag_prompts(tokenizer: Any, n: int, chunks_per_prompt: int = 6, pool_size: int = 240,
                seed: int = 0) -> list[RagPrompt]:
    """``n`` prompts of ``chunks_per_prompt`` shuffled chunks from a pool of ``pool_size``."""
    pool = chunk_pool(tokenizer)
    rng = random.Random(seed)
    if len(pool) > pool_size:
        pool = rng.sample(pool, pool_size)
    if len(pool) < chunks_per_prompt:
        raise ValueError(f"pool has {len(pool)} chunks, need {chunks_per_prompt}")
    prompts = []
    for _ in range(n):
        chunks = rng.sample(pool, chunks_per_prompt)  # random order = shuffled placement
        target = rng.randrange(chunks_per_prompt)
        prompts.append(RagPrompt(SYSTEM, tuple(chunks), _question(chunks[target], rng), target))
    return prompts
