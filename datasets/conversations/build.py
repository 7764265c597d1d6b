"""Build the labelled conversation pairs from a split's domains and phrasing templates.

Each row is one judgement: may the answer cached for conversation A (``history_cached`` +
``cached``) be served for conversation B (``history_query`` + ``query``)? Rows also label
whether each final user turn refers back (``cached_refers_back``, ``query_refers_back``).
The two splits share this builder but no domain and no phrasing template: see DATA_CARD.md.

    python datasets/conversations/build.py heldout   # writes heldout.jsonl
    python datasets/conversations/build.py dev       # writes dev.jsonl
"""

from __future__ import annotations

import importlib
import json
import random
import sys
from itertools import combinations
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
Turn = dict[str, str]


def u(text: str) -> Turn:
    return {"role": "user", "content": text}


def a(text: str) -> Turn:
    return {"role": "assistant", "content": text}


def t(text: str) -> Turn:
    return {"role": "tool", "content": text}


def row(hc: list[Turn], cached: str, hq: list[Turn], query: str, hit: bool, kind: str,
        dom: dict[str, Any], back: tuple[bool, bool]) -> dict[str, Any]:
    return {"history_cached": hc, "cached": cached, "history_query": hq, "query": query,
            "should_hit": hit, "category": dom["category"], "kind": kind, "domain": dom["name"],
            "cached_refers_back": back[0], "query_refers_back": back[1]}


def request_conv(dom: dict[str, Any], slots: dict[str, str], offer: int, *, reworded: bool = False
                 ) -> list[Turn]:
    """The user's request, an optional tool result, and the assistant's status + offer."""
    req = dom["request"][1 if reworded else 0].format(**slots)
    status = dom["status"][1 if reworded else 0].format(**slots)
    conv = [u(req)]
    if dom.get("tool"):
        conv.append(t(dom["tool"].format(**slots)))
    conv.append(a(f"{status} {dom['offers'][offer][1 if reworded else 0].format(**slots)}"))
    return conv


def slots_of(dom: dict[str, Any], i: int, spec: Any) -> dict[str, str]:
    items, nums, dates = dom["items"], spec.NUMBERS, spec.DATES
    return {"item": items[i % len(items)], "n": nums[i % len(nums)][0],
            "n_rw": nums[i % len(nums)][1], "date": dates[i % len(dates)][0],
            "date_rw": dates[i % len(dates)][1]}


