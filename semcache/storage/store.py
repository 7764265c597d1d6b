"""The SQL store: source of truth for cached entries, policies and statistics.

The vector index is derived from this store and rebuilt from it
(``iter_entries``). Every write is one transaction that commits before the
method returns; an exception leaves nothing half-written.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, RowMapping, and_, func, insert, select, update
from sqlalchemy.sql import bindparam

from semcache.exceptions import StoreError
from semcache.storage import engine as db
from semcache.storage.admin import AdminTables
from semcache.storage.bounds import MAX_INT32, is_id
from semcache.storage.changelog import prune, record_ids
from semcache.storage.queries import (
    DOCS,
    ENTRIES,
    check_ids,
    check_now,
    chunks,
    delete_returning,
    doc_keys_for,
    entry_filters,
)
from semcache.storage.records import EntryRow, HitDelta, NewEntry, check_vector
from semcache.storage.schema import UTCDateTime, utcnow

__all__ = ["EntryRow", "HitDelta", "NewEntry", "Store"]

_SUPPORTED = ("sqlite", "postgresql")


def _rows(conn: Connection, rows: Sequence[RowMapping]) -> list[EntryRow]:
    keys = doc_keys_for(conn, [row["id"] for row in rows])
    return [EntryRow.from_mapping(row, keys.get(row["id"], ())) for row in rows]


class Store(AdminTables):
    """Entries, document links, policy overrides, statistics and meta in one SQL database.

    ``url_or_engine`` is a database URL (the store creates, and on ``close()``
    disposes, its engine) or an existing :class:`~sqlalchemy.Engine` (left open).
    With ``auto_upgrade`` the schema is migrated to the latest revision first;
    without it, a database that was never migrated raises ``StoreError``.

    Every write that changes entries or policies also appends to the change log
    in its own transaction (``semcache.storage.changelog``), tagged with this store's
    ``origin``; rows older than ``change_retention_s`` are pruned now and then.
    """

    PRUNE_EVERY = 500  # changes written between two prunes of the change log

    def __init__(
        self,
        url_or_engine: str | Engine = "sqlite:///semcache.db",
        *,
        auto_upgrade: bool = True,
        change_retention_s: float = 3600.0,
    ) -> None:
        if isinstance(change_retention_s, bool) or not isinstance(change_retention_s, int | float) \
                or change_retention_s <= 0:
            raise ValueError(f"change_retention_s must be a positive number, got {change_retention_s!r}")
        self.origin = uuid.uuid4().hex[:16]
        self.change_retention_s = float(change_retention_s)
        self._changes_written = 0
        if isinstance(url_or_engine, str):
            self._engine = db.make_engine(url_or_engine)
            self._owns_engine = True
        elif isinstance(url_or_engine, Engine):
            self._engine = url_or_engine
            self._owns_engine = False
        else:
            raise TypeError(
                f"expected a database URL or an Engine, got {type(url_or_engine).__name__}"
            )
        try:
            if self._engine.dialect.name not in _SUPPORTED:
                raise StoreError(
                    f"unsupported database {self._engine.dialect.name!r}; use SQLite or PostgreSQL"
                )
            if auto_upgrade:
                db.upgrade(self._engine)
            elif db.current_revision(self._engine) is None:
                raise StoreError(
                    "the database has no semcache schema; run the migrations (semcache.storage.engine.upgrade)"
                )
        except BaseException:
            self.close()
            raise

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine this store uses."""
        return self._engine

    def _changed(self, count: int = 1) -> None:
        """Called after a commit that logged changes: prune the change log now and then."""
        if count <= 0:
            return
        before = self._changes_written // self.PRUNE_EVERY
        self._changes_written += count
        if self._changes_written // self.PRUNE_EVERY != before:
            self.prune_changes()

    def prune_changes(self) -> int:
        """Delete change-log rows older than ``change_retention_s``; returns how many."""
        cutoff = utcnow() - dt.timedelta(seconds=self.change_retention_s)
        return prune(self._engine, cutoff)

    def close(self) -> None:
        """Dispose the engine if this store created it."""
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing and reading entries ------------------------------------------
    def add_entry(self, rec: NewEntry) -> int:
        """Store one entry and its document links in one transaction; returns its id."""
        if not isinstance(rec, NewEntry):
            raise TypeError(f"add_entry expects a NewEntry, got {type(rec).__name__}")
        rec.validate()
        if isinstance(rec.tokens, int) and rec.tokens > MAX_INT32:  # an Integer column would overflow
            raise ValueError(f"NewEntry.tokens must be at most {MAX_INT32}, got {rec.tokens!r}")
        with db.write_transaction(self._engine) as conn:
            result = conn.execute(insert(ENTRIES).values(**rec.to_row()))
            entry_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            doc_keys = sorted(set(rec.doc_keys))
            if doc_keys:
                conn.execute(insert(DOCS), [{"entry_id": entry_id, "doc_key": k} for k in doc_keys])
            record_ids(conn, "entry.add", [entry_id], self.origin)
        self._changed()
        return entry_id

    def get_entry(self, entry_id: int) -> EntryRow | None:
        """A snapshot of one entry, or None if it does not exist."""
        if not is_id(entry_id):
            return None
        with self._engine.connect() as conn:
            rows = conn.execute(select(ENTRIES).where(ENTRIES.c.id == entry_id)).mappings().all()
            found = _rows(conn, rows)
        return found[0] if found else None

    def get_entries(self, ids: Iterable[int]) -> list[EntryRow]:
        """Snapshots of the entries among ``ids`` that exist, ordered by id."""
        wanted = check_ids(ids)
        found: list[EntryRow] = []
        with self._engine.connect() as conn:
            for chunk in chunks(wanted):
                query = select(ENTRIES).where(ENTRIES.c.id.in_(chunk)).order_by(ENTRIES.c.id)
                found += _rows(conn, conn.execute(query).mappings().all())
        return found

    def get_response(self, entry_id: int) -> Any | None:
        """Only the stored response of one entry (None if the entry does not exist)."""
        if not is_id(entry_id):
            return None
        query = select(ENTRIES.c.response).where(ENTRIES.c.id == entry_id)
        with self._engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    def iter_entries(self, batch_size: int = 1000) -> Iterator[list[EntryRow]]:
        """All entries in batches ordered by id (keyset paging: each batch is one short read)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        last_id = 0
        while True:
            query = (
                select(ENTRIES)
                .where(ENTRIES.c.id > last_id)
                .order_by(ENTRIES.c.id)
                .limit(batch_size)
            )
            with self._engine.connect() as conn:
                batch = _rows(conn, conn.execute(query).mappings().all())
            if not batch:
                return
            yield batch
            last_id = batch[-1].id

    def count_entries(self, **filters: Any) -> int:
        """How many entries match: tenant, category, model, text, older_than, partition."""
        query = select(func.count()).select_from(ENTRIES).where(*entry_filters(**filters))
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def all_ids(self) -> set[int]:
        """The ids of all entries."""
        with self._engine.connect() as conn:
            return set(conn.execute(select(ENTRIES.c.id)).scalars())

    def record_hits(self, hits: Mapping[int, HitDelta]) -> None:
        """Add hit counts and savings to many entries in one transaction (unknown ids skipped)."""
        if not hits:
            return
        now = utcnow()
        params = []
        for entry_id, delta in hits.items():
            if not isinstance(delta, HitDelta):
                raise TypeError(f"record_hits expects HitDelta values, got {type(delta).__name__}")
            params.append(
                {
                    "b_id": entry_id,
                    "b_count": delta.count,
                    "b_tokens": delta.tokens_saved,
                    "b_cost": float(delta.cost_saved),
                    "b_latency": float(delta.latency_saved_ms),
                    "b_at": delta.at or now,
                }
            )
        stmt = (
            update(ENTRIES)
            .where(ENTRIES.c.id == bindparam("b_id"))
            .values(
                hit_count=ENTRIES.c.hit_count + bindparam("b_count"),
                tokens_saved=ENTRIES.c.tokens_saved + bindparam("b_tokens"),
                cost_saved=ENTRIES.c.cost_saved + bindparam("b_cost"),
                latency_saved_ms=ENTRIES.c.latency_saved_ms + bindparam("b_latency"),
                last_hit_at=bindparam("b_at", type_=UTCDateTime()),
            )
        )
        with db.write_transaction(self._engine) as conn:
            conn.execute(stmt, params)

    def update_embeddings(
        self, vectors: Mapping[int, tuple[np.ndarray, np.ndarray | None]], *, embedder: str
    ) -> int:
        """Replace entries' embeddings (and history embeddings) after re-embedding.

        ``vectors`` maps an entry id to ``(embedding, history_embedding or None)``.
        Returns how many entries were updated (unknown ids are skipped).
        """
        if not isinstance(embedder, str) or not embedder:
            raise ValueError(f"embedder must be a non-empty string, got {embedder!r}")
        params = []
        for entry_id, (vector, history_vector) in vectors.items():
            check_vector(f"embedding of entry {entry_id}", vector)
            if history_vector is not None:
                check_vector(f"history embedding of entry {entry_id}", history_vector)
            params.append(
                {
                    "b_id": entry_id,
                    "b_emb": vector.tobytes(),
                    "b_hist": None if history_vector is None else history_vector.tobytes(),
                }
            )
        if not params:
            return 0
        stmt = (
            update(ENTRIES)
            .where(ENTRIES.c.id == bindparam("b_id"))
            .values(
                embedding=bindparam("b_emb"),
                history_embedding=bindparam("b_hist"),
                embedder=embedder,
            )
        )
        with db.write_transaction(self._engine) as conn:
            present = set(
                conn.execute(select(ENTRIES.c.id).where(ENTRIES.c.id.in_(list(vectors)))).scalars()
            )
            params = [p for p in params if p["b_id"] in present]
            if params:
                conn.execute(stmt, params)
        return len(params)

    def report_wrong(self, entry_id: int) -> int:
        """Count one more "wrong answer" report; returns the new count (KeyError if absent)."""
        if not is_id(entry_id):
            raise KeyError(f"no entry with id {entry_id}")
        stmt = (
            update(ENTRIES)
            .where(ENTRIES.c.id == entry_id)
            .values(wrong_reports=ENTRIES.c.wrong_reports + 1)
            .returning(ENTRIES.c.wrong_reports)
        )
        with db.write_transaction(self._engine) as conn:
            count = conn.execute(stmt).scalar_one_or_none()
        if count is None:
            raise KeyError(f"no entry with id {entry_id}")
        return int(count)

    def entry_doc_keys(self, entry_id: int) -> list[str]:
        """The document keys an entry is linked to."""
        if not is_id(entry_id):
            return []
        with self._engine.connect() as conn:
            return list(doc_keys_for(conn, [entry_id]).get(entry_id, ()))

    # -- deleting ---------------------------------------------------------------
    def delete_entries(self, ids: Iterable[int]) -> list[int]:
        """Delete entries by id; returns the ids that existed and were deleted."""
        wanted = check_ids(ids)
        deleted: list[int] = []
        with db.write_transaction(self._engine) as conn:
            for chunk in chunks(wanted):
                deleted += delete_returning(conn, ENTRIES.c.id.in_(chunk))
            record_ids(conn, "entry.delete", sorted(deleted), self.origin)
        self._changed(len(deleted))
        return sorted(deleted)

    def delete_expired(self, now: dt.datetime) -> list[int]:
        """Delete entries whose expiry time has been reached at ``now``."""
        expired = ENTRIES.c.expires_at.is_not(None) & (ENTRIES.c.expires_at <= check_now(now))
        return self._delete(expired)

    def _delete(self, where: Any) -> list[int]:
        """Delete matching entries and log the deletion, in one transaction."""
        with db.write_transaction(self._engine) as conn:
            deleted = delete_returning(conn, where)
            record_ids(conn, "entry.delete", deleted, self.origin)
        self._changed(len(deleted))
        return deleted

    def delete_by_document(self, doc_key: str) -> list[int]:
        """Delete every entry answered from the document ``doc_key``."""
        if not isinstance(doc_key, str) or not doc_key:
            raise ValueError(f"doc_key must be a non-empty string, got {doc_key!r}")
        linked = select(DOCS.c.entry_id).where(DOCS.c.doc_key == doc_key)
        return self._delete(ENTRIES.c.id.in_(linked))

    def delete_where(
        self,
        tenant: str | None = None,
        category: str | None = None,
        model: str | None = None,
        text: str | None = None,
        older_than: dt.datetime | None = None,
        dry_run: bool = False,
    ) -> list[int]:
        """Delete entries matching all given filters; returns their ids.

        ``text`` is a case-insensitive substring of the prompt, ``older_than`` a
        creation-time bound. At least one filter is required. With ``dry_run``
        nothing is deleted and the ids that would be are returned.
        """
        clauses = entry_filters(tenant, category, model, text, older_than)
        if not clauses:
            raise ValueError(
                "delete_where needs at least one of tenant, category, model, text, older_than"
            )
        where = and_(*clauses)
        if dry_run:
            with self._engine.connect() as conn:
                return sorted(conn.execute(select(ENTRIES.c.id).where(where)).scalars())
        return self._delete(where)

    def evict_for_quota(self, category: str, max_entries: int, *, tenant: str | None = None) -> list[int]:
        """Delete the least valuable entries of ``category`` beyond ``max_entries``, counting only
        ``tenant``'s entries when given (so one tenant's stores never evict another's).

        Least valuable: fewest hits, then the oldest last use (last hit, else creation).
        """
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 0:
            raise ValueError(f"max_entries must be an int >= 0, got {max_entries!r}")
        in_category = ENTRIES.c.category == category
        if tenant is not None:
            in_category = and_(in_category, ENTRIES.c.tenant == tenant)
        last_use = func.coalesce(ENTRIES.c.last_hit_at, ENTRIES.c.created_at)
        with db.write_transaction(self._engine) as conn:
            total = conn.execute(select(func.count()).select_from(ENTRIES).where(in_category))
            excess = int(total.scalar_one()) - max_entries
            if excess <= 0:
                return []
            victims = select(ENTRIES.c.id).where(in_category)
            victims = victims.order_by(ENTRIES.c.hit_count, last_use, ENTRIES.c.id).limit(excess)
            ids = list(conn.execute(victims).scalars())
            deleted: list[int] = []
            for chunk in chunks(ids):
                deleted += delete_returning(conn, ENTRIES.c.id.in_(chunk))
            record_ids(conn, "entry.delete", sorted(deleted), self.origin)
        self._changed(len(deleted))
        return sorted(deleted)
