"""Text normalisation for the exact path.

Two prompts that differ only in case, surrounding whitespace, repeated spaces
or trailing punctuation are the same request. Anything else (word order,
numbers, spelling) is left to the semantic path and the verifier.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from semcache.lookup.followup import context_key
from semcache.lookup.partition import stable_hash
from semcache.lookup.turns import TurnLike

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


def exact_key(partition: str, prompt: str, history: Iterable[TurnLike] = ()) -> str:
    """The exact-path key: partition + normalised prompt + what the prompt refers back to.

    ``followup.context_key`` is empty for a prompt that cannot depend on its history and the
    referent's digest otherwise, so two different assistant turns never share a key.
    """
    return stable_hash(partition, normalize_text(prompt), context_key(prompt, history))
