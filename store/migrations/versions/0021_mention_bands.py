"""mention bands: keyed hashes of MinHash bands of mention texts, for similar-mention grouping;
a case's spread: mentions joined as similar, their people, the last one's time, their sources

Revision ID: 0021
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Frozen copies of the column types at this revision.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(
            sa.Column("similar_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("people_count", sa.Integer(), nullable=False, server_default="1")
        )
        batch.add_column(sa.Column("last_mention_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("sources", sa.JSON(), nullable=False, server_default="[]"))
    op.create_table(
        "mention_bands",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("mention_id", BIG_ID, nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("band_hash", sa.String(length=64), nullable=False),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["mention_id"],
            ["mentions.id"],
            name=op.f("fk_mention_bands_mention_id_mentions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mention_bands")),
    )
    op.create_index(
        "ix_mention_bands_lookup", "mention_bands", ["department", "band_hash"], unique=False
    )
    op.create_index("ix_mention_bands_received", "mention_bands", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_mention_bands_received", table_name="mention_bands")
    op.drop_index("ix_mention_bands_lookup", table_name="mention_bands")
    op.drop_table("mention_bands")
    with op.batch_alter_table("cases") as batch:
        for column in ("sources", "last_mention_at", "people_count", "similar_count"):
            batch.drop_column(column)
