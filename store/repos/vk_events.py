"""Callback API events of the VK community page (handlers/vk): stored once by VK's event id,
taken in after VK has had its "ok", then emptied of their content."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.driver import conflict_insert, rowcount
from store.models import VkEventRow


@dataclass(frozen=True, slots=True)
class WaitingVkEvent:
    id: int
    event_id: str
    group_id: int
    type: str
    body: Any  # the event's "object", as VK sent it
    received_at: datetime


class SqlVkEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, event_id: str, group_id: int, type_: str, body: Any, now: datetime) -> bool:
        """Store the event; False when an event with this id is already stored (VK's retry,
        or a replay)."""
        statement = (
            conflict_insert(self._s, VkEventRow)
            .values(
                event_id=event_id,
                group_id=group_id,
                type=type_,
                body=body,
                received_at=now,
                done_at=None,
            )
            .on_conflict_do_nothing(index_elements=["event_id"])
        )
        return rowcount(await self._s.execute(statement)) == 1

    async def waiting(self, limit: int) -> list[WaitingVkEvent]:
        """Events not yet taken in, oldest first."""
        rows = await self._s.scalars(
            select(VkEventRow)
            .where(VkEventRow.done_at.is_(None))
            .order_by(VkEventRow.id)
            .limit(limit)
        )
        return [
            WaitingVkEvent(r.id, r.event_id, r.group_id, r.type, r.body, r.received_at)
            for r in rows
        ]

    async def done(self, row_ids: Sequence[int], now: datetime) -> None:
        """Taken in: the content goes (it lives on in the mention, sealed and erasable there);
        the event id stays, so a later retry is still recognised. One statement a batch."""
        if not row_ids:
            return
        await self._s.execute(
            update(VkEventRow)
            .where(VkEventRow.id.in_(list(row_ids)), VkEventRow.done_at.is_(None))
            .values(done_at=now, body=None)
        )
