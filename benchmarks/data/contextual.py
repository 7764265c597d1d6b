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

Records of the four other files are de-duplicated on (parent, follow-up) before
pooling; ``new_claude.json`` is used as published (it repeats 41 of its 124
records, so some of its rows occur more than once).

Label audit: for "same follow-up under another parent" rows, ``same_recorded_answer``
says whether the data records the very same follow-up answer under both parents
(10 of the 19: the two parents are rewordings of one question, e.g. "What are the
main principles of Confucianism?" / "What are the principles of Confucianism?"
before "What is Ren?"). The label stays ``should_hit: false``; benchmarks report
these rows apart so that a reader can tell label noise from real false hits.

Each row carries a ``split``: ``calibration`` or ``report``, from the parity of the
CRC-32 of its cached parent turn (``new_claude`` rows) or of its follow-up (rows of
the other files). Repeated records and all rows about one parent therefore land
in the same split. Thresholds of the context model may be calibrated on the
``calibration`` rows; the ``report`` rows are only measured.
"""

from __future__ import annotations

import json
import re
import zlib
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


def split_of(key: str) -> str:
    """``calibration`` or ``report``: a fixed function of the text, independent of any model."""
    return "calibration" if zlib.crc32(key.encode("utf-8")) % 2 == 0 else "report"


def _row(cached: str, query: str, hist_c: str, hist_q: str, hit: bool, kind: str,
         split_key: str) -> dict[str, Any]:
    return {"cached": cached, "query": query, "should_hit": hit, "kind": kind,
            "history_cached": [hist_c], "history_query": [hist_q], "split": split_of(split_key)}


def build_rows(folder: Path = SHARED) -> list[dict[str, Any]]:
    if not folder.is_dir():
        raise FileNotFoundError(f"MeanCache contextual data not found at {folder}")
    claude = json.loads((folder / "new_claude.json").read_text())
    rows: list[dict[str, Any]] = []
    for rec in claude:
        rows.append(_row(rec["u1"], rec["u1_duplicate"], rec["u0"], rec["u0_duplicate"], True,
                         "reworded_context", rec["u0"]))
    words = [_content_words(r["u0"]) for r in claude]
    for i, rec in enumerate(claude):
        j = (i + len(claude) // 2) % len(claude)
        while words[j] & words[i]:
            j = (j + 1) % len(claude)
        rows.append(_row(rec["u1"], rec["u1"], rec["u0"], claude[j]["u0"], False, "other_parent",
                         rec["u0"]))

    answers: dict[tuple[str, str], set[str]] = defaultdict(set)  # the recorded follow-up answers
    for name in OTHER_FILES:
        for rec in json.loads((folder / name).read_text()):
            key = (rec["Main Query"].strip(), rec["Follow-Up Query"].strip())
            answers[key].add(rec["Follow Up Query Response"].strip())
    by_follow_up: dict[str, list[str]] = defaultdict(list)
    for parent, follow_up in sorted(answers):
        by_follow_up[follow_up].append(parent)
    for follow_up, parent_list in sorted(by_follow_up.items()):
        for a, b in zip(parent_list, parent_list[1:], strict=False):
            if a != b:
                row = _row(follow_up, follow_up, a, b, False, "same_follow_up_other_parent", follow_up)
                # a label audit, not a label: the data records the very same answer to the
                # follow-up under both parents (the parents are rewordings of one question)
                row["same_recorded_answer"] = bool(answers[(a, follow_up)] & answers[(b, follow_up)])
                rows.append(row)
    return rows


def main() -> None:  # pragma: no cover
    import argparse
    import collections

    ap = argparse.ArgumentParser(description="Build the multi-turn rows (semcache eval format).")
    ap.add_argument("--out", type=Path, help="write the rows as JSON Lines here")
    ap.add_argument("--split", choices=("calibration", "report"), help="only this split")
    args = ap.parse_args()
    built = [r for r in build_rows() if args.split is None or r["split"] == args.split]
    if args.out is not None:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in built), encoding="utf-8")
    print(len(built), collections.Counter((r["kind"], r["should_hit"]) for r in built))
    print(collections.Counter((r["split"], r["kind"]) for r in built))


if __name__ == "__main__":  # pragma: no cover
    main()
