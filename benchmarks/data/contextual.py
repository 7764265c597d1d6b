"""Multi-turn evaluation rows built from MeanCache's contextual sets (../shared/data).

Rows follow the ``semcache eval`` format with one earlier user turn each:

* **hit** (``new_claude.json``): the follow-up under its parent, looked up as the
  reworded follow-up under the reworded parent;
* **miss, same follow-up under another parent**: records that share a follow-up
  text with different parents (e.g. "What are its types?" after inflation and
  after volcanoes), across all files;
* **miss, other parent**: each ``new_claude`` follow-up under the parent of the
  next record, at least half the file away, whose parent shares no content word
  with its own (a fixed lexical rule: no model involved, so the set does not
  depend on the embedder under test; the file repeats some parents, which must
  not be paired with themselves).

Records are de-duplicated on (parent, follow-up) before pooling.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "meancache_contextual"
OTHER_FILES = ("d1.json", "contextual_queries.json", "Synthetic_Dataset_Diverse.json", "context2.json")


_STOP = frozenset("a an the of in on to for and or is are was were what how why who which when "
                  "does do did can could you me tell explain describe about its it this that with "
                  "main key some".split())


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP}


def _row(cached: str, query: str, hist_c: str, hist_q: str, hit: bool, kind: str) -> dict[str, Any]:
    return {"cached": cached, "query": query, "should_hit": hit, "kind": kind,
            "history_cached": [hist_c], "history_query": [hist_q]}


def build_rows(folder: Path = SHARED) -> list[dict[str, Any]]:
    if not folder.is_dir():
        raise FileNotFoundError(f"MeanCache contextual data not found at {folder}")
    claude = json.loads((folder / "new_claude.json").read_text())
    rows: list[dict[str, Any]] = []
    for rec in claude:
        rows.append(_row(rec["u1"], rec["u1_duplicate"], rec["u0"], rec["u0_duplicate"], True,
                         "reworded_context"))
    words = [_content_words(r["u0"]) for r in claude]
    for i, rec in enumerate(claude):
        j = (i + len(claude) // 2) % len(claude)
        while words[j] & words[i]:
            j = (j + 1) % len(claude)
        rows.append(_row(rec["u1"], rec["u1"], rec["u0"], claude[j]["u0"], False, "other_parent"))

    pairs: set[tuple[str, str]] = set()
    for name in OTHER_FILES:
        for rec in json.loads((folder / name).read_text()):
            pairs.add((rec["Main Query"].strip(), rec["Follow-Up Query"].strip()))
    by_follow_up: dict[str, list[str]] = defaultdict(list)
    for parent, follow_up in sorted(pairs):
        by_follow_up[follow_up].append(parent)
    for follow_up, parent_list in sorted(by_follow_up.items()):
        for a, b in zip(parent_list, parent_list[1:], strict=False):
            if a != b:
                rows.append(_row(follow_up, follow_up, a, b, False, "same_follow_up_other_parent"))
    return rows


if __name__ == "__main__":  # pragma: no cover
    import collections

    built = build_rows()
    print(len(built), collections.Counter((r["kind"], r["should_hit"]) for r in built))
