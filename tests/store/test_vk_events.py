"""Callback API events by VK's event id: stored once, sealed while they wait, emptied once
taken in (store/repos/vk_events.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from store.db import Database

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
BODY = {"id": 7, "from_id": 100, "text": "Нет горячей воды третий день"}


async def test_an_event_is_stored_once_sealed_and_emptied_when_done(database: Database) -> None:
    async with database.uow() as uow:
        assert await uow.vk_events.add("e1", 42, "wall_reply_new", BODY, NOW)
        assert not await uow.vk_events.add("e1", 42, "wall_reply_new", BODY, NOW)  # a retry
        assert await uow.vk_events.add("e2", 42, "message_new", {"message": {}}, NOW)
        await uow.commit()
    async with database.uow() as uow:
        waiting = await uow.vk_events.waiting(10)
        raw = (await uow.session.execute(text("SELECT body FROM vk_events"))).scalars().all()
    assert [(e.event_id, e.type, e.body) for e in waiting] == [
        ("e1", "wall_reply_new", BODY),
        ("e2", "message_new", {"message": {}}),
    ]
    assert all("горячей" not in (stored or "") for stored in raw)  # sealed at rest

    async with database.uow() as uow:
        await uow.vk_events.done([waiting[0].id], NOW)
        await uow.commit()
    async with database.uow() as uow:
        assert [e.event_id for e in await uow.vk_events.waiting(10)] == ["e2"]
        # The retry guard outlives the content: the same id is still refused.
        assert not await uow.vk_events.add("e1", 42, "wall_reply_new", BODY, NOW)
        body = await uow.session.scalar(text("SELECT body FROM vk_events WHERE event_id = 'e1'"))
    assert body is None
