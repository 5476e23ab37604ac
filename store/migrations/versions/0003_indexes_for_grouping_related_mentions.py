"""indexes for grouping related mentions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.create_index("ix_mentions_reply_to_url", ["reply_to_url"], unique=False)
        batch_op.create_index("ix_mentions_story", ["story_id"], unique=False)
        batch_op.create_index("ix_mentions_url", ["url"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.drop_index("ix_mentions_url")
        batch_op.drop_index("ix_mentions_story")
        batch_op.drop_index("ix_mentions_reply_to_url")
