"""crisis drills: a drill_runs table, and cases remember the run that opened them

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Frozen copies of the column types at this revision.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drill_runs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("scenario", sa.String(length=64), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.Column("started_by", sa.String(length=128), nullable=False),
        sa.Column("ended_by", sa.String(length=128), nullable=True),
        # A drill hour passes in this many real minutes: the time compression.
        sa.Column("hour_in_minutes", sa.Float(), nullable=False),
        # Timeline mentions already handed to intake: the running app's job resumes here.
        sa.Column("injected", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drill_runs")),
    )
    with op.batch_alter_table("drill_runs", schema=None) as batch_op:
        batch_op.create_index("ix_drill_runs_scenario", ["scenario"], unique=False)
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("drill_run_id", BIG_ID, nullable=True))
        batch_op.create_index("ix_cases_drill_run_id", ["drill_run_id"], unique=False)
        batch_op.create_foreign_key(
            op.f("fk_cases_drill_run_id_drill_runs"), "drill_runs", ["drill_run_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_cases_drill_run_id_drill_runs"), type_="foreignkey")
        batch_op.drop_index("ix_cases_drill_run_id")
        batch_op.drop_column("drill_run_id")
    with op.batch_alter_table("drill_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_drill_runs_scenario")
    op.drop_table("drill_runs")
