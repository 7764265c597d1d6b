"""Initial schema: entries, entry_documents, category_policies, stats, meta.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "entries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("params_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("partition", sa.String(64), nullable=False),
        sa.Column("exact_key", sa.String(64), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("prompt_norm", sa.Text(), nullable=False),
        sa.Column("prompt_hash", sa.String(64), nullable=False),
        sa.Column("context_hash", sa.String(64), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("history_embedding", sa.LargeBinary(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("embedder", sa.String(255), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cost", sa.Float(), nullable=False, server_default="0"),
        sa.Column("latency_ms", sa.Float(), nullable=False, server_default="0"),
        _ts("created_at", nullable=False),
        _ts("expires_at"),
        sa.Column("hit_count", sa.Integer(), nullable=False, server_default="0"),
        _ts("last_hit_at"),
        sa.Column("tokens_saved", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cost_saved", sa.Float(), nullable=False, server_default="0"),
        sa.Column("latency_saved_ms", sa.Float(), nullable=False, server_default="0"),
        sa.Column("wrong_reports", sa.Integer(), nullable=False, server_default="0"),
        # Ids are never reused, so a derived index can never confuse two entries.
        sqlite_autoincrement=True,
    )
    for column in ("tenant", "partition", "exact_key", "category", "expires_at"):
        op.create_index(f"ix_entries_{column}", "entries", [column])

    op.create_table(
        "entry_documents",
        sa.Column(
            "entry_id",
            sa.Integer(),
            sa.ForeignKey("entries.id", ondelete="CASCADE", name="fk_entry_documents_entry_id"),
            primary_key=True,
        ),
        sa.Column("doc_key", sa.String(512), primary_key=True),
    )
    op.create_index("ix_entry_documents_doc_key", "entry_documents", ["doc_key"])

    op.create_table(
        "category_policies",
        sa.Column("category", sa.String(64), primary_key=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("ttl_seconds", sa.Integer(), nullable=True),
        sa.Column("max_entries", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=True),
        sa.Column("personal", sa.Boolean(), nullable=True),
        sa.Column("set_fields", sa.JSON(), nullable=False),
        _ts("updated_at", nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
    )

    op.create_table(
        "stats",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("tenant", sa.String(255), primary_key=True),
        sa.Column("category", sa.String(64), primary_key=True),
        sa.Column("lookups", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("exact_hits", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("semantic_hits", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("misses", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("stores", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("tokens_saved", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cost_saved", sa.Float(), nullable=False, server_default="0"),
        sa.Column("latency_saved_ms", sa.Float(), nullable=False, server_default="0"),
    )

    op.create_table(
        "meta",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("meta")
    op.drop_table("stats")
    op.drop_table("category_policies")
    op.drop_index("ix_entry_documents_doc_key", table_name="entry_documents")
    op.drop_table("entry_documents")
    for column in ("expires_at", "category", "exact_key", "partition", "tenant"):
        op.drop_index(f"ix_entries_{column}", table_name="entries")
    op.drop_table("entries")
