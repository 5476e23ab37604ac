"""mention bands newest first: the band look-up index ends with the row id, so that the
newest few mentions of a band are found by walking back from its end instead of ranking all
of them (a storm's bands are shared by thousands; repos/links.py similar_open)

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Indexes only: the previous release's look-up (department, band_hash) uses the new
    # index's first columns, so it runs beside this one unchanged. The rows are the grouping
    # window's only (hours), so building it is quick.
    op.create_index("ix_mention_bands_newest", "mention_bands", ["department", "band_hash", "id"])
    op.drop_index("ix_mention_bands_lookup", table_name="mention_bands")


def downgrade() -> None:
    op.create_index("ix_mention_bands_lookup", "mention_bands", ["department", "band_hash"])
    op.drop_index("ix_mention_bands_newest", table_name="mention_bands")
