"""``LearnedVerifier``: the shipped cross-encoder decides, a few principled rules may veto.

The pair model (``semcache.verify.pair_model``) scores each (cached, query) pair; a pair is
accepted when its score reaches the category's threshold (``config.json``: ``thresholds``
per category, else the global ``threshold``). With ``rules`` on, a pair that a principled
rule of ``HardNegativeVerifier`` rejects (a changed number, unit or date, a negation or an
antonym) is refused whatever its score. ``verify_many`` scores all of one lookup's
candidates in one model call. Scores are kept in a small LRU (repeated questions are common).

A pair whose two questions are the same words once case, Unicode compatibility forms,
spacing and punctuation are set aside (``same_text_key``), or that differ only by misspelt
words (``semcache.verify.typos``, against the model's vocabulary), is accepted without the
model (``precheck``); the principled rules still judge it.
"""

from __future__ import annotations

import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from semcache.types import Verdict
from semcache.verify.hardneg import HardNegativeVerifier
from semcache.verify.typos import Misspellings

# The rule families kept beside the model: numbers and units, negation and antonyms, dates
# and time units. On the dev slice, at the model's threshold, they turn wrong 0.009 into 0.0
# for served 0.359 -> 0.348 (number and negation alone removed no trap: the time rule caught
# "monthly plan" -> "annual plan"). Entity, scope and single-word rules fit the old sets.
PRINCIPLED_RULES = frozenset({"number", "negation", "time"})

# The score ``verify_many`` reports for a pair the pre-check accepted: the top of the model's range.
SAME_TEXT_SCORE = 1.0
SAME_TEXT_REASON = "same text up to case, spacing and punctuation"
MISSPELT_REASON = "same words up to misspellings"
# Punctuation kept by ``same_text_key``: it names or quantifies something ("C#" is not "C",
# "5%" not "5", "and/or" not "and or"). Punctuation between two digits is kept too
# ("3.5", "1,000", "10:30", "3-5"). Symbols ("+", "$", "=") are not punctuation and stay.
_KEPT_PUNCTUATION = frozenset("#%&@*/\\_")


def same_text_key(text: str) -> str:
    """``text`` after NFKC, case folding and stripping punctuation (each mark becomes a space,
    so no two words merge), with whitespace collapsed. Two questions with equal keys ask the
    same thing in the same words."""
    if not text.isascii():
        # NFKC turns "5²" into "52": a superscript or subscript keeps a mark ("5^2", "h_2o")
        text = unicodedata.normalize("NFKC", "".join(_marked(ch) for ch in text))
    chars = list(text.casefold())
    last = len(chars) - 1
    for i, ch in enumerate(chars):
        if ch in _KEPT_PUNCTUATION or not unicodedata.category(ch).startswith("P"):
            continue
        if 0 < i < last and chars[i - 1].isdigit() and chars[i + 1].isdigit():
            continue
        chars[i] = " "
    return " ".join("".join(chars).split())


def _marked(ch: str) -> str:
    form = unicodedata.decomposition(ch)
    if form.startswith("<super>"):
        return "^" + unicodedata.normalize("NFKC", ch)
    if form.startswith("<sub>"):
        return "_" + unicodedata.normalize("NFKC", ch)
    return ch


