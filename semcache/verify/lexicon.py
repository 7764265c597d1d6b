"""General word lists: function words, question framing, synonyms and contractions.

Function and framing words carry no answer-changing meaning on their own ("how do I",
"what's the best way to", "please"), so the verifier ignores them when it compares two
questions. Synonym groups map common interchangeable words onto one canonical form, so
"turn on" and "enable", or "yearly" and "annual", compare equal.
"""

from __future__ import annotations

import re

FUNCTION_WORDS: frozenset[str] = frozenset(
    """
a an the this that these those it its it's itself they them their there here
i me my mine myself we us our you your yours he him his she her hers one's
is am are was were be been being do does did done doing have has had having
will would shall should can could may might must
what which who whom whose when where why how whether if then than so as such
of at by for on in to into onto from with about as upon via per
and or but nor also too very really just quite rather actually basically exactly
any anything something someone somebody thing things stuff many much cause causes whenever number
usually typically normally generally commonly
please kindly thanks thank hi hello hey ok okay well like
way ways method methods approach steps step process procedure trick tricks technique
best good right proper correct simplest easiest cleanest neatest recommended ideal
tell show give explain describe find know learn understand help need want wondering
get got go going make let try looking look
option options possible possibly able
is there are there
i'm i've i'd i'll you're you've we're what's how's who's where's when's that's
""".split()
)

# Words that open or frame a request without changing what is asked.
FRAMING_WORDS: frozenset[str] = frozenset(
    """
calculate compute determine solve work figure evaluate
recommend suggest suggestion suggestions idea ideas
question ask asking wonder curious
safely safe okay ok fine
""".split()
)

CONTRACTIONS: dict[str, str] = {
    "can't": "can not",
    "cannot": "can not",
    "won't": "will not",
    "shan't": "shall not",
    "n't": " not",
    "'re": " are",
    "'ve": " have",
    "'ll": " will",
    "'d": " would",
    "'m": " am",
    "it's": "it is",
    "what's": "what is",
    "how's": "how is",
    "who's": "who is",
    "where's": "where is",
    "when's": "when is",
    "that's": "that is",
    "there's": "there is",
    "let's": "let us",
}
_CONTRACTION_RE = re.compile(
    r"\b(can't|cannot|won't|shan't|it's|what's|how's|who's|where's|"
    r"when's|that's|there's|let's)\b|n't\b|'re\b|'ve\b|'ll\b|'d\b|'m\b"
)


def expand_contractions(text: str) -> str:
    """Expand English contractions in lower-cased text ("doesn't" -> "does not")."""
    return _CONTRACTION_RE.sub(lambda m: CONTRACTIONS[m.group(0)], text.replace("\u2019", "'"))


# Each group: words that ask the same thing. The first word is the canonical form.
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("enable", "activate", "turn-on", "switch-on"),
    ("disable", "deactivate", "turn-off", "switch-off"),
    ("remove", "delete", "drop", "erase", "eliminate", "get-rid", "clear", "strip"),
    ("create", "make", "build", "generate", "produce", "construct", "compose", "write-up"),
    ("fix", "repair", "resolve", "solve", "troubleshoot", "sort-out", "mend"),
    ("change", "modify", "alter", "update", "edit", "adjust", "switch", "swap"),
    ("show", "display", "print", "output", "list-out"),
    ("start", "begin", "launch", "open-up", "kick-off", "initiate"),
    ("stop", "halt", "end", "terminate", "quit", "kill", "cancel"),
    ("big", "large", "huge", "great", "sizable"),
    ("small", "little", "tiny", "short-sized"),
    ("fast", "quick", "quickly", "rapid", "rapidly", "speedy", "swift"),
    ("slow", "slowly", "sluggish"),
    ("buy", "purchase"),
    ("reverse", "invert", "flip"),
    ("convert", "turn", "transform", "cast", "parse"),
    ("combine", "merge", "join", "concatenate", "concat"),
    ("annual", "yearly", "per-year"),
    ("monthly", "per-month"),
    ("daily", "every-day", "per-day", "each-day"),
    ("weekly", "per-week"),
    (
        "now",
        "currently",
        "current",
        "presently",
        "present",
        "right-now",
        "at-the-moment",
        "these-days",
        "nowadays",
        "moment",
    ),
    ("latest", "newest", "most-recent", "recent"),
    ("tv", "television"),
    ("movie", "film", "picture"),
    ("theater", "theatre", "cinema"),
    ("sea", "ocean"),
    ("kid", "child", "children", "kids"),
    ("car", "automobile", "vehicle"),
    ("bike", "bicycle"),
    ("tire", "tyre"),
    ("sweater", "jumper", "pullover"),
    ("drywall", "plasterboard", "gypsum-board"),
    ("colour", "color"),
    ("doctor", "physician", "gp"),
    ("medicine", "medication", "drug", "meds", "pill", "pills", "tablet", "tablets"),
    ("symptom", "sign", "signs", "indication"),
    ("influenza", "flu"),
    ("probability", "chance", "odds", "likelihood"),
    ("improve", "boost", "raise", "better"),
    ("derivative", "differentiate", "derive"),
    ("integral", "integrate", "antiderivative"),
    ("plan", "organize", "arrange"),
    ("replace", "swap-out", "change-out"),
    ("before", "ahead-of", "prior-to"),
    ("side-effect", "adverse-effect"),
    ("elderly", "older-adult", "senior", "seniors", "older-people", "older"),
    ("fever", "temperature"),
    ("phone", "smartphone", "mobile", "cellphone"),
    ("app", "application"),
    ("login", "log-in", "sign-in", "signin"),
    ("logout", "log-out", "sign-out", "signout"),
    ("refund", "money-back", "reimbursement"),
    ("subscription", "membership"),
    ("account", "profile"),
    ("mean", "average"),
    ("multiply", "times", "product"),
    ("sum", "total", "add-up", "add-together"),
    ("percent", "%", "per-cent", "percentage"),
    ("all", "every"),
    ("integer", "int"),
    ("happen", "occur", "take-place"),
    ("author", "writer", "wrote", "write", "written", "penned"),
    ("painter", "painted", "artist", "paint"),
    ("funny", "fun", "humorous", "amusing", "hilarious"),
    ("interesting", "cool", "neat", "fascinating"),
    ("good", "nice", "great", "decent", "fine"),
    ("cozy", "cosy"),
    ("country", "nation"),
    ("city", "town"),
    ("price", "cost", "worth", "rate", "trading"),
    ("population", "inhabitant", "inhabitants", "people", "resident", "residents", "live", "lived"),
    ("typical", "usual", "normal", "standard", "regular"),
    ("function", "func", "method"),
    ("directory", "folder", "dir"),
    ("file", "document"),
    ("error", "exception", "failure", "problem", "issue", "bug"),
    ("crash", "crashes", "crashing", "break", "fails"),
    ("install", "setup", "set-up"),
    ("configure", "config", "set-up"),
    ("question", "query"),
)

