"""The store's admin-side tables: category policy overrides, daily statistics, meta.

``AdminTables`` is mixed into :class:`semcache.storage.store.Store`; it needs only the
store's engine. Upserts use ``INSERT ... ON CONFLICT`` on both SQLite and
PostgreSQL, so concurrent writers never lose an increment.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from semcache.storage.bounds import MAX_INT32
from semcache.storage.changelog import record_change
from semcache.storage.engine import write_transaction
from semcache.storage.schema import CategoryPolicy, DailyStats, Meta, utcnow

POLICIES: Table = CategoryPolicy.__table__  # type: ignore[assignment]
STATS: Table = DailyStats.__table__  # type: ignore[assignment]
META: Table = Meta.__table__  # type: ignore[assignment]
POLICY_FIELDS = ("threshold", "ttl_seconds", "max_entries", "enabled", "personal")
STAT_COUNTERS = ("lookups", "exact_hits", "semantic_hits", "misses", "stores", "tokens_saved")
STAT_AMOUNTS = ("cost_saved", "latency_saved_ms")


def upsert(
    conn: Connection, table: Table, values: dict[str, Any], keys: list[str], updates: dict[str, Any]
) -> None:
    """Insert ``values``, or on a key conflict apply ``updates`` (which may use ``excluded``)."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).values(**values)
    set_ = {name: (upd(stmt.excluded) if callable(upd) else upd) for name, upd in updates.items()}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=set_))


def _check_policy_field(name: str, value: Any) -> Any:
    if name == "threshold":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value <= 1.0:
            raise ValueError(f"threshold must be a number in (0, 1], got {value!r}")
        return float(value)
    if name in ("ttl_seconds", "max_entries"):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT32:
            raise ValueError(f"{name} must be an int in [1, {MAX_INT32}] or None (no limit), got {value!r}")
        return value
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return value


