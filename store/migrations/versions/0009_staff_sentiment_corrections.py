"""mentions record who corrected their sentiment and when (staff corrections)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sentiment_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("sentiment_at", UTC_DATETIME, nullable=True))
        batch_op.create_index("ix_mentions_sentiment_at", ["sentiment_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.drop_index("ix_mentions_sentiment_at")
        batch_op.drop_column("sentiment_at")
        batch_op.drop_column("sentiment_by")