_SYNONYMS: dict[str, str] = {}
for _group in SYNONYM_GROUPS:
    for _w in _group:
        _SYNONYMS.setdefault(_w, _group[0])

# Multi-word expressions joined into one token before comparison.
PHRASES: tuple[tuple[str, str], ...] = (
    ("turn on", "turn-on"),
    ("switch on", "switch-on"),
    ("turn off", "turn-off"),
    ("switch off", "switch-off"),
    ("right now", "right-now"),
    ("at the moment", "at-the-moment"),
    ("these days", "these-days"),
    ("at present", "now"),
    ("most recent", "most-recent"),
    ("log in", "log-in"),
    ("sign in", "sign-in"),
    ("log out", "log-out"),
    ("sign out", "sign-out"),
    ("per cent", "per-cent"),
    ("get rid of", "get-rid"),
    ("side effects", "side-effect"),
    ("side effect", "side-effect"),
    ("adverse effects", "adverse-effect"),
    ("older adults", "older-adult"),
    ("older adult", "older-adult"),
    ("older people", "older-people"),
    ("money back", "money-back"),
    ("set up", "set-up"),
    ("every day", "every-day"),
    ("per day", "per-day"),
    ("each day", "each-day"),
    ("per year", "per-year"),
    ("per month", "per-month"),
    ("per week", "per-week"),
    ("at most", "at-most"),
    ("at least", "at-least"),
    ("add up", "add-up"),
    ("take place", "take-place"),
    ("two factor", "2fa"),
    ("two-factor authentication", "2fa"),
    ("2-factor", "2fa"),
    ("ahead of", "ahead-of"),
    ("prior to", "prior-to"),
    ("every time", "whenever"),
    ("each time", "whenever"),
    ("sci-fi", "science fiction"),
    ("u.s.", "united states"),
    ("us inflation", "united states inflation"),
)


_IES_PLURALS = frozenset(
    "movies cookies calories zombies selfies pies ties lies species series rookies hippies".split()
)


def canonical_word(word: str) -> str:
    """The canonical form of ``word``: its synonym group head, else its light stem."""
    if word in _SYNONYMS:
        return _SYNONYMS[word]
    stem = light_stem(word)
    if stem in _SYNONYMS:
        return _SYNONYMS[stem]
    for suffix, repl in (("ed", ""), ("ed", "e"), ("d", ""), ("ing", ""), ("ing", "e")):
        base = word[: -len(suffix)] + repl if word.endswith(suffix) else ""
        if len(base) >= 3 and base in _SYNONYMS:
            return _SYNONYMS[base]
    return stem


def light_stem(word: str) -> str:
    """Strip a plural or possessive ending so that "files" and "file's" compare equal."""
    if word.endswith("'s"):
        word = word[:-2]
    for british, american in (
        ("ise", "ize"),
        ("ising", "izing"),
        ("ised", "ized"),
        ("isation", "ization"),
    ):
        if len(word) > 6 and word.endswith(british):
            word = word[: -len(british)] + american
            break
    if len(word) > 4 and word.endswith("ies"):
        return word[:-1] if word in _IES_PLURALS else word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def is_function_word(word: str) -> bool:
    """True for words that never change what a question asks on their own."""
    return word in FUNCTION_WORDS or word in FRAMING_WORDS
