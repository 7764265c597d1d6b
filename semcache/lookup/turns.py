"""Role-tagged conversation turns, and the details a turn carries.

``Turn`` is one message of a conversation (user, assistant or tool). ``as_turns`` accepts
the old form too: a plain string is a user turn. ``details`` pulls out what must be equal
for two contexts to mean the same thing: named entities, numbers and dates, normalised
("two" = "2", "12 March" = "March 12", "Friday" = "this Friday"). The closed-class word lists
at the end serve the refers-back decision in ``followup``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

ROLES = ("user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class Turn:
    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"turn role must be one of {ROLES}, got {self.role!r}")
        if not isinstance(self.content, str):
            raise TypeError(f"turn content must be str, got {type(self.content).__name__}")


TurnLike = Turn | Mapping[str, Any] | str


def as_turns(history: Iterable[TurnLike]) -> tuple[Turn, ...]:
    """Turns from ``Turn``s, ``{"role", "content"}`` mappings or strings (user turns)."""
    out: list[Turn] = []
    for item in history:
        if isinstance(item, Turn):
            out.append(item)
        elif isinstance(item, str):
            out.append(Turn("user", item))
        elif isinstance(item, Mapping):
            out.append(Turn(str(item.get("role", "")), item.get("content") or ""))
        else:
            raise TypeError(f"expected a Turn, a mapping or a str, got {type(item).__name__}")
    return tuple(out)


WORD = re.compile(r"[A-Za-z0-9]+(?:[.:'’][A-Za-z0-9]+)*")

MONTH_NAMES = tuple("january february march april may june july august september october november "
                    "december".split())
MONTHS = {m[:3]: i + 1 for i, m in enumerate(MONTH_NAMES)}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
RELATIVE_DAYS = frozenset("today tonight tomorrow yesterday weekend".split())
NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero _ two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split()) if w != "_"}  # "one" is also a pronoun
TITLES = frozenset("dr mr mrs ms st prof".split())
# capitalised words that open sentences without naming anything
CLOSED_CLASS = frozenset(
    "a an the this that these those it its i i'd i'm i'll i've me my we our you your he she they them "
    "their his her and or but so if when while what which who whom whose where why how is are was were "
    "be been do does did can could will would shall should may might must have has had not no yes yeah "
    "yep ok okay sure please thanks thank hi hello hey there here also then just well oh great perfect "
    "fine right alright let let's any some all each every one both either neither same other another "
    "for to of in on at by with from about as into over after before under up down out off again "
    "once more most very too only still even now".split())

_DAY_MONTH = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?(?: of)? ([a-z]{3,9})\b")
_MONTH_DAY = re.compile(r"\b([a-z]{3,9})\.? (?:the )?(\d{1,2})(?:st|nd|rd|th)?\b")
_CLOCK = re.compile(r"\b(\d{1,2})(?::(\d{2}))? ?(am|pm|in the morning|in the afternoon|in the evening"
                    r"|at night)\b|\b(\d{1,2}):(\d{2})\b")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])")


@dataclass(frozen=True, slots=True)
class Details:
    entities: frozenset[str] = frozenset()
    numbers: frozenset[str] = frozenset()
    dates: frozenset[str] = frozenset()

    def __or__(self, other: Details) -> Details:
        return Details(self.entities | other.entities, self.numbers | other.numbers,
                       self.dates | other.dates)


def _month(word: str) -> int | None:
    """1-12 for a month name or its abbreviation ("mar", "sept"), else None."""
    number = MONTHS.get(word[:3])
    return number if number and MONTH_NAMES[number - 1].startswith(word) else None


def _dates(lower: str) -> tuple[set[str], str]:
    """Dates found in lower-cased text, and the text with them blanked out."""
    found: set[str] = set()

    def take(match: re.Match[str], month_group: int, day_group: int) -> str:
        month, day = _month(match.group(month_group)), int(match.group(day_group))
        if month is None or not 1 <= day <= 31:
            return match.group(0)
        found.add(f"{month:02d}-{day:02d}")
        return " "

    # month first: "for 3 May 5" reads as three on May 5
    lower = _MONTH_DAY.sub(lambda m: take(m, 1, 2), lower)
    lower = _DAY_MONTH.sub(lambda m: take(m, 2, 1), lower)
    for word in WORD.findall(lower):
        if word in WEEKDAYS or word in RELATIVE_DAYS:
            found.add(word)
    return found, lower


def _numbers(lower: str) -> set[str]:
    found: set[str] = set()
    for h, mins, half, h24, m24 in _CLOCK.findall(lower):
        later = half in ("pm", "in the afternoon", "in the evening", "at night")
        hour = int(h24) if h24 else int(h) % 12 + (12 if later else 0)
        found.add(f"{hour}:{m24 or mins or '00'}")
    lower = _CLOCK.sub(" ", lower)
    for match in _NUMBER.findall(lower):
        value = match.replace(",", "")
        found.add(value.rstrip("0").rstrip(".") if "." in value else str(int(value)))
    for word in WORD.findall(lower):
        if word in NUMBER_WORDS:
            found.add(str(NUMBER_WORDS[word]))
    return found


def entities(text: str) -> set[str]:
    """Runs of capitalised tokens (names), lower-cased, without a trailing possessive."""
    found: set[str] = set()
    run: list[str] = []
    tokens = [(m.group(0), m.start()) for m in WORD.finditer(text)]
    for i, (tok, start) in enumerate(tokens):
        before = text[:start].rstrip()
        initial = not before or (before[-1] in ".!?:;\"\n{[" and not (
            i and tokens[i - 1][0].lower() in TITLES))
        low = tok.lower().removesuffix("'s").removesuffix("’s")
        capital = any(c.isupper() for c in tok)
        name = capital and low not in CLOSED_CLASS and low not in WEEKDAYS and _month(low) is None
        if initial and name and not _next_capital(tokens, i):
            name = False  # a lone capital at a sentence start is usually an ordinary word
        digit_in_name = run and tok.isdigit() and not before.endswith(",") and not (
            i + 1 < len(tokens) and _month(tokens[i + 1][0].lower()) is not None)
        if name or digit_in_name:
            run.append(low)
            continue
        if run:
            found.add(" ".join(run))
        run = []
    if run:
        found.add(" ".join(run))
    return found


def _next_capital(tokens: Sequence[tuple[str, int]], i: int) -> bool:
    return i + 1 < len(tokens) and tokens[i + 1][0][:1].isupper() and (
        tokens[i + 1][0].lower() not in CLOSED_CLASS)


@lru_cache(maxsize=8192)  # a pure function of the text; a lookup asks for the same turns repeatedly
def details(text: str) -> Details:
    """The entities, numbers and dates of one text, normalised for comparison."""
    lower = text.lower()
    dates, rest = _dates(lower)
    return Details(frozenset(entities(text)), frozenset(_numbers(rest)), frozenset(dates))


def words(text: str) -> list[str]:
    """Lower-cased word tokens (apostrophes kept: "let's", "don't")."""
    return [w.replace("’", "'") for w in WORD.findall(text.lower())]


# Closed-class lexicon of the refers-back decision (followup.py): function words, reply
# particles, anaphors, list references. Linguistic classes, not topic words.
TOKEN = re.compile(r"[A-Za-z0-9]+(?:['’.:][A-Za-z0-9]+)*|[,;:!?()\u2014]")
WH = frozenset("what which who whom whose where when why how what's where's who's how's".split())
AUX = frozenset("is are was were am do does did can could will would shall should may might must have "
                "has had isn't aren't wasn't don't doesn't didn't can't couldn't won't wouldn't "
                "shouldn't i'm i'd i'll".split())
PREPOSITIONS = frozenset("for on at in with from to by without after before during near via "
                         "until".split())
OPENERS = frozenset("and but or plus also so then".split())
OPENER_PAIRS = frozenset({("what", "about"), ("how", "about"), ("same", "for"), ("same", "question"),
                          ("what", "if")})
PARTICLES = frozenset("yes yeah yep yup ya sure ok okay alright fine no nope nah absolutely definitely "
                      "certainly indeed agreed perfect great cool lovely right correct exactly".split())
AFFIRM = frozenset("yes yeah yep yup ya sure ok okay alright fine absolutely definitely certainly indeed "
                   "agreed perfect great cool lovely right correct exactly please proceed ahead "
                   "good works thanks thank".split())
DENY = frozenset("no nope nah not don't never".split())
# words of an accept/reject act that carry no topic of their own
REPLY = AFFIRM | DENY | frozenset("go do it that this let's lets sounds sound thing for me us "
                                  "then one be would that'd great".split())
ANAPHORS = frozenset("it its itself they them their theirs themselves he him his she her hers this "
                     "that these those there former latter".split())
COMPARATIVE = frozenset("another other else instead same also rest".split())
ORDINALS = frozenset("first second third fourth fifth sixth last middle latter former next".split())
LIST_NOUNS = frozenset("option options choice number no item #".split())
TIME_NOUNS = frozenset("morning afternoon evening night week weekend month year summer winter spring "
                       "autumn fall time season quarter".split()) | frozenset(WEEKDAYS)
DETERMINERS = frozenset("a an the my our your his her their some any this that these those".split())
BOUNDARIES = frozenset(", ; : ( ) \u2014 and but so because when if why how what where which who "
                       "while since".split())
SUBJECTS = frozenset("i you we they he she it the a an my your our his her their there this these "
                     "those all some".split())
BE = frozenset("is are was were be been 's isn't aren't".split())
FUNCTION = CLOSED_CLASS | AUX | WH | PREPOSITIONS | frozenset("'s let's".split())
