"""telegram updates: updates taken by webhook, by bot and update id, so a delivery Telegram
retries (on any instance) acts once; "processing" until handled, then "done"

Revision ID: 0025
Revises: 0023
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Frozen copies of the column types at this revision.
UTC_DATETIME = sa.DateTime(timezone=True)

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "telegram_updates",
        sa.Column("bot_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("instance", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", UTC_DATETIME, nullable=False),
        sa.Column("done_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("bot_id", "update_id", name=op.f("pk_telegram_updates")),
    )
    op.create_index("ix_telegram_updates_claimed_at", "telegram_updates", ["claimed_at"])


def downgrade() -> None:
    op.drop_index("ix_telegram_updates_claimed_at", table_name="telegram_updates")
    op.drop_table("telegram_updates")
