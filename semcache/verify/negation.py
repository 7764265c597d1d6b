"""Negation and antonyms: "enable" is not "disable", "can" is not "can't".

Two checks. ``negation_change`` compares how many negators each question holds
(after contractions were expanded, "isn't" is "is not"): an odd difference flips
the meaning. ``antonym_pair`` says whether two words are opposites, from a list
of common pairs or from a negating prefix ("install"/"uninstall",
"increase"/"decrease", "upload"/"download").
"""

from __future__ import annotations

from collections.abc import Sequence

NEGATORS: frozenset[str] = frozenset(
    {"not", "no", "never", "without", "none", "nobody", "nothing", "neither", "nor", "nowhere"}
)

_PAIRS: tuple[tuple[str, str], ...] = (
    ("enable", "disable"),
    ("on", "off"),
    ("turn-on", "turn-off"),
    ("open", "close"),
    ("open", "closed"),
    ("start", "stop"),
    ("start", "end"),
    ("start", "finish"),
    ("begin", "end"),
    ("begin", "finish"),
    ("before", "after"),
    ("increase", "decrease"),
    ("increase", "reduce"),
    ("raise", "lower"),
    ("add", "remove"),
    ("add", "delete"),
    ("add", "subtract"),
    ("with", "without"),
    ("true", "false"),
    ("yes", "no"),
    ("high", "low"),
    ("higher", "lower"),
    ("up", "down"),
    ("in", "out"),
    ("push", "pull"),
    ("send", "receive"),
    ("import", "export"),
    ("buy", "sell"),
    ("win", "lose"),
    ("won", "lost"),
    ("winner", "loser"),
    ("hot", "cold"),
    ("warm", "cool"),
    ("fast", "slow"),
    ("quickly", "slowly"),
    ("big", "small"),
    ("large", "small"),
    ("long", "short"),
    ("tall", "short"),
    ("longest", "shortest"),
    ("tallest", "shortest"),
    ("max", "min"),
    ("maximum", "minimum"),
    ("largest", "smallest"),
    ("biggest", "smallest"),
    ("highest", "lowest"),
    ("most", "least"),
    ("more", "less"),
    ("more", "fewer"),
    ("over", "under"),
    ("above", "below"),
    ("first", "last"),
    ("oldest", "newest"),
    ("old", "new"),
    ("older", "newer"),
    ("older", "younger"),
    ("old", "young"),
    ("earliest", "latest"),
    ("early", "late"),
    ("light", "dark"),
    ("light", "heavy"),
    ("good", "bad"),
    ("best", "worst"),
    ("better", "worse"),
    ("love", "hate"),
    ("like", "hate"),
    ("allow", "deny"),
    ("allow", "block"),
    ("accept", "reject"),
    ("include", "exclude"),
    ("read", "write"),
    ("input", "output"),
    ("left", "right"),
    ("top", "bottom"),
    ("front", "back"),
    ("inside", "outside"),
    ("internal", "external"),
    ("public", "private"),
    ("plus", "minus"),
    ("positive", "negative"),
    ("rise", "set"),
    ("sunrise", "sunset"),
    ("day", "night"),
    ("morning", "evening"),
    ("freezing", "boiling"),
    ("freeze", "boil"),
    ("melt", "freeze"),
    ("hard", "soft"),
    ("wet", "dry"),
    ("full", "empty"),
    ("thick", "thin"),
    ("wide", "narrow"),
    ("deep", "shallow"),
    ("deepest", "shallowest"),
    ("rich", "poor"),
    ("cheap", "expensive"),
    ("easy", "difficult"),
    ("safe", "dangerous"),
    ("visible", "hidden"),
    ("show", "hide"),
    ("expand", "collapse"),
    ("gain", "lose"),
    ("profit", "loss"),
    ("parent", "child"),
    ("ascending", "descending"),
    ("asc", "desc"),
    ("horizontal", "vertical"),
    ("sync", "async"),
    ("client", "server"),
    ("source", "destination"),
    ("north", "south"),
    ("east", "west"),
    ("male", "female"),
    ("men", "women"),
    ("boy", "girl"),
    ("adult", "child"),
    ("adult", "kid"),
    ("within", "after"),
    ("since", "until"),
    ("create", "destroy"),
    ("build", "destroy"),
    ("borrow", "lend"),
    ("give", "take"),
    ("arrive", "leave"),
    ("arrival", "departure"),
    ("enter", "exit"),
    ("come", "go"),
    ("keep", "remove"),
    ("keep", "discard"),
    ("keep", "delete"),
    ("join", "split"),
    ("merge", "split"),
    ("upper", "lower"),
    ("uppercase", "lowercase"),
    ("sign-in", "sign-out"),
    ("login", "logout"),
    ("log-in", "log-out"),
    ("renew", "cancel"),
    ("pause", "resume"),
    ("fall", "rise"),
    ("built", "fell"),
    ("temporarily", "permanently"),
    ("temporary", "permanent"),
    ("partial", "full"),
    ("success", "failure"),
    ("pass", "fail"),
    ("correct", "incorrect"),
    ("remember", "forget"),
    ("wrong", "right"),
    ("inbound", "outbound"),
    ("increasing", "decreasing"),
    ("strong", "weak"),
    ("loud", "quiet"),
    ("happy", "sad"),
    ("upgrade", "downgrade"),
    ("restore", "delete"),
    ("abnormal", "normal"),
    ("exterior", "interior"),
    ("even", "odd"),
    ("lend", "borrow"),
    ("previous", "next"),
    ("past", "future"),
    ("yesterday", "tomorrow"),
)
_ANTONYMS: frozenset[frozenset[str]] = frozenset(frozenset(p) for p in _PAIRS)

