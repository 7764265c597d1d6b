"""Text normalisation for the exact path.

Two prompts that differ only in case, surrounding whitespace, repeated spaces
or trailing punctuation are the same request. Anything else (word order,
numbers, spelling) is left to the semantic path and the verifier.
"""

from __future__ import annotations

import re
import unicodedata

from semcache.types import stable_hash

_SPACES = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s?!.。？！]+$")


def normalize_text(text: str) -> str:
    """Case-fold, NFKC-normalise, collapse whitespace and drop trailing punctuation."""
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    folded = unicodedata.normalize("NFKC", text).casefold()
    collapsed = _SPACES.sub(" ", folded).strip()
    return _TRAILING.sub("", collapsed)


def prompt_hash(text: str) -> str:
    return stable_hash(normalize_text(text))


def exact_key(partition: str, prompt: str, history: tuple[str, ...] = ()) -> str:
    """The exact-path key: partition + normalised prompt + normalised history."""
    return stable_hash(partition, normalize_text(prompt), *[normalize_text(t) for t in history])
