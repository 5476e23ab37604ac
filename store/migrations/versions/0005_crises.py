"""crises

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Frozen copies of the column types at this revision.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crises",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("threshold_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=True),
        sa.Column("opened_at", UTC_DATETIME, nullable=False),
        sa.Column("count_at_open", sa.Integer(), nullable=False),
        sa.Column("limit", sa.Float(), nullable=False),
        sa.Column("peak_count", sa.Integer(), nullable=False),
        sa.Column("peak_at", UTC_DATETIME, nullable=False),
        sa.Column("below_since", UTC_DATETIME, nullable=True),
        sa.Column("closed_at", UTC_DATETIME, nullable=True),
        sa.Column("drill", sa.Boolean(), nullable=False),
        # [{"at": ISO time, "event": opened|peak|below|above|closed, "count": n}], oldest first
        sa.Column("timeline", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crises")),
    )
    with op.batch_alter_table("crises", schema=None) as batch_op:
        batch_op.create_index("ix_crises_opened", ["opened_at"], unique=False)
        # The evaluation job reads the open crises every half minute.
        batch_op.create_index("ix_crises_closed", ["closed_at"], unique=False)
    # Crisis mode counts negative mentions per sliding window, every half minute and more.
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mentions_negative_window",
            ["sentiment", "received_at", "case_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.drop_index("ix_mentions_negative_window")
    with op.batch_alter_table("crises", schema=None) as batch_op:
        batch_op.drop_index("ix_crises_closed")
        batch_op.drop_index("ix_crises_opened")
    op.drop_table("crises")
