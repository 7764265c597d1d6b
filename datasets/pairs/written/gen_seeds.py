"""Serialise hand-written verifier pairs from compact seed blocks into WRITER.jsonl.

Input (stdin), one seed per block:
    @ <domain> <category> <seed question>
    h <kind> | <other question>      (a hit: same answer for both)
    m <kind> | <other question>      (a trap: a different answer is needed)
Every pair is seed + other; which side is "cached" alternates row by row so both
orders appear. Nothing is generated: each sentence is written by hand; this script only
checks and serialises. The writers ``support``, ``hobbies`` and ``services`` wrote this way
(``assistant`` used its own line format, ``gen_assistant.py``).
Usage: python gen_seeds.py WRITER < batch.txt   (appends, refuses duplicates)
"""

import json
import sys
from pathlib import Path

from pair_schema import CATEGORIES, DOMAINS, HIT_KINDS, MISS_KINDS

SEED_WRITERS = ("support", "hobbies", "services")  # the writers of this block format


def parse(text: str, writer: str) -> list[dict]:
    """Turn the compact blocks into row dicts; raise on any malformed line."""
    rows, seed, n = [], None, 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            _, domain, category, question = line.split(" ", 3)
            if category not in CATEGORIES or domain not in DOMAINS[writer]:
                raise ValueError(f"unknown category or domain: {line}")
            seed, n = (domain, category, question.strip()), 0
            continue
        if seed is None:
            raise ValueError(f"a pair before any @ seed line: {line}")
        head, other = line.split("|", 1)
        label, kind = head.split()
        hit = label == "h"
        if label not in ("h", "m") or kind not in (HIT_KINDS if hit else MISS_KINDS):
            raise ValueError(f"bad label or kind: {line}")
        domain, category, question = seed
        pair = (question, other.strip()) if n % 2 == 0 else (other.strip(), question)
        n += 1
        rows.append({"cached": pair[0], "query": pair[1], "should_hit": hit,
                     "category": category, "kind": kind, "domain": domain,
                     "template": "written", "split": "train", "writer": writer})
    return rows


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in SEED_WRITERS:
        sys.exit(f"usage: python gen_seeds.py {{{','.join(SEED_WRITERS)}}} < batch.txt")
    writer = sys.argv[1]
    out = Path(__file__).with_name(f"{writer}.jsonl")
    seen = set()
    if out.exists():
        seen = {(r["cached"], r["query"]) for r in map(json.loads, out.read_text().splitlines())}
    new = parse(sys.stdin.read(), writer)
    for row in new:  # check the whole batch before writing any of it
        key = (row["cached"], row["query"])
        if key in seen or key[0] == key[1]:
            sys.exit(f"duplicate pair, or the same text on both sides: {key}")
        seen.add(key)
    with out.open("a") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in new)
    print(f"appended {len(new)} rows, total {len(seen)}")


if __name__ == "__main__":
    main()
