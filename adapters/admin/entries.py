"""Read-side queries of the entry browser: filtered, paged listings and savings per model.

Filters travel as bound parameters (through ``semcache.storage.queries``); a
search string is a case-insensitive substring with LIKE wildcards escaped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, select

from semcache.storage.bounds import MAX_OFFSET, cutoff
from semcache.storage.queries import ENTRIES, entry_filters
from semcache.storage.schema import utcnow

MAX_PAGE = 200
# Columns the browser shows; embeddings stay out of listings.
_LIST_COLUMNS = ("id", "tenant", "model", "category", "prompt", "created_at", "expires_at",
                 "hit_count", "last_hit_at", "wrong_reports", "tokens_saved", "cost_saved")


@dataclass(frozen=True, slots=True)
class EntryFilters:
    """What to select: all given filters must match. Ages are in seconds from now."""

    tenant: str | None = None
    category: str | None = None
    model: str | None = None
    text: str | None = None
    older_than_s: float | None = None
    newer_than_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("tenant", "category", "model", "text"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} filter must be a str or None, got {type(value).__name__}")
        for name in ("older_than_s", "newer_than_s"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or value < 0):
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")

    @classmethod
    def of(cls, **values: Any) -> EntryFilters:
        """Filters from form/query values: empty strings count as "not given"."""
        return cls(**{k: (None if v == "" else v) for k, v in values.items()})

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def older_than(self, now: dt.datetime) -> dt.datetime | None:
        return None if self.older_than_s is None else cutoff(now, self.older_than_s)

    def clauses(self, now: dt.datetime) -> list[ColumnElement[bool]]:
        """WHERE clauses for these filters at time ``now``."""
        out = entry_filters(self.tenant, self.category, self.model, self.text, self.older_than(now))
        if self.newer_than_s is not None:
            out.append(ENTRIES.c.created_at >= cutoff(now, self.newer_than_s))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def list_entries(engine: Engine, filters: EntryFilters, *, limit: int = 50, offset: int = 0,
                 now: dt.datetime | None = None) -> tuple[list[dict[str, Any]], int]:
    """One page of matching entries, newest first, and the total number that match."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be an int in [1, {MAX_PAGE}], got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be an int >= 0, got {offset!r}")
    offset = min(offset, MAX_OFFSET)  # past any row; SQL drivers overflow on larger ints
    where = filters.clauses(now or utcnow())
    columns = [ENTRIES.c[name] for name in _LIST_COLUMNS]
    query = (select(*columns).where(*where).order_by(ENTRIES.c.id.desc()).limit(limit).offset(offset))
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings().all()]
        total = int(conn.execute(select(func.count()).select_from(ENTRIES).where(*where)).scalar_one())
    return rows, total


def savings_by_model(engine: Engine) -> list[dict[str, Any]]:
    """Per model: entries, hits, tokens and recorded cost saved, and false-hit reports."""
    query = (select(ENTRIES.c.model, func.count().label("entries"),
                    func.coalesce(func.sum(ENTRIES.c.hit_count), 0).label("hits"),
                    func.coalesce(func.sum(ENTRIES.c.tokens_saved), 0).label("tokens_saved"),
                    func.coalesce(func.sum(ENTRIES.c.cost_saved), 0.0).label("cost_saved"),
                    func.coalesce(func.sum(ENTRIES.c.wrong_reports), 0).label("wrong_reports"))
             .group_by(ENTRIES.c.model).order_by(ENTRIES.c.model))
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    # PostgreSQL sums integers as NUMERIC (Decimal): convert to plain numbers.
    return [{"model": r["model"], "entries": int(r["entries"]), "hits": int(r["hits"]),
             "tokens_saved": int(r["tokens_saved"]), "cost_saved": float(r["cost_saved"]),
             "wrong_reports": int(r["wrong_reports"])} for r in rows]


def wrong_reports_by(engine: Engine, column: str) -> dict[str, int]:
    """False-hit reports summed per ``category`` or ``tenant``."""
    if column not in ("category", "tenant"):
        raise ValueError(f"column must be 'category' or 'tenant', got {column!r}")
    col = ENTRIES.c[column]
    query = select(col, func.coalesce(func.sum(ENTRIES.c.wrong_reports), 0)).group_by(col)
    with engine.connect() as conn:
        return {str(k): int(v) for k, v in conn.execute(query).all()}
