"""send slots: the flood-limit windows every instance shares (per chat, per group, per bot),
the latest send times of each, so that several instances together keep Telegram's limits

Revision ID: 0026
Revises: 0023
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Frozen copy of the column type at this revision (store/models.py, SendTimes).
SEND_TIMES = sa.ARRAY(sa.DateTime(timezone=True)).with_variant(sa.JSON(), "sqlite")

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new table only: code of the previous release runs beside it unchanged.
    op.create_table(
        "send_slots",
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("sent", SEND_TIMES, nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_send_slots")),
    )


def downgrade() -> None:
    op.drop_table("send_slots")
