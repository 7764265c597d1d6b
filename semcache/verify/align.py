"""Tokenise two questions and line them up word by word.

``analyse`` turns a question into canonical tokens: lower case, contractions
expanded, number words as digits, common phrases joined ("turn on" -> "turn-on"),
synonyms and plurals folded. ``diff`` compares two analysed questions as bags of
content words (so a moved clause cancels out), pairs off typos, and counts in how
many separate places ("slots") of the aligned word sequences the rest differs.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from semcache.verify.entities import entity_class
from semcache.verify.lexicon import PHRASES, canonical_word, expand_contractions, is_function_word
from semcache.verify.negation import antonym_pair
from semcache.verify.numbers import (
    canonical_unit,
    has_digit,
    is_number,
    normalize_numbers,
    number_value,
)
from semcache.verify.quantifiers import SCOPE_WORDS
from semcache.verify.time import TIME_WORDS

_TOKEN = re.compile(r"[a-z0-9µ°$€£]+(?:['.#+^/\-][a-z0-9#+]+)*[#+]*|[+\-*/=^<>%$€£,;:]")
_OPERATORS = frozenset("+-*/=^<>")
_BOUNDARY = frozenset(",;:")
_KEEP_HYPHENATED = frozenset(
    {w for w in (*SCOPE_WORDS, *TIME_WORDS) if "-" in w} | {p[1] for p in PHRASES if "-" in p[1]}
)
_PHRASE_PATTERNS = tuple(
    (phrase, re.compile(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])"), joined)
    for phrase, joined in PHRASES
)
_CAPITALISED = re.compile(r"(?<=[^.?!\s])\s+([A-Z][a-zA-Z0-9.+#'-]*)")


@dataclass(frozen=True, slots=True)
class Analysed:
    """One question as token lists: ``raw`` (lower-cased words) and ``canon`` (folded)."""

    text: str
    raw: tuple[str, ...]
    canon: tuple[str, ...]
    quantities: tuple[str, ...]  # "10 mg", "2019", "e04"
    operators: tuple[str, ...]
    proper: frozenset[str] = field(default_factory=frozenset)  # capitalised mid-sentence

    def content(self) -> list[str]:
        """Canonical tokens that can change the meaning (no function words or punctuation)."""
        return [c for r, c in zip(self.raw, self.canon, strict=True) if _is_content(r, c)]


def _is_content(raw: str, canon: str) -> bool:
    if raw in _BOUNDARY or raw in _OPERATORS or canon.startswith(("scope:", "time:", "unit:")):
        return False  # numbers, units, scope and time words have their own checks
    if has_digit(raw):
        return False
    return not (is_function_word(raw) or is_function_word(canon))


def _split_hyphens(tokens: list[str]) -> list[str]:
    out: list[str] = []
    for tok in tokens:
        if "-" in tok and tok not in _KEEP_HYPHENATED and entity_class(tok) is None:
            out.extend(p for p in tok.split("-") if p)
        else:
            out.append(tok)
    return out


def analyse(text: str) -> Analysed:
    """Normalise and tokenise one question."""
    norm = unicodedata.normalize("NFKC", text)
    proper = frozenset(m.group(1).lower().rstrip(".") for m in _CAPITALISED.finditer(" " + norm))
    low = expand_contractions(norm.lower())
    low = normalize_numbers(low)
    for phrase, pattern, joined in _PHRASE_PATTERNS:
        if phrase in low:
            low = pattern.sub(joined, low)
    raw = _split_hyphens(_TOKEN.findall(low))
    for i in range(len(raw) - 1):  # "an ounce" is "1 ounce"
        nxt = raw[i + 1]
        if raw[i] in ("a", "an") and len(nxt) > 2 and nxt != "second" and canonical_unit(nxt):
            raw[i] = "1"
    canon: list[str] = []
    quantities: list[str] = []
    for i, tok in enumerate(raw):
        prev = raw[i - 1] if i else ""
        unit = canonical_unit(tok) if is_number(prev) else None
        if is_number(tok):
            canon.append(number_value(tok))
            quantities.append(number_value(tok))
        elif unit is not None:
            canon.append("unit:" + unit)
            quantities[-1] += " " + unit
        elif has_digit(tok):
            canon.append(tok)
            quantities.append(tok)
        elif tok in SCOPE_WORDS:
            canon.append("scope:" + SCOPE_WORDS[tok])
        elif tok.removesuffix("'s") in TIME_WORDS:
            canon.append("time:" + TIME_WORDS[tok.removesuffix("'s")])
        else:
            canon.append(canonical_word(tok))
    ops = tuple(t for t in raw if t in _OPERATORS)
    return Analysed(text, tuple(raw), tuple(canon), tuple(quantities), ops, proper)


def typo_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance (Levenshtein plus adjacent transpositions)."""
    if abs(len(a) - len(b)) > 2:
        return 3
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def is_typo(a: str, b: str) -> bool:
    """True when ``b`` is a plausible misspelling or inflection of ``a`` (or the reverse)."""
    if a == b or has_digit(a) or has_digit(b) or min(len(a), len(b)) < 4:
        return False
    if entity_class(a) is not None and entity_class(b) is not None:
        return False  # "austria" / "australia" are two places, not a slip
    if a[0] != b[0] and a[:2] != b[1::-1]:
        return False  # slips rarely hit the first letter; "potatoes" / "tomatoes" is a swap
    if antonym_pair(a, b):
        return False
    if _inflection_stem(a) == _inflection_stem(b):
        return True
    limit = 1 if max(len(a), len(b)) <= 8 else 2
    return typo_distance(a, b) <= limit


