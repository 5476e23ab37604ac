"""The case history: events appended, never changed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.model import Event
from store.driver import insert_rows
from store.mappers import EVENT_COLUMNS, event_from_row, event_rows
from store.models import EventRow

_EVENTS = cast(Table, EventRow.__table__)


class SqlEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def append(self, events: Sequence[Event]) -> None:
        if not events:
            return
        # Straight to the driver: the ORM's unit of work costs ~0.5 ms a row, Core's
        # parameter processing a tenth of that, and nobody needs the new rows' ids (the SLA
        # clock appends hundreds per transaction).
        await insert_rows(self._s, _EVENTS, EVENT_COLUMNS, event_rows(events))

    async def for_case(self, case_id: int) -> list[Event]:
        rows = await self._s.scalars(
            select(EventRow).where(EventRow.case_id == case_id).order_by(EventRow.id)
        )
        return [event_from_row(row) for row in rows]

    async def of_kind(self, kind: str, since: datetime | None = None) -> list[Event]:
        # No index on kind: the kinds asked for (reroutes, for retraining) are read rarely.
        query = select(EventRow).where(EventRow.kind == kind)
        if since is not None:
            query = query.where(EventRow.at >= since)
        rows = await self._s.scalars(query.order_by(EventRow.id))
        return [event_from_row(row) for row in rows]
