"""Scope words: "all" is not "some", "first" is not "last", "min" is not "max".

A question's scope is what it ranges over: quantifiers, ordinals, extremes and
restrictions ("only", "nested", "partial"). Adding, dropping or swapping one
asks for a different set of things, so the verifier treats it as a change of
question even when everything else matches.
"""

from __future__ import annotations

# Canonical scope word for each spelling; synonyms share one.
SCOPE_WORDS: dict[str, str] = {
    "all": "all",
    "every": "all",
    "everything": "all",
    "entire": "whole",
    "whole": "whole",
    "each": "each",
    "some": "some",
    "several": "some",
    "few": "few",
    "only": "only",
    "just-one": "only",
    "solely": "only",
    "exclusively": "only",
    "both": "both",
    "either": "either",
    "neither": "neither",
    "single": "single",
    "multiple": "multiple",
    "first": "first",
    "last": "last",
    "final": "last",
    "second": "second",
    "third": "third",
    "fourth": "fourth",
    "fifth": "fifth",
    "top": "top",
    "bottom": "bottom",
    "maximum": "max",
    "max": "max",
    "most": "max",
    "largest": "max",
    "biggest": "max",
    "greatest": "max",
    "highest": "max",
    "minimum": "min",
    "min": "min",
    "least": "min",
    "smallest": "min",
    "lowest": "min",
    "fewest": "min",
    "longest": "longest",
    "shortest": "shortest",
    "partial": "partial",
    "full": "full",
    "complete": "full",
    "nested": "nested",
    "unique": "unique",
    "distinct": "unique",
    "hidden": "hidden",
    "at-most": "max",
    "at-least": "min",
    "long-term": "long-term",
    "short-term": "short-term",
    "except": "except",
    "besides": "except",
    "more": "over",
    "less": "under",
    "fewer": "under",
    "over": "over",
    "under": "under",
    "above": "over",
    "below": "under",
    "greater": "over",
    "exceeding": "over",
    "temporarily": "temporary",
    "permanently": "permanent",
    "temporary": "temporary",
    "permanent": "permanent",
}


def scope_words(tokens: list[str]) -> list[str]:
    """The canonical scope words in ``tokens`` (lower-cased words), in order."""
    return [SCOPE_WORDS[t] for t in tokens if t in SCOPE_WORDS]
