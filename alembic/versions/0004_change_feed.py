"""The change feed: a durable change log that replicas follow, and single-flight leases.

``change_log`` gets one row per committed change (entry inserts and deletes,
policy edits, key revocations), written in the same transaction as the change.
``flight_leases`` holds short-lived leases that let one replica call the
upstream for a question while the others wait for its answer.

Revision ID: 0004_change_feed
Revises: 0003_admin_audit
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_change_feed"
down_revision: str | Sequence[str] | None = "0003_admin_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_log",
        # BIGINT on PostgreSQL; SQLite autoincrements only an INTEGER primary key.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("origin", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_change_log_at", "change_log", ["at"])
    op.create_table(
        "flight_leases",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("flight_leases")
    op.drop_index("ix_change_log_at", table_name="change_log")
    op.drop_table("change_log")
