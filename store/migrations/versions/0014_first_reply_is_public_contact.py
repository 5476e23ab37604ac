"""first reply = the first contact the author sees: cases.reacted_at keeps the first press
(the old first_touched_at), cases.reaction_due_at holds the optional reaction deadline, and
first_touched_at is recomputed from each case's events

Until now any press, Take included, set first_touched_at. Here it becomes the first event
the author saw (bot.cases.lifecycle.reaches_author: publish, mark_published, follow_up_done,
wait_for_author, a close saying the author was told), for every case: the
events are the history, so the reports (which read the column) follow the new definition for
closed cases too. Open cases that were only taken wait for a first reply again; planning their
timers needs the playbook and its calendars, which a migration has not, so their ids go to the
`kv` row REPLAN_KEY and the bot re-plans them at start (bot/sla/service.py, replan_marked).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from store.models import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

REPLAN_KEY = "sla.replan"  # bot.sla.service.REPLAN_KEY reads it
_OPEN = ("new", "taken", "awaiting_approval", "changes_requested", "approved", "published")
# Frozen copy of bot.cases.lifecycle.reaches_author at this revision, over stored events.
_ALWAYS = ("publish", "mark_published", "follow_up_done", "wait_for_author")
_TOLD = ("resolved", "answered", "moved_to_private", "refuted")

_cases = sa.table(
    "cases",
    sa.column("id", sa.BigInteger()),
    sa.column("state", sa.String()),
    sa.column("first_touched_at", UTCDateTime()),
    sa.column("reacted_at", UTCDateTime()),
)
_events = sa.table(
    "events",
    sa.column("case_id", sa.BigInteger()),
    sa.column("at", UTCDateTime()),
    sa.column("kind", sa.String()),
    sa.column("payload", sa.JSON()),
)
_kv = sa.table("kv", sa.column("key", sa.String()), sa.column("value", sa.Text()))


def _reaches_author(kind: str, payload: dict[str, Any] | None) -> bool:
    payload = payload or {}  # erasure may have redacted it: then only the kind tells
    if kind in _ALWAYS:
        return True
    if kind == "close":
        return payload.get("outcome") in _TOLD
    return False


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reaction_due_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("reacted_at", UTCDateTime(), nullable=True))
    bind = op.get_bind()
    bind.execute(sa.update(_cases).values(reacted_at=_cases.c.first_touched_at))

    first: dict[int, datetime] = {}
    rows = bind.execute(
        sa.select(_events.c.case_id, _events.c.at, _events.c.kind, _events.c.payload).where(
            _events.c.case_id.is_not(None),
            _events.c.kind.in_((*_ALWAYS, "close")),
        )
    )
    for case_id, at, kind, payload in rows:
        if _reaches_author(kind, payload) and (case_id not in first or at < first[case_id]):
            first[case_id] = at

    before = {
        case_id: (state, touched)
        for case_id, state, touched in bind.execute(
            sa.select(_cases.c.id, _cases.c.state, _cases.c.first_touched_at)
        )
    }
    changed = [
        {"case_id": case_id, "moment": first.get(case_id)}
        for case_id, (_, touched) in before.items()
        if touched != first.get(case_id)
    ]
    if changed:
        bind.execute(
            sa.update(_cases)
            .where(_cases.c.id == sa.bindparam("case_id"))
            .values(first_touched_at=sa.bindparam("moment")),
            changed,
        )
    # Open cases whose first reply is pending again: their timers are re-planned at start.
    replan = sorted(
        case_id
        for case_id, (state, touched) in before.items()
        if state in _OPEN and touched is not None and first.get(case_id) is None
    )
    if replan:
        bind.execute(sa.delete(_kv).where(_kv.c.key == REPLAN_KEY))
        bind.execute(sa.insert(_kv).values(key=REPLAN_KEY, value=json.dumps(replan)))


def downgrade() -> None:
    # The old meaning back: the first press met the first touch.
    bind = op.get_bind()
    bind.execute(sa.update(_cases).values(first_touched_at=_cases.c.reacted_at))
    bind.execute(sa.delete(_kv).where(_kv.c.key == REPLAN_KEY))
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("reacted_at")
        batch_op.drop_column("reaction_due_at")
