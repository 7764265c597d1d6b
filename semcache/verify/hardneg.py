"""The hard-negative verifier: does the cached question really ask the same thing?

``HardNegativeVerifier`` compares the new and the cached question word by word and
rejects the classic false hits of a similarity threshold, each with a readable reason:
a changed ``number``, ``negation``, ``order``, ``time``, ``scope`` (quantifier) or
``entity``, or a single-place ``content`` change that is neither a typo nor a synonym.
A paraphrase changes its wording in many places; a hard negative in one. The rules and
their in-context relaxations: docs/design/core.md."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from semcache.types import Verdict
from semcache.verify.align import Analysed, Diff, analyse, correct_typos, diff, reversed_direction
from semcache.verify.entities import entity_class, looks_like_entity
from semcache.verify.negation import find_antonyms, negation_change
from semcache.verify.quantifiers import SCOPE_WORDS
from semcache.verify.time import time_expressions

STRICT_CATEGORIES = frozenset({"code", "math", "medical"})


class HardNegativeVerifier:
    """Rejects near-duplicates that differ in a number, negation, entity, time or scope.

    ``word_embedder``: optional object with ``embed(list[str]) -> np.ndarray`` of
    L2-normalised rows. When given, a single-place word substitution whose words
    are at least ``synonym_similarity`` alike counts as a synonym instead of a
    content change. Word similarities and analysed questions are cached (at most
    ``cache_size`` each; 0 disables the caches). Reasons read "cached -> query".
    """

    name = "hardneg"

    def __init__(
        self,
        word_embedder: Any | None = None,
        *,
        synonym_similarity: float = 0.8,
        cache_size: int = 50_000,
    ) -> None:
        if word_embedder is not None and not callable(getattr(word_embedder, "embed", None)):
            raise TypeError("word_embedder must have an embed(list[str]) -> np.ndarray method")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size!r}")
        if not 0.0 < synonym_similarity <= 1.0:
            raise ValueError(f"synonym_similarity must be in (0, 1], got {synonym_similarity!r}")
        self.word_embedder = word_embedder
        self.synonym_similarity = float(synonym_similarity)
        self._cache_size = int(cache_size)
        self._similarity: dict[tuple[str, str], float] = {}
        self._analysed: dict[str, Analysed] = {}

    def verify(self, query: str, cached: str, *, category: str = "other",
               in_context: bool = False) -> Verdict:
        """Accept when ``cached``'s answer may be served for ``query``; else say why not.

        ``in_context``: the two questions are follow-ups whose earlier turns already
        matched. Follow-ups lean on that context, so the single-place ``content`` rule is
        not applied and a one-sided number, time or scope word counts as rewording when
        they share under half of their content words; a replaced value is still a
        different question (details: docs/design/core.md).
        """
        if not isinstance(query, str) or not isinstance(cached, str):
            raise TypeError(
                f"query and cached must be str, got {type(query).__name__} and {type(cached).__name__}"
            )
        if not isinstance(category, str):
            raise TypeError(f"category must be a str, got {type(category).__name__}")
        fixed, typos = correct_typos(cached, query)
        a, b = self._analyse(cached), self._analyse(fixed)
        if a.canon == b.canon:
            reason = (
                "typo: " + ", ".join(f"{x} -> {y}" for x, y in typos) if typos else "same words"
            )
            return Verdict(accepted=True, reason=reason, rule=None)
        d = diff(a, b)
        tolerated: list[str] = []
        for check in self._checks():
            verdict = check(a, b)
            if verdict is None:
                continue
            if in_context and check in _ONE_SIDED_CHECKS:
                strict_reason, verdict = verdict.reason, _as_follow_up(check, a, b)
                if verdict is None:
                    tolerated.append(str(strict_reason))
                    continue
            return verdict
        word_checks = (self._entity_check,) if in_context else (self._entity_check, self._content_check)
        for word_check in word_checks:
            verdict = word_check(a, b, d, category)
            # in context, naming the subject outright ("it" -> "Einstein's equation") is
            # rewording; only an entity replaced by another one is a different question
            if verdict is not None and not (in_context and verdict.reason is not None
                                            and verdict.reason.startswith(("entity added", "entity removed"))):
                return verdict
        reason = _accept_reason(d, typos)
        if tolerated:
            reason += "; follow-up rewording: " + "; ".join(tolerated)
        return Verdict(accepted=True, reason=reason, rule=None)

    # -- checks on the whole question ------------------------------------------------------

    def _checks(self) -> tuple[Callable[..., Verdict | None], ...]:
        return (_number_check, _negation_check, _order_check, _time_check, _scope_check)

    # -- checks on the differing words -----------------------------------------------------

    def _entity_check(self, a: Analysed, b: Analysed, d: Diff, category: str) -> Verdict | None:
        gone = [w for w in d.removed if _is_entity(w, a)]
        new = [w for w in d.added if _is_entity(w, b)]
        if gone and new:
            return _reject("entity", f"entity changed: {_label(gone)} -> {_label(new)}")
        if new:
            return _reject("entity", f"entity added: {_label(new)}")
        if gone:
            return _reject("entity", f"entity removed: {_label(gone)}")
        return None

    def _content_check(self, a: Analysed, b: Analysed, d: Diff, category: str) -> Verdict | None:
        if not (d.removed or d.added) or d.slots > 1:
            return None
        if len(d.removed) == 1 and len(d.added) == 1 and self._alike(d.removed[0], d.added[0]):
            return None
        if d.removed and d.added:
            return _reject("content", f"word changed: {_label(d.removed)} -> {_label(d.added)}")
        if d.added:
            return _reject("content", f"word added: {_label(d.added)}")
        return _reject("content", f"word removed: {_label(d.removed)}")

    def _alike(self, x: str, y: str) -> bool:
        if self.word_embedder is None:
            return False
        key = (x, y) if x <= y else (y, x)
        sim = self._similarity.get(key)
        if sim is None:
            vecs = np.asarray(self.word_embedder.embed([x, y]), dtype=np.float32)
            sim = float(vecs[0] @ vecs[1])
            if len(self._similarity) >= self._cache_size:
                self._similarity.clear()
            self._similarity[key] = sim
        return sim >= self.synonym_similarity

    def _analyse(self, text: str) -> Analysed:
        if self._cache_size == 0:
            return analyse(text)
        hit = self._analysed.get(text)
        if hit is None:
            if len(self._analysed) >= self._cache_size:
                self._analysed.clear()
            hit = self._analysed[text] = analyse(text)
        return hit


def _reject(rule: str, reason: str) -> Verdict:
    return Verdict(accepted=False, reason=reason, rule=rule)


def _label(words: list[str] | tuple[str, ...]) -> str:
    return " ".join(w.removeprefix("unit:") for w in words)


def _accept_reason(d: Diff, typos: tuple[tuple[str, str], ...]) -> str:
    if typos or d.typos:
        return "typo: " + ", ".join(f"{x} -> {y}" for x, y in (*typos, *d.typos))
    if d.removed or d.added:
        return f"reworded in {d.slots} places"
    return "same content words"


def _is_entity(word: str, t: Analysed) -> bool:
    if word.startswith("unit:"):
        return False
    positions = [i for i, c in enumerate(t.canon) if c == word]
    raw = t.raw[positions[0]] if positions else word
    original = raw.capitalize() if raw in t.proper else raw
    return (
        looks_like_entity(raw, original, positions[0] if positions else 0)
        or entity_class(word) is not None
    )


def _number_check(a: Analysed, b: Analysed, *, one_sided_ok: bool = False) -> Verdict | None:
    qa, qb = Counter(a.quantities), Counter(b.quantities)
    gone, new = list((qa - qb).elements()), list((qb - qa).elements())
    # "a" and "one" are interchangeable: a lone 1 on one side is not a change
    if not (gone and new) and len(gone or new) == 1 and (gone or new)[0].split()[0] == "1":
        return None
    if gone and new:
        return _reject("number", f"number changed: {', '.join(gone)} -> {', '.join(new)}")
    if (gone or new) and not one_sided_ok:
        verb = "removed" if gone else "added"
        return _reject("number", f"number {verb}: {', '.join(gone or new)}")
    if Counter(a.operators) != Counter(b.operators):
        return _reject(
            "number", f"operator changed: {' '.join(a.operators)} -> {' '.join(b.operators)}"
        )
    return None


def _negation_check(a: Analysed, b: Analysed) -> Verdict | None:
    change = negation_change(a.raw, b.raw)
    if change is not None:
        return _reject("negation", change)
    for xs, ys in ((a.raw, b.raw), (a.canon, b.canon)):
        ca, cb = Counter(xs), Counter(ys)
        pair = find_antonyms(list((ca - cb).elements()), list((cb - ca).elements()))
        if pair is not None:
            return _reject("negation", f"opposite meaning: {pair[0]} -> {pair[1]}")
    return None


def _order_check(a: Analysed, b: Analysed) -> Verdict | None:
    swap = reversed_direction(a, b)
    if swap is None:
        return None
    x, marker, y = swap
    return _reject("order", f"direction reversed: {x} {marker} {y} -> {y} {marker} {x}")


def _time_check(a: Analysed, b: Analysed, *, one_sided_ok: bool = False,
                present_ok: bool = False) -> Verdict | None:
    ta, tb = time_expressions(a.raw), time_expressions(b.raw)
    if Counter(ta) == Counter(tb):
        return None
    nouns_a = {t.split()[-1] for t in ta}
    nouns_b = {t.split()[-1] for t in tb}
    if nouns_a == nouns_b:
        # same time nouns; a modifier on one side only ("this weekend" / "a weekend") is fine
        mods_a = {t for t in ta if " " in t}
        mods_b = {t for t in tb if " " in t}
        if not (mods_a and mods_b) or mods_a == mods_b:
            return None
    gone = [t for t in ta if t not in tb]
    new = [t for t in tb if t not in ta]
    if gone and new:
        return _reject("time", f"time changed: {', '.join(gone)} -> {', '.join(new)}")
    if one_sided_ok or (present_ok and set(gone or new) == {"now"}):
        return None
    verb = "removed" if gone else "added"
    return _reject("time", f"time reference {verb}: {', '.join(gone or new)}")


_DETERMINERS = frozenset({"the", "my", "your", "its", "their", "our", "his", "her", "this", "that"})


def _scope_words(t: Analysed) -> list[str]:
    out: list[str] = []
    for i, tok in enumerate(t.raw):
        if tok not in SCOPE_WORDS:
            continue
        prev = t.raw[i - 1] if i else ""
        nxt = t.raw[i + 1] if i + 1 < len(t.raw) else ""
        if tok == "second" and prev.isdigit():
            continue  # "30 second" is a duration
        if tok == "last" and (
            time_expressions([tok, nxt]) or not (nxt.isdigit() or prev in _DETERMINERS)
        ):
            continue  # "last night" is a time; "how long does it last" is a verb
        out.append(SCOPE_WORDS[tok])
    return out


def _scope_check(a: Analysed, b: Analysed, *, one_sided_ok: bool = False) -> Verdict | None:
    sa, sb = Counter(_scope_words(a)), Counter(_scope_words(b))
    if sa == sb:
        return None
    gone, new = list((sa - sb).elements()), list((sb - sa).elements())
    if gone and new:
        return _reject("scope", f"scope changed: {', '.join(gone)} -> {', '.join(new)}")
    if one_sided_ok:
        return None
    verb = "removed" if gone else "added"
    return _reject("scope", f"scope word {verb}: {', '.join(gone or new)}")


# checks whose one-sided findings ("number added", "scope word removed") a reworded follow-up
# may tolerate; replaced values are rejected by them either way
_ONE_SIDED_CHECKS = (_number_check, _time_check, _scope_check)


def _as_follow_up(check: Callable[..., Verdict | None], a: Analysed, b: Analysed) -> Verdict | None:
    """``check`` as follow-ups are judged: one-sided findings pass when the follow-ups
    share fewer than half of their content words (Jaccard); a one-sided present-time
    word always passes."""
    ca, cb = set(a.content()), set(b.content())
    reworded = len(ca & cb) < 0.5 * len(ca | cb)
    if check is _time_check:
        return _time_check(a, b, one_sided_ok=reworded, present_ok=True)
    return check(a, b, one_sided_ok=reworded)
