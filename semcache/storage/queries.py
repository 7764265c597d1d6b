"""SQL building blocks for the store's entry queries (filters, deletes, document links).

Every filter value travels as a bound parameter; nothing is formatted into SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from sqlalchemy import ColumnElement, Connection, Table, delete, select

from semcache.storage.bounds import is_id
from semcache.storage.schema import Entry, EntryDocument

ENTRIES: Table = Entry.__table__  # type: ignore[assignment]
DOCS: Table = EntryDocument.__table__  # type: ignore[assignment]
CHUNK = 500  # ids per IN (...) clause, well under SQLite's bound-parameter limit


def chunks(ids: list[int]) -> Iterator[list[int]]:
    """``ids`` in slices of at most ``CHUNK``."""
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def check_ids(ids: Iterable[int]) -> list[int]:
    """Sorted, de-duplicated entry ids; ``TypeError`` for anything but ints. Ids no row can have
    (below 1 or above a 64-bit key) are left out: SQL drivers overflow on them."""
    if isinstance(ids, str | bytes) or not isinstance(ids, Iterable):
        raise TypeError(f"ids must be an iterable of ints, got {type(ids).__name__}")
    out = sorted(set(ids))
    for entry_id in out:
        if isinstance(entry_id, bool) or not isinstance(entry_id, int):
            raise TypeError(f"entry ids must be ints, got {entry_id!r}")
    return [entry_id for entry_id in out if is_id(entry_id)]


def check_now(now: dt.datetime) -> dt.datetime:
    """``now`` if it is a timezone-aware datetime, else ``ValueError``."""
    if not isinstance(now, dt.datetime) or now.tzinfo is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")
    return now


def not_expired(now: dt.datetime) -> ColumnElement[bool]:
    """Entries without an expiry, or expiring after ``now``."""
    check_now(now)
    return ENTRIES.c.expires_at.is_(None) | (ENTRIES.c.expires_at > now)


def entry_filters(
    tenant: str | None = None,
    category: str | None = None,
    model: str | None = None,
    text: str | None = None,
    older_than: dt.datetime | None = None,
    partition: str | None = None,
) -> list[ColumnElement[bool]]:
    """WHERE clauses for the admin filters (``text``: case-insensitive substring of the prompt)."""
    clauses: list[ColumnElement[bool]] = []
    exact = {"tenant": tenant, "category": category, "model": model, "partition": partition}
    for column, value in exact.items():
        if value is not None:
            if not isinstance(value, str):
                raise TypeError(f"{column} filter must be a str, got {type(value).__name__}")
            clauses.append(ENTRIES.c[column] == value)
    if text is not None:
        if not isinstance(text, str) or not text:
            raise ValueError(f"text filter must be a non-empty string, got {text!r}")
        clauses.append(ENTRIES.c.prompt.icontains(text, autoescape=True))
    if older_than is not None:
        if not isinstance(older_than, dt.datetime) or older_than.tzinfo is None:
            raise ValueError(f"older_than must be a timezone-aware datetime, got {older_than!r}")
        clauses.append(ENTRIES.c.created_at < older_than)
    return clauses


def delete_returning(conn: Connection, where: ColumnElement[bool]) -> list[int]:
    """Delete matching entries and their document links; returns the deleted ids."""
    deleted = sorted(conn.execute(delete(ENTRIES).where(where).returning(ENTRIES.c.id)).scalars())
    # The foreign-key cascade removes the links; this also covers SQLite engines without it.
    for chunk in chunks(deleted):
        conn.execute(delete(DOCS).where(DOCS.c.entry_id.in_(chunk)))
    return deleted


def doc_keys_for(conn: Connection, ids: list[int]) -> dict[int, tuple[str, ...]]:
    """The document keys linked to each of ``ids`` (ids without links are absent)."""
    found: dict[int, list[str]] = {}
    for chunk in chunks(ids):
        query = (
            select(DOCS.c.entry_id, DOCS.c.doc_key)
            .where(DOCS.c.entry_id.in_(chunk))
            .order_by(DOCS.c.entry_id, DOCS.c.doc_key)
        )
        for entry_id, doc_key in conn.execute(query):
            found.setdefault(entry_id, []).append(doc_key)
    return {entry_id: tuple(keys) for entry_id, keys in found.items()}
