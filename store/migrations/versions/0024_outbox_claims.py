"""outbox claims: who is sending an item and until when the claim holds (several instances
on one PostgreSQL database; an expired claim is taken over by another instance)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Frozen copies of the column types at this revision.
UTC_DATETIME = sa.DateTime(timezone=True)

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Items `sending` from before the upgrade get no owner and no lease: recovery treats
    # them as expired, which is what they are (the process that claimed them is gone).
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("lease_until", UTC_DATETIME, nullable=True))
    # `sending` by lease: recovery's expired claims, and the claim's check for a live claim
    # of another instance in the chat (PostgreSQL plans it as an anti-join over this index).
    op.create_index("ix_outbox_lease", "outbox", ["status", "lease_until"])


def downgrade() -> None:
    op.drop_index("ix_outbox_lease", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("claimed_by")
