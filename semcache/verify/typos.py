"""Two questions that differ only by misspellings: the same question, no model needed.

``Misspellings(vocabulary).same_question(a, b)`` lines the two word sequences up and allows
only replaced words, each either one word typed two ways or words split and merged ("log in"
/ "login"). Two spellings are one word when they are within one edit (insert, delete,
substitute, swap two neighbours), start with the same letter (or its first two letters
swapped: typists rarely miss the first letter), and are not both whole words of the
vocabulary: "rest" / "reset" or "Iran" / "Iraq" are two real words, so the model judges them.

Deliberately narrow: no word may be added or dropped, at most half the words may change,
numbers must be the same, and text with code or math marks is left to the model, where one
character changes the meaning (``x + 3`` / ``x - 3``, ``\\b`` / ``\\B``).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable

_WORD = re.compile(r"[^\W_]+")
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
# Code and math marks, and a ? or ! with words after it ("the ? operator")
_CODE = re.compile(r"[\\`{}\[\]<>=+*/^%$#@|~_]|[?!](?=.*\w)")


def _words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def within_one_edit(a: str, b: str) -> bool:
    """Optimal-string-alignment distance of at most 1 (one insert, delete, substitution or
    swap of neighbours)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) < len(b):  # one insertion in b
        return a[i:] == b[i + 1:]
    if a[i + 1:] == b[i + 1:]:  # one substitution
        return True
    return i + 1 < len(a) and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2:] == b[i + 2:]


class Misspellings:
    """Decides whether two questions differ only by typing mistakes.

    ``vocabulary``: whole words (lower case) that are real words; two different real words
    are never taken for one misspelt word.
    """

    def __init__(self, vocabulary: Iterable[str]) -> None:
        self.vocabulary = frozenset(w for w in vocabulary if w.isalpha())

    def one_word(self, a: str, b: str, *, check_vocabulary: bool = True) -> bool:
        """``a`` and ``b`` (lower case) are one word, one of them misspelt."""
        if a == b:
            return True
        if check_vocabulary and a in self.vocabulary and b in self.vocabulary:
            return False
        if min(len(a), len(b)) < 2 or max(len(a), len(b)) < 3:
            return False
        if a[0] != b[0] and a[:2] != b[1::-1]:
            return False
        return within_one_edit(a, b)

    def same_question(self, a: str, b: str) -> bool:
        """True when ``a`` and ``b`` are the same words up to case, punctuation and misspellings."""
        if _CODE.search(a) or _CODE.search(b) or _NUMBER.findall(a) != _NUMBER.findall(b):
            return False
        wa, wb = _words(a), _words(b)
        if not wa or not wb:
            return False
        changed = 0
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=wa, b=wb, autojunk=False).get_opcodes():
            if op == "equal":
                continue
            if op != "replace":  # a word on one side only ("not", "um", "annual")
                return False
            left, right = wa[i1:i2], wb[j1:j2]
            if len(left) == len(right):
                if not all(self.one_word(x, y) for x, y in zip(left, right, strict=True)):
                    return False
            elif not self.one_word("".join(left), "".join(right), check_vocabulary=False):
                return False  # split or merged words ("log in" / "login", "sign up" / "sighnup")
            changed += max(len(left), len(right))
        return changed <= max(1, len(wa) // 2)
