"""vk events: Callback API events of the VK community page, by VK's event id (retries act
once); the sealed event object waits there until it has become a mention

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Frozen copies of the column types at this revision.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vk_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("group_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        # Encrypted JSON (the event object) until it is taken in; NULL after.
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        sa.Column("done_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vk_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_vk_events_event_id")),
    )
    op.create_index("ix_vk_events_waiting", "vk_events", ["done_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_vk_events_waiting", table_name="vk_events")
    op.drop_table("vk_events")