def _inflection_stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            return stem[:-1] if suffix in ("ing", "ed") and stem.endswith("e") else stem
    return word.rstrip("e")


_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_WORD_ANY_CASE = re.compile(r"(?<![\w'])[A-Za-z]+(?:'[A-Za-z]+)?(?![\w'])")


def correct_typos(cached: str, query: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``query`` with each misspelt word replaced by the cached question's spelling."""
    cached_words = set(_WORD.findall(cached.lower()))
    query_words = set(_WORD.findall(query.lower()))
    spare = sorted(cached_words - query_words)
    fixes: list[tuple[str, str]] = []
    for word in sorted(query_words - cached_words):
        if len(word) < 4:
            continue
        match = next((c for c in spare if is_typo(c, word)), None)
        if match is not None:
            fixes.append((word, match))
            spare.remove(match)
    if fixes:
        mapping = dict(fixes)
        query = _WORD_ANY_CASE.sub(lambda m: mapping.get(m.group(0).lower(), m.group(0)), query)
    return query, tuple(fixes)


@dataclass(frozen=True, slots=True)
class Diff:
    """What remains different between two questions' content words."""

    removed: tuple[str, ...]  # in the cached question only
    added: tuple[str, ...]  # in the new question only
    typos: tuple[tuple[str, str], ...]
    slots: int  # separate places in the aligned sequences where they differ


def diff(cached: Analysed, query: Analysed) -> Diff:
    """Bag difference of content words, typos paired off, plus the number of changed slots."""
    a, b = cached.content(), query.content()
    ca, cb = Counter(a), Counter(b)
    removed = list((ca - cb).elements())
    added = list((cb - ca).elements())
    typos: list[tuple[str, str]] = []
    for r in list(removed):
        for d in added:
            if is_typo(r, d):
                typos.append((r, d))
                removed.remove(r)
                added.remove(d)
                break
    left = Counter(removed) + Counter(added)
    slots = 0
    if left:
        matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag != "equal" and any(t in left for t in (*a[i1:i2], *b[j1:j2])):
                slots += 1
    return Diff(tuple(removed), tuple(added), tuple(typos), slots)


def reversed_direction(cached: Analysed, query: Analysed) -> tuple[str, str, str] | None:
    """A pair of words that swap sides of "to"/"from"/"than"/... between the questions."""
    pa, pb = _directed_pairs(cached), _directed_pairs(query)
    for x, marker, y in pa:
        if (y, marker, x) in pb and (x, marker, y) not in pb:
            return x, marker, y
    return None


_MARKERS = frozenset(
    {"to", "into", "from", "than", "vs", "versus", "before", "after", "until", "onto", "per", "->"}
)


def _directed_pairs(t: Analysed) -> set[tuple[str, str, str]]:
    pairs: set[tuple[str, str, str]] = set()
    # time and scope words count here: "from the weekly plan to the daily plan" has a direction
    content = [
        (i, c)
        for i, (r, c) in enumerate(zip(t.raw, t.canon, strict=True))
        if _is_content(r, c) or c.startswith(("time:", "scope:"))
    ]
    for i, tok in enumerate(t.raw):
        if tok not in _MARKERS:
            continue
        lo = max((j for j, r in enumerate(t.raw[:i]) if r in _BOUNDARY), default=-1)
        hi = min((j for j, r in enumerate(t.raw) if j > i and r in _BOUNDARY), default=len(t.raw))
        left = [c for j, c in content if lo < j < i][-3:]
        right = [c for j, c in content if i < j < hi][:3]
        pairs.update((x, tok, y) for x in left for y in right if x != y)
    return pairs
