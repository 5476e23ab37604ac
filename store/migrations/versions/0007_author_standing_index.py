"""an author's mentions index carries what their standing is computed from

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Labels come from an author's recent negative count and highest reach (store/repos/authors.py,
# _STANDING): with sentiment and reach in the index, that query never reads the table.
WIDE = ("author_id", "received_at", "sentiment", "reach")
NARROW = ("author_id", "received_at")


def upgrade() -> None:
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.drop_index("ix_mentions_author_received")
        batch_op.create_index("ix_mentions_author_received", list(WIDE), unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.drop_index("ix_mentions_author_received")
        batch_op.create_index("ix_mentions_author_received", list(NARROW), unique=False)
