"""The labelled sets of issue 23's targets, as ``EvalRow`` lists, and the subsets reported.

- ``pairs_heldout``: ``datasets/pairs/heldout.jsonl`` (single questions, frozen held-out split);
- ``pairs_dev``: the dev rows of ``training/verifier/data.py`` ``load()`` (templated dev slice
  plus the hand-written dev groups), never trained on, so dev and held-out sit side by side;
- ``conversations_heldout`` / ``conversations_dev``: ``datasets/conversations``;
- the ``../shared/data`` sets (report only): GPTCache's mock pairs and vLLM Semantic Router's
  cases (should-hit only), and MeanCache's ``new_claude.json`` as conversation pairs.

Each set comes with its raw dicts, so subsets can use fields ``EvalRow`` drops (``typo_edits``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from semcache.tools.evaluate import EvalRow, parse_row

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

Labelled = tuple[list[EvalRow], list[dict[str, Any]]]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _labelled(raw: list[dict[str, Any]]) -> Labelled:
    return [parse_row(r, i) for i, r in enumerate(raw, 1)], raw


def dev_pairs() -> list[dict[str, Any]]:
    """The verifier's dev rows, exactly as training selects them (no held-out, no shared data)."""
    sys.path.insert(0, str(ROOT))
    from training.verifier.data import load

    _, dev = load()
    return dev


def shared_sets() -> dict[str, Labelled]:
    """The sets of ``../shared/data`` (missing ones are left out)."""
    out: dict[str, Labelled] = {}
    mock = SHARED / "gptcache_mock/mock_data.json"
    if mock.is_file():
        out["shared_gptcache_mock"] = _labelled([
            {"cached": m["origin"], "query": m["similar"], "should_hit": True, "kind": "paraphrase"}
            for m in json.loads(mock.read_text())])
    router = SHARED / "semantic_router_cases/cache_cases.json"
    if router.is_file():
        cases = json.loads(router.read_text())
        out["shared_semantic_router"] = _labelled([
            {"cached": case["original_question"], "query": para, "should_hit": True, "kind": "paraphrase"}
            for case in (cases if isinstance(cases, list) else cases.values())
            for para in case["similar_questions"]])
    if (SHARED / "meancache_contextual/new_claude.json").is_file():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from conversations import meancache_rows

        out["shared_meancache_new_claude"] = _labelled(meancache_rows())
    return out


def all_sets(shared: bool = True) -> dict[str, Labelled]:
    """Every set of the issue-23 report, held-out first."""
    sets = {
        "pairs_heldout": _labelled(_jsonl(ROOT / "datasets/pairs/heldout.jsonl")),
        "pairs_dev": _labelled(dev_pairs()),
        "conversations_heldout": _labelled(_jsonl(ROOT / "datasets/conversations/heldout.jsonl")),
        "conversations_dev": _labelled(_jsonl(ROOT / "datasets/conversations/dev.jsonl")),
    }
    if shared:
        sets.update(shared_sets())
    return sets


def typo_two_plus(labelled: Labelled) -> list[EvalRow]:
    """Typo'd repeats with two or more edits: ``kind == "typo"`` and ``typo_edits >= 2``."""
    rows, raw = labelled
    return [row for row, r in zip(rows, raw, strict=True)
            if r.get("kind") == "typo" and int(r.get("typo_edits") or 0) >= 2]


def is_conversation(rows: list[EvalRow]) -> bool:
    return any(r.history_cached or r.history_query for r in rows)


def last_user_message_only(rows: list[EvalRow]) -> list[EvalRow]:
    """The same pairs with every earlier turn dropped: the final user turn alone is matched."""
    return [EvalRow(r.cached, r.query, r.should_hit, r.category, r.kind) for r in rows]