class AdminTables:
    """Policy overrides, statistics and meta values (mixed into ``Store``)."""

    _engine: Engine
    origin: str

    # -- category policy overrides -------------------------------------------------
    def get_policy_overrides(self, *, with_meta: bool = False) -> dict[str, dict[str, Any]]:
        """Overridden fields per category; ``with_meta`` adds ``updated_at``/``updated_by``."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(POLICIES).order_by(POLICIES.c.category)).mappings().all()
        result: dict[str, dict[str, Any]] = {}
        for row in rows:
            fields = {name: row[name] for name in POLICY_FIELDS if name in row["set_fields"]}
            if with_meta:
                fields.update(updated_at=row["updated_at"], updated_by=row["updated_by"])
            result[row["category"]] = fields
        return result

    def set_policy_override(
        self, category: str, *, updated_by: str = "api", **fields: Any
    ) -> dict[str, Any]:
        """Override some of a category's policy fields; returns all its overridden fields.

        Fields: ``threshold`` (0, 1], ``ttl_seconds`` and ``max_entries`` (positive
        int, or ``None`` for no limit), ``enabled`` and ``personal`` (bool).
        """
        if not isinstance(category, str) or not category.strip():
            raise ValueError(f"category must be a non-empty string, got {category!r}")
        if not isinstance(updated_by, str) or not updated_by.strip():
            raise ValueError(f"updated_by must be a non-empty string, got {updated_by!r}")
        unknown = sorted(set(fields) - set(POLICY_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown policy fields {unknown}; expected some of {list(POLICY_FIELDS)}"
            )
        if not fields:
            raise ValueError(f"no policy fields given; expected some of {list(POLICY_FIELDS)}")
        checked = {name: _check_policy_field(name, value) for name, value in fields.items()}
        with write_transaction(self._engine) as conn:
            query = select(POLICIES).where(POLICIES.c.category == category)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            current = conn.execute(query).mappings().first()
            values = {name: None for name in POLICY_FIELDS}
            set_fields: set[str] = set()
            if current is not None:
                values.update({name: current[name] for name in POLICY_FIELDS})
                set_fields.update(current["set_fields"])
            values.update(checked)
            set_fields.update(checked)
            row = {
                **values,
                "category": category,
                "set_fields": sorted(set_fields),
                "updated_at": utcnow(),
                "updated_by": updated_by,
            }
            upsert(
                conn, POLICIES, row, ["category"], {k: v for k, v in row.items() if k != "category"}
            )
            record_change(conn, "policy", {"category": category}, self.origin)
        return {name: values[name] for name in POLICY_FIELDS if name in set_fields}

    def delete_policy_override(self, category: str) -> bool:
        """Drop a category's overrides (the policy file applies again); True if one existed."""
        with write_transaction(self._engine) as conn:
            result = conn.execute(delete(POLICIES).where(POLICIES.c.category == category))
            if result.rowcount:
                record_change(conn, "policy", {"category": category}, self.origin)
            return bool(result.rowcount)

    # -- statistics -------------------------------------------------------------
    def bump_stats(
        self,
        tenant: str,
        category: str,
        *,
        lookups: int = 0,
        exact_hits: int = 0,
        semantic_hits: int = 0,
        misses: int = 0,
        stores: int = 0,
        tokens_saved: int = 0,
        cost_saved: float = 0.0,
        latency_saved_ms: float = 0.0,
        day: dt.date | None = None,
    ) -> None:
        """Add to the counters of (day, tenant, category); day defaults to today (UTC)."""
        if (
            not isinstance(tenant, str)
            or not tenant
            or not isinstance(category, str)
            or not category
        ):
            raise ValueError(
                f"tenant and category must be non-empty strings, got {tenant!r}, {category!r}"
            )
        counts = dict(
            lookups=lookups,
            exact_hits=exact_hits,
            semantic_hits=semantic_hits,
            misses=misses,
            stores=stores,
            tokens_saved=tokens_saved,
        )
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        amounts = dict(cost_saved=cost_saved, latency_saved_ms=latency_saved_ms)
        for name, amount in amounts.items():
            if not isinstance(amount, int | float) or not math.isfinite(amount) or amount < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {amount!r}")
        if day is None:
            day = utcnow().date()
        elif not isinstance(day, dt.date) or isinstance(day, dt.datetime):
            raise ValueError(f"day must be a datetime.date, got {day!r}")
        values = {
            "day": day,
            "tenant": tenant,
            "category": category,
            **counts,
            **{k: float(v) for k, v in amounts.items()},
        }
        updates = {
            name: (lambda ex, n=name: STATS.c[n] + ex[n])
            for name in (*STAT_COUNTERS, *STAT_AMOUNTS)
        }
        with write_transaction(self._engine) as conn:
            upsert(conn, STATS, values, ["day", "tenant", "category"], updates)

    def stats_summary(self, tenant: str | None = None) -> dict[str, Any]:
        """Totals, per-category and per-day sums (optionally for one tenant), with hit rates."""
        sums = [
            func.coalesce(func.sum(STATS.c[n]), 0).label(n) for n in (*STAT_COUNTERS, *STAT_AMOUNTS)
        ]
        where = [] if tenant is None else [STATS.c.tenant == tenant]
        with self._engine.connect() as conn:
            totals = conn.execute(select(*sums).where(*where)).mappings().one()
            by_cat = (
                conn.execute(
                    select(STATS.c.category, *sums).where(*where).group_by(STATS.c.category)
                )
                .mappings()
                .all()
            )
            by_day = (
                conn.execute(
                    select(STATS.c.day, *sums)
                    .where(*where)
                    .group_by(STATS.c.day)
                    .order_by(STATS.c.day)
                )
                .mappings()
                .all()
            )
        return {
            "tenant": tenant,
            "totals": _with_rate(totals),
            "by_category": {r["category"]: _with_rate(r) for r in by_cat},
            "by_day": {r["day"].isoformat(): _with_rate(r) for r in by_day},
        }

    # -- meta -------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """The stored value of ``key``, or ``default``."""
        with self._engine.connect() as conn:
            value = conn.execute(select(META.c.value).where(META.c.key == key)).scalar_one_or_none()
        return default if value is None else value

    def set_meta(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (replacing any earlier value)."""
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise ValueError(
                f"meta key must be a non-empty str and value a str, got {key!r}={value!r}"
            )
        with write_transaction(self._engine) as conn:
            upsert(conn, META, {"key": key, "value": value}, ["key"], {"value": value})


def _with_rate(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {n: int(row[n]) for n in STAT_COUNTERS}
    out.update({n: float(row[n]) for n in STAT_AMOUNTS})
    hits = out["exact_hits"] + out["semantic_hits"]
    out["hit_rate"] = hits / out["lookups"] if out["lookups"] else 0.0
    return out
