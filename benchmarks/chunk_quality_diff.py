"""Compare two ``chunk_quality.py`` runs prompt by prompt, bit for bit.

``BASE`` is one run; ``AFTER`` is one run or its shards in shard order (``--shard i/n`` runs,
shard ``i`` holding prompts ``i, i+n, ...``). The prompts both hold are compared: every metric of
every prompt and ratio must be equal, and so the means over them.

    python benchmarks/chunk_quality_diff.py BASE.json AFTER_0.json [AFTER_1.json ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chunk_quality import aggregate  # noqa: E402


def main(base_path: str, *after_paths: str) -> bool:
    base = json.loads(Path(base_path).read_text())["per_prompt"]
    shards = [json.loads(Path(p).read_text())["per_prompt"] for p in after_paths]
    after = {r: {i + j * len(shards): row for i, s in enumerate(shards) for j, row in enumerate(s[r])}
             for r in base}  # fmt: skip
    n = 0
    while all(n in after[r] and n < len(base[r]) for r in base):
        n += 1
    same = True
    for r in base:
        a, b = aggregate(base[r][:n]), aggregate([after[r][i] for i in range(n)])
        rows_equal = all(base[r][i] == after[r][i] for i in range(n))
        same &= rows_equal and a == b
        print(f"r={r:>5}  agreement {a['agreement']!r} / {b['agreement']!r}  "
              f"kl {a['kl']!r} / {b['kl']!r}  identical={rows_equal and a == b}")
    print(f"{n} prompts compared: {'bit-identical' if same else 'DIFFERENT'}")
    return same


if __name__ == "__main__":
    sys.exit(0 if main(*sys.argv[1:]) else 1)
