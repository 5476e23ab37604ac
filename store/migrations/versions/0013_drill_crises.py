"""drill crises: a crisis opened by a drill remembers its run (crises.drill_run_id)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Frozen copy of the column type at this revision.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crises", schema=None) as batch_op:
        batch_op.add_column(sa.Column("drill_run_id", BIG_ID, nullable=True))
        batch_op.create_index("ix_crises_drill_run_id", ["drill_run_id"], unique=False)
        batch_op.create_foreign_key(
            op.f("fk_crises_drill_run_id_drill_runs"), "drill_runs", ["drill_run_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("crises", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_crises_drill_run_id_drill_runs"), type_="foreignkey")
        batch_op.drop_index("ix_crises_drill_run_id")
        batch_op.drop_column("drill_run_id")
