"""a case's answer as it goes out to every mention of a cluster: bot replies queued and
delivered, mentions waiting for a person to answer by hand, those marked, and the newest
mention id the mark covered

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_COLUMNS = ("answer_targets", "answers_delivered", "hand_due", "hand_published")


def upgrade() -> None:
    # Zero for every case published before: no progress line, nothing waits by hand.
    with op.batch_alter_table("cases") as batch:
        for column in _COLUMNS:
            batch.add_column(sa.Column(column, sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("hand_marked_upto", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        for column in (*_COLUMNS, "hand_marked_upto"):
            batch.drop_column(column)
