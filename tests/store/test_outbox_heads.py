"""Each chat's head (store/repos/outbox.py due_heads): on PostgreSQL found by probing the
ix_outbox_heads index a chat at a time; it must be what ranking every undelivered row finds."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from bot.messages.outbox import Destination, OutboxOp, OutboxStatus
from bot.messages.views import notice_view
from store.db import Database
from store.mappers import outbox_from_row
from store.models import OutboxRow
from store.repos.outbox import _due_heads

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


async def test_each_chats_head_is_the_same_probed_as_ranked(database: Database) -> None:
    rng = random.Random(21)
    chats = [Destination(t, c) for t in ("telegram", "matrix") for c in ("-1001", "-1002", "!r")]
    items = [
        chat.message(
            OutboxOp.POST,
            notice_view("crisis.opened", count=n),
            f"n{n}",
            NOW - timedelta(seconds=rng.randrange(600)),
            ref=None,
            urgency=rng.choice((0, 0, 1, 2, 3, 11, 100)),
        )
        for n in range(400)
        for chat in [rng.choice(chats)]
    ]
    async with database.uow() as uow:
        assert await uow.outbox.enqueue(items) == len(items)
        await uow.commit()
    async with database.uow() as uow:
        ids = list(await uow.session.scalars(select(OutboxRow.id)))
        # Delivered ones, some in hand (a chat's head in hand holds it), retries not yet due.
        for status, share in ((OutboxStatus.DELIVERED, 0.3), (OutboxStatus.SENDING, 0.02)):
            chosen = rng.sample(ids, int(len(ids) * share))
            ids = [i for i in ids if i not in chosen]
            await uow.session.execute(
                update(OutboxRow).where(OutboxRow.id.in_(chosen)).values(status=status.value)
            )
        later = rng.sample(ids, 40)
        await uow.session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(later))
            .values(next_attempt_at=NOW + timedelta(minutes=5))
        )
        await uow.commit()

    async with database.uow() as uow:
        heads = await uow.outbox.due_heads(NOW, 50)
        ranked = [
            outbox_from_row(row)
            for row in await uow.session.execute(_due_heads(), {"now": NOW, "limit": 50})
        ]
    assert heads  # some chats have a due head, and the rest are held
    assert [(h.id, h.chat, h.urgency) for h in heads] == [(r.id, r.chat, r.urgency) for r in ranked]
