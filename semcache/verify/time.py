"""Time words: "today" is not "yesterday", "this week" is not "last year".

``time_expressions`` reads the time references out of a token list. A modifier
("this", "last", "next", "previous", "past", "coming") joins the time noun that
follows it, so "last night" and "last 3 commits" are told apart: only the first
is a time reference ("last" alone is a scope word, see ``semcache.verify.quantifiers``).
"""

from __future__ import annotations

from collections.abc import Sequence

TIME_NOUNS: frozenset[str] = frozenset(
    """
day days week weeks weekend weekends month months year years night nights morning mornings
afternoon afternoons evening evenings hour hours minute minutes decade decades century
season quarter semester term time monday tuesday wednesday thursday friday saturday sunday
january february march april may june july august september october november december
spring summer autumn winter holiday holidays
""".split()
)

# Time references that stand alone. Synonyms share one canonical spelling.
TIME_WORDS: dict[str, str] = {
    "today": "today",
    "tonight": "tonight",
    "tomorrow": "tomorrow",
    "yesterday": "yesterday",
    "now": "now",
    "currently": "now",
    "current": "now",
    "presently": "now",
    "nowadays": "now",
    "right-now": "now",
    "at-the-moment": "now",
    "these-days": "now",
    "moment": "now",
    "previously": "previous",
    "previous": "previous",
    "former": "previous",
    "prior": "previous",
    "formerly": "previous",
    "earlier": "previous",
    "later": "later",
    "soon": "later",
    "upcoming": "next",
    "future": "future",
    "past": "past",
    "ago": "ago",
    "overnight": "overnight",
    "hourly": "hourly",
    "daily": "daily",
    "weekly": "weekly",
    "monthly": "monthly",
    "annual": "yearly",
    "annually": "yearly",
    "yearly": "yearly",
    "recently": "recent",
    "recent": "recent",
    "latest": "recent",
    "newest": "recent",
    "most-recent": "recent",
    "weekday": "weekday",
    "weekdays": "weekday",
    "morning": "morning",
    "evening": "evening",
    "afternoon": "afternoon",
    "night": "night",
    "every-day": "daily",
    "per-day": "daily",
    "each-day": "daily",
    "per-week": "weekly",
    "per-month": "monthly",
    "per-year": "yearly",
}
# Time nouns that name a time on their own; the others ("day", "year") need a modifier.
_BARE_NOUNS = frozenset(
    """
weekend monday tuesday wednesday thursday friday saturday sunday january february april june
july august september october november december spring summer autumn winter holiday
""".split()
)
_MODIFIERS = {
    "this": "this",
    "last": "last",
    "next": "next",
    "previous": "last",
    "past": "last",
    "coming": "next",
    "following": "next",
    "current": "this",
    "these": "this",
}
_SINGULAR = {
    "days": "day",
    "weeks": "week",
    "weekends": "weekend",
    "months": "month",
    "years": "year",
    "nights": "night",
    "mornings": "morning",
    "evenings": "evening",
    "afternoons": "afternoon",
    "hours": "hour",
    "minutes": "minute",
    "decades": "decade",
    "holidays": "holiday",
    "nights'": "night",
}


def time_expressions(tokens: Sequence[str]) -> list[str]:
    """The time references in ``tokens`` (lower-cased words), canonicalised."""
    out: list[str] = []
    i = 0
    tokens = [t.removesuffix("'s") for t in tokens]
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        nxt_s = _SINGULAR.get(nxt, nxt)
        if tok in _MODIFIERS and nxt_s in TIME_NOUNS:
            out.append(f"{_MODIFIERS[tok]} {nxt_s}")
            i += 2
            continue
        if tok in TIME_WORDS:
            out.append(TIME_WORDS[tok])
        elif _SINGULAR.get(tok, tok) in _BARE_NOUNS:
            out.append(_SINGULAR.get(tok, tok))
        i += 1
    return out


def is_time_word(token: str) -> bool:
    """True for a word that names or shifts a time."""
    return token in TIME_WORDS or token in TIME_NOUNS or token in _SINGULAR