def traps(dom: dict[str, Any], spec: Any, rng: random.Random, other: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    base = slots_of(dom, 0, spec)
    yes = spec.CONFIRM
    for k, (o1, o2) in enumerate(combinations(range(len(dom["offers"])), 2)):
        for c in (yes[k % len(yes)][0], yes[(k + 1) % len(yes)][1], yes[(k + 2) % len(yes)][0]):
            out.append(row(request_conv(dom, base, o1), c, request_conv(dom, base, o2), c, False,
                           "flipped_offer", dom, (True, True)))
    for field, i in (("item", 1), ("item", 2), ("n", 1), ("n", 2), ("date", 1), ("date", 3),
                     ("item", 3), ("n", 3), ("date", 2)):
        other_slots = dict(base)
        swapped = slots_of(dom, i, spec)
        other_slots[field] = swapped[field]
        other_slots[field + "_rw"] = swapped.get(field + "_rw", swapped[field])
        c = rng.choice(spec.ACT_ON)
        out.append(row(request_conv(dom, base, i % 3), c, request_conv(dom, other_slots, i % 3), c,
                       False, f"swapped_{field}", dom, (True, True)))
    lists = dom["lists"]
    for j, ordinal in enumerate(spec.ORDINAL[:3]):
        l1, l2 = lists[j % len(lists)], lists[(j + 1) % len(lists)]
        ask = dom["list_ask"][0]
        out.append(row([u(ask), a(dom["list_reply"].format(*l1))], ordinal,
                       [u(ask), a(dom["list_reply"].format(*l2))], ordinal, False,
                       "ordinal_other_list", dom, (True, True)))
    topics = dom["topics"]
    for j, ell in enumerate(spec.ELLIPSIS[:3]):
        d1, d2 = spec.DAYS[j], spec.DAYS[j + 3]
        t1, t2 = topics[0], topics[1 + j % (len(topics) - 1)]
        e = ell.format(day=d2)
        out.append(row([u(t1[0].format(day=d1)), a(t1[1].format(day=d1))], e,
                       [u(t2[0].format(day=d1)), a(t2[1].format(day=d1))], e, False,
                       "ellipsis_other_topic", dom, (True, True)))
    follow, parents = dom["same_follow_up"]
    for (p1, r1), (p2, r2) in zip(parents, parents[1:], strict=False):
        out.append(row([u(p1), a(r1)], follow, [u(p2), a(r2)], follow, False,
                       "same_follow_up_other_parent", dom, (True, True)))
    for j in range(3):
        c = spec.CONFIRM[j][0]
        out.append(row(request_conv(dom, base, j), c, request_conv(other, slots_of(other, j, spec), j), c,
                       False, "swapped_context", dom, (True, True)))
    for j, change in enumerate(spec.CHANGE[:2]):
        n1, n2 = spec.NUMBERS[j], spec.NUMBERS[j + 2]
        out.append(row(request_conv(dom, base, 0), change.format(n=n1[0]),
                       request_conv(dom, base, 0), change.format(n=n2[0]), False,
                       "changed_follow_up", dom, (True, True)))
    return out


def hits(dom: dict[str, Any], spec: Any, rng: random.Random, other: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for j, (q, q_rw) in enumerate(dom["standalone"]):
        unrelated = request_conv(other, slots_of(other, j, spec), j % 3)
        if j % 3 == 0:  # no history at all on the cached side
            out.append(row([], q, unrelated + [u(rng.choice(spec.CONFIRM)[0])], q, True,
                           "irrelevant_history", dom, (False, False)))
        else:
            mine = request_conv(dom, slots_of(dom, j + 1, spec), 0)
            out.append(row(mine, q, unrelated, q_rw if j % 2 else q, True, "irrelevant_history",
                           dom, (False, False)))
        chat = spec.CHATTER[j % len(spec.CHATTER)]
        out.append(row([u(chat[0]), a(chat[1])], q_rw, unrelated[:1] + [a(spec.HOLD[0])], q, True,
                       "irrelevant_history", dom, (False, False)))
    for j in range(5):
        s = slots_of(dom, j, spec)
        c1, c2 = spec.CONFIRM[j % len(spec.CONFIRM)]
        out.append(row(request_conv(dom, s, j % 3), c1, request_conv(dom, s, j % 3, reworded=True),
                       c1 if j % 2 else c2, True, "reworded_context", dom, (True, True)))
    for j in range(3):
        s = slots_of(dom, j + 2, spec)
        conv = request_conv(dom, s, j % 3)
        chatter = [u(spec.CHATTER[j][0]), a(spec.CHATTER[j][1])]
        hold = [a(spec.HOLD[0]), u(spec.HOLD[1])]
        padded = chatter + conv if j != 1 else conv[:1] + hold + conv[1:]
        c = spec.CONFIRM[(j + 1) % len(spec.CONFIRM)][0]
        out.append(row(conv, c, padded, c, True, "extra_chatter", dom, (True, True)))
    for j in range(3):
        s = slots_of(dom, j + 1, spec)
        c1, c2 = spec.CONFIRM[(j + 2) % len(spec.CONFIRM)]
        conv = request_conv(dom, s, j % 3)
        out.append(row(conv, c1, conv, c2, True, "reworded_follow_up", dom, (True, True)))
    lst = dom["lists"][0]
    conv1 = [u(dom["list_ask"][0]), a(dom["list_reply"].format(*lst))]
    conv2 = [u(dom["list_ask"][1]), a(dom["list_reply"].format(*lst))]
    out.append(row(conv1, spec.ORDINAL[0], conv2, spec.ORDINAL_RW[0], True, "reworded_follow_up",
                   dom, (True, True)))
    topic = dom["topics"][0]
    conv = [u(topic[0].format(day=spec.DAYS[0])), a(topic[1].format(day=spec.DAYS[0]))]
    e1, e2 = spec.ELLIPSIS[0].format(day=spec.DAYS[2]), spec.ELLIPSIS_RW.format(day=spec.DAYS[2])
    out.append(row(conv, e1, conv, e2, True, "reworded_follow_up", dom, (True, True)))
    return out


def build(split: str) -> list[dict[str, Any]]:
    spec = importlib.import_module(f"spec_{split}")
    rng = random.Random(f"conversations-{split}")
    rows: list[dict[str, Any]] = []
    domains = spec.DOMAINS
    for i, dom in enumerate(domains):
        other = domains[(i + len(domains) // 2) % len(domains)]
        rows += traps(dom, spec, rng, other) + hits(dom, spec, rng, other)
    for r in rows:
        r["split"] = split
    return rows


def main() -> None:
    split = sys.argv[1] if len(sys.argv) > 1 else "dev"
    sys.path.insert(0, str(HERE))
    rows = build(split)
    path = HERE / f"{split}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    n_hit = sum(r["should_hit"] for r in rows)
    print(f"{path.name}: {len(rows)} pairs, {n_hit} should-hit, {len(rows) - n_hit} traps")


if __name__ == "__main__":
    main()