class LearnedVerifier:
    """Accepts a candidate when the pair model scores it at or above its category's threshold.

    ``model``: a ``PairModel`` (default: the shipped one, loaded lazily on first use).
    ``rules``: let the principled rules (``PRINCIPLED_RULES``) veto. ``threshold`` replaces
    the model's global and per-category thresholds (unless ``thresholds`` is given too);
    ``thresholds`` its per-category ones.
    ``cache_size``: scored pairs kept (0: none). ``misspellings``: accept pairs that differ
    only by misspelt words without the model.
    """

    name = "learned"

    def __init__(self, model: Any | None = None, *, rules: bool = True, threshold: float | None = None,
                 thresholds: Mapping[str, float] | None = None, cache_size: int = 4096,
                 misspellings: bool = True) -> None:
        for value in (threshold, *(thresholds or {}).values()):
            if value is not None and not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"thresholds must lie in [0, 1], got {value!r}")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size!r}")
        self._model = model
        self.rules = bool(rules)
        self._threshold = threshold
        self._thresholds = None if thresholds is None else {str(k): float(v) for k, v in thresholds.items()}
        self._rules = HardNegativeVerifier()
        self._scores: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._cache_size = int(cache_size)
        self._lock = threading.Lock()  # lookups run on several threads
        self.misspellings = bool(misspellings)
        self._typos: Misspellings | None = None  # built from the model's vocabulary on first use

    @property
    def model(self) -> Any:
        if self._model is None:
            from semcache.verify.pair_model import PairModel

            self._model = PairModel.load()
        return self._model

    def load(self) -> LearnedVerifier:
        """Load the model and its thresholds now rather than on the first lookup."""
        self.threshold()
        return self

    def threshold(self, category: str = "other") -> float:
        """The score a pair of ``category`` needs to be accepted."""
        if self._thresholds is None:  # the model's calibration (config.json), unless a threshold was given
            found = {} if self._threshold is not None else (
                getattr(getattr(self.model, "config", None), "thresholds", None) or {})
            self._thresholds = {str(k): float(v) for k, v in found.items()}
        if category in self._thresholds:
            return self._thresholds[category]
        return float(self._threshold if self._threshold is not None else self.model.threshold)

    def scores(self, query: str, cached: Sequence[str]) -> list[float]:
        """The model's score of each (cached, query) pair, in one call for those not in the LRU."""
        keys = [(c, query) for c in cached]
        with self._lock:
            known = {k: self._scores[k] for k in keys if k in self._scores}
            for key in known:
                self._scores.move_to_end(key)
        missing = list(dict.fromkeys(k for k in keys if k not in known))
        if missing:
            known.update(zip(missing, map(float, self.model.score(missing).tolist()), strict=True))
            with self._lock:
                for key in missing:
                    self._remember(key, known[key])
        return [known[k] for k in keys]

    def _remember(self, key: tuple[str, str], score: float) -> None:
        if self._cache_size == 0:
            return
        self._scores[key] = score
        while len(self._scores) > self._cache_size:
            self._scores.popitem(last=False)

    def precheck(self, query: str, cached: str, *, category: str = "other",
                 in_context: bool = False) -> Verdict | None:
        """The verdict on a pair that needs no model, else None: the same text up to case,
        compatibility forms, spacing and punctuation (``same_text_key``; "3.5" and "35" stay
        apart), or the same words up to misspellings, is accepted unless a principled rule
        vetoes it."""
        if same_text_key(query) == same_text_key(cached):
            return self._ruled(query, cached, SAME_TEXT_REASON, category, in_context)
        if self.misspellings and self._misspelt(query, cached):
            return self._ruled(query, cached, MISSPELT_REASON, category, in_context)
        return None

    def _misspelt(self, query: str, cached: str) -> bool:
        if self._typos is None:  # the model's own word list tells real words from misspellings
            self._typos = Misspellings(getattr(self.model, "vocabulary", ()))
        # with no word list, "rest" / "reset" would pass for a typo: the model decides
        return bool(self._typos.vocabulary) and self._typos.same_question(query, cached)

    def verify_many(self, query: str, cached: Sequence[str], *, category: str = "other",
                    in_context: bool = False) -> list[tuple[float, Verdict]]:
        """(score, verdict) for each cached question: pairs the pre-check decides get
        ``SAME_TEXT_SCORE`` and no model run, the others are scored in one model call."""
        if not isinstance(query, str) or not all(isinstance(c, str) for c in cached):
            raise TypeError("query and every cached question must be str")
        if not isinstance(category, str):
            raise TypeError(f"category must be a str, got {type(category).__name__}")
        out: list[tuple[float, Verdict] | None] = [None] * len(cached)
        rest = []
        for i, text in enumerate(cached):
            verdict = self.precheck(query, text, category=category, in_context=in_context)
            if verdict is None:
                rest.append(i)
            else:
                out[i] = (SAME_TEXT_SCORE, verdict)
        if rest:
            bar = self.threshold(category)
            scores = self.scores(query, [cached[i] for i in rest])
            for i, score in zip(rest, scores, strict=True):
                out[i] = (score, self._decide(query, cached[i], score, bar, category, in_context))
        return [r for r in out if r is not None]

    def verify(self, query: str, cached: str, *, category: str = "other",
               in_context: bool = False) -> Verdict:
        """The ``Verifier`` protocol: one candidate."""
        return self.verify_many(query, [cached], category=category, in_context=in_context)[0][1]

    def _decide(self, query: str, cached: str, score: float, bar: float, category: str,
                in_context: bool) -> Verdict:
        if score < bar:
            return Verdict(False, f"pair score {score:.3f} below {bar:.3f}", "model")
        return self._ruled(query, cached, f"pair score {score:.3f} >= {bar:.3f}", category, in_context)

    def _ruled(self, query: str, cached: str, reason: str, category: str, in_context: bool) -> Verdict:
        """Accepted with ``reason``, unless a principled rule (with ``rules`` on) vetoes the pair."""
        if self.rules:
            # the hard-negative verifier runs these checks before its entity and content ones,
            # so a rejection naming one of them is that rule's own finding
            verdict = self._rules.verify(query, cached, category=category, in_context=in_context)
            if not verdict.accepted and verdict.rule in PRINCIPLED_RULES:
                return verdict
        return Verdict(True, reason, None)
