"""Meaning-preserving noise for the verifier pairs: typos, filler words, casing.

Each split has its own templates (``TRAIN`` and ``HELDOUT``), so the held-out
split measures noise patterns the model never saw in training. All randomness
comes from the ``random.Random`` passed in, so a rebuild is byte-identical.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
_NEIGHBOURS: dict[str, str] = {}
for _r, _row in enumerate(_ROWS):
    for _c, _ch in enumerate(_row):
        near = [_row[i] for i in (_c - 1, _c + 1) if 0 <= i < len(_row)]
        for _other in (_r - 1, _r + 1):
            if 0 <= _other < len(_ROWS):
                near += [_ROWS[_other][i] for i in (_c, _c + 1) if i < len(_ROWS[_other])]
        _NEIGHBOURS[_ch] = "".join(near)
_VOWELS = "aeiou"
_WORD = re.compile(r"[A-Za-z]{3,}")


def _transpose(w: str, rng: random.Random) -> str:
    i = rng.randrange(len(w) - 1)
    return w[:i] + w[i + 1] + w[i] + w[i + 2 :]


def _delete(w: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(w))
    return w[:i] + w[i + 1 :]


def _double(w: str, rng: random.Random) -> str:
    i = rng.randrange(len(w))
    return w[: i + 1] + w[i] + w[i + 1 :]


def _neighbour(w: str, rng: random.Random) -> str:
    i = rng.randrange(len(w))
    near = _NEIGHBOURS.get(w[i].lower(), "")
    return w[:i] + rng.choice(near) + w[i + 1 :] if near else _delete(w, rng)


def _insert_neighbour(w: str, rng: random.Random) -> str:
    i = rng.randrange(len(w))
    near = _NEIGHBOURS.get(w[i].lower(), "")
    return w[: i + 1] + rng.choice(near) + w[i + 1 :] if near else _double(w, rng)


def _vowel(w: str, rng: random.Random) -> str:
    spots = [i for i, ch in enumerate(w) if ch.lower() in _VOWELS]
    if not spots:
        return _transpose(w, rng)
    i = rng.choice(spots)
    return w[:i] + rng.choice([v for v in _VOWELS if v != w[i].lower()]) + w[i + 1 :]


@dataclass(frozen=True)
class NoiseTemplates:
    """The typo operations, fillers and casing variants of one split."""

    typo_ops: tuple
    merge_words: bool  # a dropped space ("log in" -> "login") counts as one edit
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]
    casings: tuple[str, ...]


TRAIN = NoiseTemplates(
    typo_ops=(_transpose, _delete, _double, _neighbour, _vowel),
    merge_words=False,
    prefixes=("um, ", "so ", "hey quick question: ", "hi, ", "ok so ", "please tell me: ",
              "I was wondering, ", "can you tell me: ", "um so ", "hey, "),
    suffixes=(" please", " thanks", " thx", " asap", " please help"),
    casings=("lower", "upper", "no_question_mark", "double_question", "lower_no_punct"),
)
HELDOUT = NoiseTemplates(
    typo_ops=(_transpose, _delete, _neighbour, _insert_neighbour),
    merge_words=True,
    prefixes=("uh ", "hmm, ", "quick one - ", "hello there! ", "right, so ", "just curious, ",
              "yo, ", "sorry to bother you but "),
    suffixes=(" pls", " cheers", " any idea?", " if you know", " ty"),
    casings=("title", "bang_question", "ellipsis", "lower_strip", "spaced"),
)


def add_typos(text: str, edits: int, rng: random.Random, tpl: NoiseTemplates,
              protect: frozenset[str] = frozenset()) -> str:
    """Apply ``edits`` typo operations to distinct words (never to ``protect``)."""
    words = [m for m in _WORD.finditer(text) if m.group(0).lower() not in protect]
    if not words:
        return text
    chosen = sorted(rng.sample(words, min(edits, len(words))), key=lambda m: m.start())
    out, last = [], 0
    for m in chosen:
        w = m.group(0)
        if tpl.merge_words and rng.random() < 0.2 and text[m.end() : m.end() + 1] == " ":
            out.append(text[last : m.start()] + w)
            last = m.end() + 1  # drop the following space
            continue
        out.append(text[last : m.start()] + rng.choice(tpl.typo_ops)(w, rng))
        last = m.end()
    out.append(text[last:])
    return "".join(out)


def add_filler(text: str, rng: random.Random, tpl: NoiseTemplates) -> tuple[str, str]:
    """Add a filler prefix, suffix or both; returns (text, template name)."""
    how = rng.choice(["prefix", "suffix", "both"])
    body = text[0].lower() + text[1:] if how != "suffix" else text
    if how in ("prefix", "both"):
        pre = rng.choice(tpl.prefixes)
        body = pre + body
    if how in ("suffix", "both"):
        suf = rng.choice(tpl.suffixes)
        stem = body.rstrip("?.!")
        body = stem + suf + ("?" if body.endswith("?") and not suf.endswith("?") else "")
    return body, f"filler:{how}"


def recase(text: str, rng: random.Random, tpl: NoiseTemplates) -> tuple[str, str]:
    """Change only casing, spacing or final punctuation; returns (text, template)."""
    how = rng.choice(tpl.casings)
    stem = text.rstrip("?.!")
    variants = {
        "lower": text.lower(),
        "upper": text.upper(),
        "no_question_mark": stem,
        "double_question": stem + "??",
        "lower_no_punct": re.sub(r"[^\w\s']", "", text).lower(),
        "title": stem.title() + "?",
        "bang_question": stem + "?!",
        "ellipsis": stem + "...",
        "lower_strip": re.sub(r"[^\w\s]", "", text).lower().strip(),
        "spaced": "  " + stem.replace(" ", "  ", 2) + " ?",
    }
    return variants[how], f"casing:{how}"
