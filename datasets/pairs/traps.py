"""Rule-based trap templates: one-word or one-number changes that must miss.

Each split has its own word lists (``TRAIN_RULES`` / ``HELDOUT_RULES``), so the
held-out split tests trap words the model never saw. A rule is (kind, old, new):
``old`` is matched as a whole word, case-insensitively, and replaced by ``new``.
Numbers are changed by ``change_number`` with split-specific arithmetic.
"""

from __future__ import annotations

import random
import re

Rule = tuple[str, str, str]


def _both(kind: str, pairs: list[tuple[str, str]]) -> list[Rule]:
    return [(kind, a, b) for a, b in pairs] + [(kind, b, a) for a, b in pairs]


TRAIN_RULES: list[Rule] = (
    _both("negation", [
        ("enable", "disable"), ("turn on", "turn off"), ("add", "remove"),
        ("increase", "decrease"), ("start", "stop"), ("upgrade", "downgrade"),
        ("import", "export"), ("lock", "unlock"), ("show", "hide"), ("with", "without"),
        ("subscribe", "unsubscribe"), ("connect", "disconnect"), ("include", "exclude"),
        ("upload", "download"), ("before", "after"), ("send", "receive"),
        ("largest", "smallest"), ("longest", "shortest"), ("higher", "lower"),
        ("best", "worst"), ("lower", "raise"),
    ])
    + _both("scope_change", [
        ("my", "our"), ("all", "some"), ("first", "last"), ("always", "sometimes"),
        ("local", "remote"), ("adults", "children"),
    ])
    + [("scope_change", "this", "last"), ("scope_change", "everything", "something")]
    + _both("time_shift", [
        ("today", "yesterday"), ("this week", "last week"), ("this month", "next month"),
        ("tonight", "last night"),
    ])
    + _both("number_swap", [
        ("mg", "g"), ("km", "miles"), ("GB", "MB"), ("minutes", "hours"), ("days", "weeks"),
        ("kg", "lb"), ("Celsius", "Fahrenheit"), ("litres", "gallons"),
        ("monthly", "annual"), ("March", "May"), ("January", "June"), ("Monday", "Friday"),
    ])
)
HELDOUT_RULES: list[Rule] = (
    _both("negation", [
        ("buy", "sell"), ("deposit", "withdraw"), ("arrive", "depart"),
        ("cheapest", "most expensive"), ("early", "late"), ("inbound", "outbound"),
        ("domestic", "international"), ("check-in", "check-out"),
        ("maximum", "minimum"), ("gain", "loss"), ("ahead", "behind"), ("sunset", "sunrise"),
    ])
    + _both("scope_change", [
        ("my", "their"), ("each", "any"), ("whole", "partial"), ("both", "either"),
        ("business", "first"), ("solo", "in a group"),
    ])
    + _both("time_shift", [
        ("today", "tomorrow"), ("this morning", "this evening"), ("this weekend", "next weekend"),
        ("right now", "last year"), ("last night", "tonight"), ("this year", "last year"),
        ("this week", "next week"), ("at the moment", "a month ago"), ("currently", "in 2019"),
    ])
    + _both("number_swap", [
        ("dollars", "euros"), ("pounds", "dollars"), ("hours", "minutes"), ("years", "months"),
        ("ounce", "gram"), ("week", "fortnight"), ("Saturday", "Thursday"), ("Sunday", "Monday"),
    ])
)

_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")


def change_number(text: str, rng: random.Random, heldout: bool) -> str | None:
    """Change one number in ``text`` (split-specific arithmetic), or None if none."""
    found = list(_NUMBER.finditer(text))
    if not found:
        return None
    m = rng.choice(found)
    value = float(m.group(0))
    if heldout:
        new = rng.choice([value - 1 if value > 1 else value + 3, value * 5, value / 2 + 1])
    else:
        new = rng.choice([value + 1, value * 2, value * 10, value + 5])
    new_text = str(int(new)) if float(new).is_integer() else f"{new:g}"
    if new_text == m.group(0):
        new_text = str(int(value) + 7)
    return text[: m.start()] + new_text + text[m.end() :]


def apply_rule(text: str, rule: Rule) -> str | None:
    """Replace the first whole-word match of the rule's word, keeping its case."""
    _, old, new = rule
    m = re.search(rf"(?<![\w'-]){re.escape(old)}(?![\w'-])", text, flags=re.IGNORECASE)
    if m is None:
        return None
    if m.group(0)[0].isupper():
        new = new[0].upper() + new[1:]
    return text[: m.start()] + new + text[m.end() :]


def rule_traps(text: str, rules: list[Rule], rng: random.Random) -> list[tuple[str, str, str]]:
    """At most one trap per kind: (kind, trap text, template name)."""
    by_kind: dict[str, list[tuple[str, str]]] = {}
    for rule in rules:
        out = apply_rule(text, rule)
        if out is not None:
            by_kind.setdefault(rule[0], []).append((out, f"{rule[1]}->{rule[2]}"))
    return [(kind, *rng.choice(options)) for kind, options in sorted(by_kind.items())]
