"""Numeric bounds of what the store accepts, and safe forms of values that exceed them.

The API schemas reject values outside these bounds with a 400; the store applies them again
(clamping ages and retention periods, skipping ids no row can have) so that a value already
in the database, or one that reaches the store another way, cannot break an operation later.
"""

from __future__ import annotations

import datetime as dt
import math

MAX_ID = 2**63 - 1  # the largest id a 64-bit key can hold (entries, keys, audit rows)
MAX_INT32 = 2**31 - 1  # Integer columns on PostgreSQL (token counts, TTLs, quotas)
MAX_OFFSET = 10**9  # a listing offset no store of this kind reaches
MAX_AGE_S = 100 * 366 * 86400.0  # ages and TTLs: a hundred years, in seconds
MAX_RETENTION_DAYS = 36_600  # a hundred years
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def is_id(value: object) -> bool:
    """True for an int that a row id can be (1 to ``MAX_ID``)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def clamp_age_s(seconds: float) -> float:
    """``seconds`` limited to ``[0, MAX_AGE_S]``; NaN counts as 0."""
    if isinstance(seconds, float) and math.isnan(seconds):
        return 0.0
    return min(max(float(seconds), 0.0), MAX_AGE_S)


def cutoff(now: dt.datetime, age_s: float) -> dt.datetime:
    """``now - age_s`` seconds, never before 1970 (an age beyond any entry's means "all")."""
    age = clamp_age_s(age_s)
    try:
        return max(now - dt.timedelta(seconds=age), _EPOCH.astimezone(now.tzinfo) if now.tzinfo else
                   _EPOCH.replace(tzinfo=None))
    except OverflowError:
        return _EPOCH if now.tzinfo else _EPOCH.replace(tzinfo=None)


def retention_age_s(days: int | None) -> float | None:
    """A retention period in seconds, clamped to ``MAX_RETENTION_DAYS``; None for no limit."""
    if days is None or isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        return None
    return min(days, MAX_RETENTION_DAYS) * 86400.0


def clamp_count(value: int) -> int:
    """A count for an Integer column: limited to ``[0, MAX_INT32]``."""
    return min(max(int(value), 0), MAX_INT32)
