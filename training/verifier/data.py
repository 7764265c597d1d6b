"""The verifier's training and dev rows, from the project's own data only.

- ``datasets/pairs/train.jsonl``: templated pairs; ``split`` says train or dev.
- ``datasets/pairs/written/*.jsonl``: hand-written pairs. Rows that share a question are one
  group (union-find over the normalised texts), and whole groups go to dev by CRC-32, so no
  question of a dev row is trained on.
- ``datasets/conversations/dev.jsonl``: the final turns of conversation pairs whose wording the
  pair model can judge: should-hit pairs with different final wording, and changed follow-ups
  under the same earlier turns. Traps that lie only in the earlier turns are the context
  logic's, and their identical final turns would teach the model nothing true.
- ``benchmarks/data/hardneg_dev.jsonl``: older hand-written pairs, training only.
- Misspelled questions against other questions (``typo_negatives``): each side of a training
  typo hit, paired with a question of another group of the same domain, is a miss, so
  misspellings never make two different questions look the same.

Never reads a held-out split or ``../shared/data``.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAIRS = ROOT / "datasets/pairs/train.jsonl"
WRITTEN = ROOT / "datasets/pairs/written"
CONVERSATIONS = ROOT / "datasets/conversations/dev.jsonl"
HARDNEG = ROOT / "benchmarks/data/hardneg_dev.jsonl"
DEV_SHARE = 15  # percent of written groups kept for dev


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _groups(rows: list[dict]) -> list[str]:
    """A group key per row: the smallest normalised text connected to it."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in rows:
        a, b = find(_norm(r["cached"])), find(_norm(r["query"]))
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [find(_norm(r["cached"])) for r in rows]


def written_rows() -> tuple[list[dict], list[dict]]:
    """(train, dev) of the hand-written pairs, split by question group."""
    rows = [r for path in sorted(WRITTEN.glob("*.jsonl")) for r in read_jsonl(path)]
    train, dev = [], []
    for row, group in zip(rows, _groups(rows), strict=True):
        (dev if zlib.crc32(group.encode()) % 100 < DEV_SHARE else train).append(row)
    return train, dev


TYPO_KINDS = frozenset({"typo", "typo_paraphrase", "paraphrase_typo"})


def typo_negatives(rows: list[dict], seed: int = 23) -> list[dict]:
    """Misses: both sides of every typo hit, each against a question of another group."""
    rng = random.Random(seed)
    groups = _groups(rows)
    by_domain: dict[str, list[tuple[str, str]]] = {}
    for r, g in zip(rows, groups, strict=True):
        by_domain.setdefault(r.get("domain") or "?", []).append((g, r["cached"]))
    out = []
    for r, g in zip(rows, groups, strict=True):
        if not r["should_hit"] or r.get("kind") not in TYPO_KINDS:
            continue
        pool = by_domain[r.get("domain") or "?"]
        for side in ("cached", "query"):
            for _ in range(10):
                other_group, other = rng.choice(pool)
                if other_group != g:
                    out.append({"cached": other, "query": r[side], "should_hit": False,
                                "category": r.get("category", "other"), "kind": "typo_other_question",
                                "domain": r.get("domain")})
                    break
    return out


def conversation_rows() -> list[dict]:
    out = []
    for r in read_jsonl(CONVERSATIONS):
        same_final = _norm(r["cached"]) == _norm(r["query"])
        same_context = r["history_cached"] == r["history_query"]
        if (r["should_hit"] and not same_final) or (not r["should_hit"] and same_context and not same_final):
            out.append({"cached": r["cached"], "query": r["query"], "should_hit": r["should_hit"],
                        "category": r["category"], "kind": "conversation:" + r["kind"]})
    return out


def templated_rows(pairs: Path = PAIRS) -> tuple[list[dict], list[dict]]:
    """(train, dev) of the templated pairs, by their ``split``."""
    rows = read_jsonl(pairs)
    return ([r for r in rows if r.get("split", "train") == "train"],
            [r for r in rows if r.get("split") == "dev"])


def dev_rows(written: bool = True, pairs: Path = PAIRS) -> list[dict]:
    """The dev rows alone (what export and benchmarks calibrate on): templated, then written."""
    dev = templated_rows(pairs)[1]
    return dev + written_rows()[1] if written and WRITTEN.is_dir() else dev


def load(written: bool = True, conversations: bool = True, hardneg: bool = True,
         typo_misses: bool = True, pairs: Path = PAIRS) -> tuple[list[dict], list[dict]]:
    """(train, dev) rows in the ``semcache eval`` format."""
    train, dev = templated_rows(pairs)
    if written and WRITTEN.is_dir():
        w_train, w_dev = written_rows()
        train, dev = train + w_train, dev + w_dev
    if conversations:
        train += conversation_rows()
    if hardneg:
        train += read_jsonl(HARDNEG)
    if typo_misses:
        train += typo_negatives(train)
    return train, dev
