"""indexes for digests

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Each digest figure reads one period of one of these moments (store/queries/reports.py).
CASE_INDEXES = (
    ("ix_cases_created", "created_at"),
    ("ix_cases_first_touch_due", "first_touch_due_at"),
    ("ix_cases_answer_due", "answer_due_at"),
    ("ix_cases_first_touched", "first_touched_at"),
    ("ix_cases_approved", "approved_at"),
    ("ix_cases_published", "published_at"),
    ("ix_cases_closed", "closed_at"),
)


# Frozen copies of the column types at this revision (the blobs table).
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Pictures the outbox sends (digest charts), by sha256.
    op.create_table(
        "blobs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("mimetype", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blobs")),
        sa.UniqueConstraint("sha256", name=op.f("uq_blobs_sha256")),
    )

    with op.batch_alter_table("cases", schema=None) as batch_op:
        for name, column in CASE_INDEXES:
            batch_op.create_index(name, [column], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("cases", schema=None) as batch_op:
        for name, _ in reversed(CASE_INDEXES):
            batch_op.drop_index(name)
    op.drop_table("blobs")
