"""Serialise hand-written hobby pairs from a compact text block into hobbies.jsonl.

Input (stdin), one seed per block:
    @ <domain> <category> <seed question>
    h <kind> | <other question>      (a hit: same answer for both)
    m <kind> | <other question>      (a trap: a different answer is needed)
Every pair is seed + other; which side is "cached" alternates row by row so both
orders appear. Nothing is generated: each sentence is written by hand.
Usage: python gen_hobbies.py < batch.txt   (appends, refuses duplicates)
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).with_name("hobbies.jsonl")
DOMAINS = {"gaming", "music", "movies_tv", "photography", "fitness", "outdoors"}
CATEGORIES = {"support", "code", "factual", "medical", "howto", "conversational", "math", "other"}
HIT_KINDS = {"paraphrase", "synonym", "register", "filler", "typo", "typo_paraphrase",
             "casing", "reorder", "abbreviation"}
MISS_KINDS = {"negation", "antonym", "entity_swap", "number", "unit", "scope", "time",
              "direction", "role", "condition", "specificity", "related", "reworded_trap"}


def parse(text: str) -> list[dict]:
    """Turn the compact block into row dicts; raise on any malformed line."""
    rows, seed, n = [], None, 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            _, domain, category, question = line.split(" ", 3)
            assert category in CATEGORIES and domain in DOMAINS, line
            seed, n = (domain, category, question.strip()), 0
            continue
        head, other = line.split("|", 1)
        label, kind = head.split()
        hit = label == "h"
        assert label in ("h", "m") and kind in (HIT_KINDS if hit else MISS_KINDS), line
        domain, category, question = seed
        pair = (question, other.strip()) if n % 2 == 0 else (other.strip(), question)
        n += 1
        rows.append({"cached": pair[0], "query": pair[1], "should_hit": hit,
                     "category": category, "kind": kind, "domain": domain,
                     "template": "written", "split": "train", "writer": "hobbies"})
    return rows


def main() -> None:
    seen = set()
    if OUT.exists():
        seen = {(r["cached"], r["query"]) for r in map(json.loads, OUT.read_text().splitlines())}
    new = parse(sys.stdin.read())
    for row in new:  # check the whole batch before writing any of it
        key = (row["cached"], row["query"])
        assert key not in seen and key[0] != key[1], key
        seen.add(key)
    with OUT.open("a") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in new)
    print(f"appended {len(new)} rows, total {len(seen)}")


if __name__ == "__main__":
    main()
