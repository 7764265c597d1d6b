"""Serialise hand-written verifier pairs into datasets/pairs/written/assistant.jsonl.

Reads pairs written by hand in a compact line format on stdin and appends them as JSON rows:
  "@ category domain"            sets the category and domain of the rows below it
  "+kind | cached | query"       a hit (the cached answer may be served)
  "-kind | cached | query"       a miss (a trap: the answer differs)
Blank lines and lines starting with "#" are skipped. Nothing is generated: every sentence is
written out in full by hand; this script only checks and serialises. Exact duplicates of rows
already in the file are refused.
"""
import json
import sys
from pathlib import Path

from pair_schema import CATEGORIES, HIT_KINDS, MISS_KINDS

OUT = Path(__file__).with_name("assistant.jsonl")


def parse(lines):
    """Turn the compact lines into row dicts; raise ValueError on a malformed line."""
    rows, category, domain = [], None, None
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            category, domain = line[1:].split()
            if category not in CATEGORIES:
                raise ValueError(f"line {n}: bad category {category}")
            continue
        sign, rest = line[0], line[1:]
        kind, cached, query = (part.strip() for part in rest.split("|"))
        hit = sign == "+"
        if sign not in "+-" or kind not in (HIT_KINDS if hit else MISS_KINDS):
            raise ValueError(f"line {n}: bad sign/kind {sign}{kind}")
        if not cached or not query or cached == query:
            raise ValueError(f"line {n}: empty or identical sides")
        rows.append({"cached": cached, "query": query, "should_hit": hit, "category": category,
                     "kind": kind, "domain": domain, "template": "written", "split": "train",
                     "writer": "assistant"})
    return rows


def main():
    seen = set()
    if OUT.exists():
        for line in OUT.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            seen.add((row["cached"], row["query"]))
    new = []
    for row in parse(sys.stdin.read().splitlines()):
        key = (row["cached"], row["query"])
        if key in seen:
            print(f"duplicate skipped: {key}", file=sys.stderr)
            continue
        seen.add(key)
        new.append(row)
    with OUT.open("a", encoding="utf-8") as f:
        for row in new:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"appended {len(new)} rows; file now has {len(seen)}")


if __name__ == "__main__":
    main()
