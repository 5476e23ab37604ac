"""events: a hash chain over every row, and triggers that refuse UPDATE and DELETE (only
erasure's redaction of a row's personal part passes; see store/audit.py); outbox items
indexed by case, for erasure

Existing rows are chained in id order here, before the triggers exist. A later migration that
rebuilds `events` on SQLite (batch_alter_table copies the table) must create the triggers
again: call `create_triggers()` from this module.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.audit import GENESIS, link_hash, new_nonce, seal_of, trigger_statements
from store.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def create_triggers() -> None:
    for statement in trigger_statements(op.get_bind().dialect.name):
        op.execute(statement)


def drop_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS events_refuse_update")
        op.execute("DROP TRIGGER IF EXISTS events_refuse_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS events_refuse_truncate ON events")
        op.execute("DROP TRIGGER IF EXISTS events_append_only ON events")
        op.execute("DROP FUNCTION IF EXISTS otklik_events_append_only()")


def _chain_existing_rows() -> None:
    events = sa.table(
        "events",
        sa.column("id", sa.BigInteger()),
        sa.column("case_id", sa.BigInteger()),
        sa.column("at", UTCDateTime()),
        sa.column("actor", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("from_state", sa.String()),
        sa.column("to_state", sa.String()),
        sa.column("payload", sa.JSON()),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
        sa.column("seal", sa.String()),
        sa.column("nonce", sa.String()),
    )
    bind = op.get_bind()
    prev, last_id = GENESIS, 0
    while True:
        rows = bind.execute(
            sa.select(events).where(events.c.id > last_id).order_by(events.c.id).limit(1000)
        ).all()
        if not rows:
            return
        updates = []
        for row in rows:
            nonce = new_nonce()
            seal = seal_of(nonce, row.actor, dict(row.payload or {}))
            digest = link_hash(
                prev, row.case_id, row.at, row.kind, row.from_state, row.to_state, seal
            )
            updates.append(
                {"b_id": row.id, "b_prev": prev, "b_hash": digest, "b_seal": seal, "b_nonce": nonce}
            )
            prev, last_id = digest, row.id
        bind.execute(
            events.update()
            .where(events.c.id == sa.bindparam("b_id"))
            .values(
                prev_hash=sa.bindparam("b_prev"),
                hash=sa.bindparam("b_hash"),
                seal=sa.bindparam("b_seal"),
                nonce=sa.bindparam("b_nonce"),
            ),
            updates,
        )


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("seal", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("nonce", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("redacted_by", sa.BigInteger(), nullable=True))
    _chain_existing_rows()
    with op.batch_alter_table("events", schema=None) as batch_op:
        for name in ("prev_hash", "hash", "seal"):
            batch_op.alter_column(name, existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint("uq_events_prev_hash", ["prev_hash"])
    create_triggers()
    op.create_index("ix_outbox_case", "outbox", ["case_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_case", table_name="outbox")
    drop_triggers()
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_events_prev_hash", type_="unique")
        batch_op.drop_column("redacted_by")
        batch_op.drop_column("nonce")
        batch_op.drop_column("seal")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
