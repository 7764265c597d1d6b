"""Numbers and units: "three" equals "3", "10 mg" differs from "100 mg".

``normalize_numbers`` rewrites number words as digits and splits a number from
a glued unit ("10mg" -> "10 mg"), so the aligner sees one token per quantity.
``canonical_unit`` maps unit spellings onto one symbol ("kilometres" -> "km").
"""

from __future__ import annotations

import re

_UNITS: dict[str, str] = {}
for _canon, _spellings in {
    "mg": "mg milligram milligrams",
    "mcg": "mcg microgram micrograms µg",
    "g": "g gram grams gr",
    "kg": "kg kgs kilogram kilograms kilo kilos",
    "lb": "lb lbs pound pounds",
    "oz": "oz ounce ounces",
    "ml": "ml millilitre millilitres milliliter milliliters",
    "l": "l litre litres liter liters",
    "km": "km kilometre kilometres kilometer kilometers",
    "m": "m metre metres meter meters",
    "cm": "cm centimetre centimetres centimeter centimeters",
    "mm": "mm millimetre millimetres millimeter millimeters",
    "mi": "mi mile miles",
    "ft": "ft foot feet",
    "in": "inch inches",
    "yd": "yd yard yards",
    "c": "c celsius °c",
    "f": "fahrenheit °f",
    "%": "% percent percentage per-cent",
    "s": "s sec secs second seconds",
    "min": "mins minute minutes",
    "h": "h hr hrs hour hours",
    "day": "day days",
    "week": "week weeks",
    "month": "month months",
    "year": "year years yr yrs",
    "gb": "gb gigabyte gigabytes",
    "mb": "mb megabyte megabytes",
    "kb": "kb kilobyte kilobytes",
    "tb": "tb terabyte terabytes",
    "ghz": "ghz",
    "mhz": "mhz",
    "hz": "hz",
    "v": "v volt volts",
    "w": "w watt watts",
    "kw": "kw kilowatt kilowatts",
    "mph": "mph",
    "kmh": "kmh km/h",
    "iu": "iu",
    "usd": "usd $ dollar dollars",
    "eur": "eur € euro euros",
    "gbp": "gbp £",
    "cup": "cup cups",
    "tbsp": "tbsp tablespoon tablespoons",
    "tsp": "tsp teaspoon teaspoons",
    "deg": "deg degree degrees °",
}.items():
    for _s in _spellings.split():
        _UNITS[_s] = _canon

_ONES = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "a dozen": 12,
    "dozen": 12,
    "single": 1,
    "twice": 2,
    "thrice": 3,
    "once": 1,
    "half": 0.5,
    "couple": 2,
    "pair": 2,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000}
# Words that count but are not cardinals in the running text ("twice" = "two times").
_TIMES_WORDS = {"once": "1 times", "twice": "2 times", "thrice": "3 times"}

_NUMBER_WORD = "|".join(
    sorted(
        [*(_ONES.keys() - {"a dozen", "half", "couple", "pair", "single"}), *_TENS, *_SCALES],
        key=len,
        reverse=True,
    )
)
_WORD_RUN = re.compile(rf"\b(?:{_NUMBER_WORD})(?:[\s-]+(?:and[\s-]+)?(?:{_NUMBER_WORD}))*\b")
_GLUED = re.compile(r"\b(\d+(?:\.\d+)?)([a-zµ°%]+)\b")
_NUM_TOKEN = re.compile(r"^-?\d+(?:[.,]\d+)*$")


def _words_to_value(words: list[str]) -> float | None:
    total, current = 0.0, 0.0
    for w in words:
        if w == "and":
            continue
        if w in _ONES:
            current += _ONES[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w in _SCALES:
            current = (current or 1) * _SCALES[w]
            if _SCALES[w] >= 1000:
                total, current = total + current, 0.0
        else:
            return None
    return total + current


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def normalize_numbers(text: str) -> str:
    """Spell numbers as digits and split glued units; ``text`` must be lower-cased."""
    for word, repl in _TIMES_WORDS.items():
        text = re.sub(rf"\b{word}\b", repl, text)

    def run(m: re.Match[str]) -> str:
        value = _words_to_value(re.split(r"[\s-]+", m.group(0)))
        return m.group(0) if value is None else _fmt(value)

    text = _WORD_RUN.sub(run, text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 -> 1000

    def glued(m: re.Match[str]) -> str:
        unit = m.group(2)
        if unit in _UNITS or unit in ("st", "nd", "rd", "th"):
            return f"{m.group(1)} {unit}" if unit in _UNITS else m.group(0)
        return m.group(0)

    return _GLUED.sub(glued, text)


def is_number(token: str) -> bool:
    """True for a plain numeric token ("10", "3.5", "2019")."""
    return bool(_NUM_TOKEN.match(token))


def has_digit(token: str) -> bool:
    """True for tokens such as "e04", "3x", "covid-19" or "2fa" that contain a digit."""
    return any(ch.isdigit() for ch in token)


def canonical_unit(token: str) -> str | None:
    """The canonical unit symbol for ``token``, or None when it is not a unit."""
    return _UNITS.get(token)


def number_value(token: str) -> str:
    """A comparable form of a numeric token ("3.0" -> "3")."""
    try:
        return _fmt(float(token.replace(",", "")))
    except ValueError:
        return token