# One word equals the other with a negating or opposite prefix swapped in.
_PREFIX_SWAPS: tuple[tuple[str, str], ...] = (
    ("", "un"),
    ("", "dis"),
    ("", "in"),
    ("", "im"),
    ("", "il"),
    ("", "ir"),
    ("", "non"),
    ("", "de"),
    ("", "anti"),
    ("", "mis"),
    ("in", "de"),
    ("en", "de"),
    ("in", "ex"),
    ("im", "ex"),
    ("up", "down"),
    ("over", "under"),
    ("pre", "post"),
    ("in", "out"),
    ("max", "min"),
    ("inc", "exc"),
    ("ascend", "descend"),
)


def antonym_pair(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` are opposites (listed pair or prefix-derived)."""
    if a == b:
        return False
    if frozenset((a, b)) in _ANTONYMS:
        return True
    if len(a) < 4 or len(b) < 4:
        return False
    if a[-4:] != b[-4:]:  # cheap filter: a prefix swap keeps the word's tail
        return (a.endswith("ful") and b.endswith("less") and a[:-3] == b[:-4] and len(a) > 5) or (
            b.endswith("ful") and a.endswith("less") and b[:-3] == a[:-4] and len(b) > 5
        )
    for x, y in ((a, b), (b, a)):
        for p, q in _PREFIX_SWAPS:
            if x.startswith(p) and y.startswith(q):
                rest_x, rest_y = x[len(p) :], y[len(q) :]
                if rest_x == rest_y and len(rest_x) >= 4:
                    return True
    return False


def negation_change(a: Sequence[str], b: Sequence[str]) -> str | None:
    """The negator that one side adds (or removes), when the counts differ in parity."""
    na = [w for w in a if w in NEGATORS]
    nb = [w for w in b if w in NEGATORS]
    if len(na) % 2 == len(nb) % 2:
        return None
    if len(nb) > len(na):
        extra = [w for w in nb if w not in na] or nb
        return f"negation added: {extra[0]}"
    extra = [w for w in na if w not in nb] or na
    return f"negation removed: {extra[0]}"


def find_antonyms(removed: Sequence[str], added: Sequence[str]) -> tuple[str, str] | None:
    """The first (removed, added) pair of opposites, if any."""
    for r in removed:
        for d in added:
            if antonym_pair(r, d):
                return r, d
    return None
