"""approval tiers: each draft keeps the chain fixed at submission and its approvals

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# Drafts before this revision had one tier, the department's approver.
SINGLE_TIER = '["department"]'


def upgrade() -> None:
    with op.batch_alter_table("drafts") as batch:
        batch.add_column(
            sa.Column(
                "tiers", sa.JSON(), nullable=False, server_default=sa.text(f"'{SINGLE_TIER}'")
            )
        )
        batch.add_column(
            sa.Column("approvals", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    # An approved draft that a second person reviewed had its one tier approved then: the
    # invariant "every tier approved" holds for history too. Staff ids and times only.
    drafts = sa.table(
        "drafts",
        sa.column("id", sa.BigInteger()),
        sa.column("approvals", sa.JSON()),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT id, reviewer, reviewed_at FROM drafts WHERE status = 'approved' "
            "AND pre_approved = :no AND reviewer IS NOT NULL"
        ),
        {"no": False},
    ).all()
    for draft_id, reviewer, reviewed_at in rows:
        at = reviewed_at if isinstance(reviewed_at, datetime) else _parse(reviewed_at)
        # SQLite keeps UTC without an offset; PostgreSQL gives it aware.
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        approval = [{"tier": 0, "reviewer": reviewer, "at": at.isoformat()}]
        bind.execute(drafts.update().where(drafts.c.id == draft_id).values(approvals=approval))


def _parse(value: object) -> datetime:
    return datetime.fromisoformat(str(value))


def downgrade() -> None:
    with op.batch_alter_table("drafts") as batch:
        batch.drop_column("approvals")
        batch.drop_column("tiers")
