"""seen chats: the groups, channels and rooms the bot has had updates from (`otklik chats`)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Frozen copies of the column types at this revision.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seen_chats",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("chat", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        # Forum topics seen, {"5": "name"}; never a private chat's anything.
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("first_seen", UTC_DATETIME, nullable=False),
        sa.Column("last_seen", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seen_chats")),
        sa.UniqueConstraint("transport", "chat", name="uq_seen_chats_transport_chat"),
    )


def downgrade() -> None:
    op.drop_table("seen_chats")
