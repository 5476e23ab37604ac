"""a draft knows what it is to the public thread (answer, follow-up, correction) and when it
went public, and whether the bot posted it (its reply can then be edited by a correction)

Drafts published before this revision get both from their case's publish events (the event
names the draft version): a correction of an old answer finds the bot's reply to edit.

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-05
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from store.models import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_events = sa.table(
    "events",
    sa.column("case_id", sa.BigInteger()),
    sa.column("at", UTCDateTime()),
    sa.column("kind", sa.String()),
    sa.column("payload", sa.JSON()),
)
_drafts = sa.table(
    "drafts",
    sa.column("case_id", sa.BigInteger()),
    sa.column("version", sa.Integer()),
    sa.column("published_at", UTCDateTime()),
    sa.column("published_by_bot", sa.Boolean()),
)


def upgrade() -> None:
    with op.batch_alter_table("drafts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="answer")
        )
        batch_op.add_column(sa.Column("published_at", UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("published_by_bot", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    connection = op.get_bind()
    published = connection.execute(
        sa.select(_events.c.case_id, _events.c.at, _events.c.kind, _events.c.payload)
        .where(_events.c.kind.in_(("publish", "mark_published")))
        .order_by(_events.c.at)
    )
    for case_id, at, kind, payload in published:
        version = _version(payload)
        if case_id is None or version is None:  # erasure may have redacted the payload
            continue
        by_bot = kind == "publish" and (payload or {}).get("note") != "simulated"
        connection.execute(
            _drafts.update()
            .where(_drafts.c.case_id == case_id, _drafts.c.version == version)
            .values(published_at=at, published_by_bot=by_bot)
        )


def _version(payload: Any) -> int | None:
    value = payload.get("version") if isinstance(payload, dict) else None
    return value if isinstance(value, int) else None


def downgrade() -> None:
    with op.batch_alter_table("drafts", schema=None) as batch_op:
        batch_op.drop_column("published_by_bot")
        batch_op.drop_column("published_at")
        batch_op.drop_column("kind")
