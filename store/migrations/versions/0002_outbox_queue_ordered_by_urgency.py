"""outbox queue ordered by urgency

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_queue"))
        batch_op.create_index(
            "ix_outbox_queue", ["status", "transport", "chat", "urgency", "id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_queue")
        batch_op.create_index(
            batch_op.f("ix_outbox_queue"), ["status", "transport", "chat", "id"], unique=False
        )
