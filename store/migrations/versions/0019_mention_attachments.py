"""mention attachments: photos and files that came with a mention, described, encrypted

Revision ID: 0019
Revises: 0016
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A JSON list of {kind, ref, name, mime, size, caption}, encrypted as one text (file names
    # and captions are the citizen's words); NULL when nothing came with the mention.
    with op.batch_alter_table("mentions") as batch_op:
        batch_op.add_column(sa.Column("attachments", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mentions") as batch_op:
        batch_op.drop_column("attachments")
