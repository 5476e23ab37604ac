"""Which message a transport gave each thing we sent (a card, a digest), per chat."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.driver import conflict_insert
from store.models import MessageRefRow

_REFS = cast(Table, MessageRefRow.__table__)


class SqlMessageRefRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, transport: str, chat: str, ref_key: str) -> str | None:
        # Read afresh: put() writes past the session's identity map.
        row = await self._s.get(MessageRefRow, (transport, chat, ref_key), populate_existing=True)
        return row.external_id if row else None

    async def put(self, transport: str, chat: str, ref_key: str, external_id: str) -> None:
        await self.put_many([(transport, chat, ref_key, external_id)])

    async def put_many(self, refs: Sequence[tuple[str, str, str, str]]) -> None:
        # One upsert in Core: merge() read the row first and flushed through the unit of work,
        # for every card delivered.
        latest = {(t, c, key): external_id for t, c, key, external_id in refs}
        if not latest:
            return
        statement = conflict_insert(self._s, _REFS)
        statement = statement.on_conflict_do_update(
            index_elements=[_REFS.c.transport, _REFS.c.chat, _REFS.c.ref_key],
            set_={"external_id": statement.excluded.external_id},
        )
        await self._s.flush()  # what the session holds goes first, as merge's flush did
        connection = await self._s.connection()
        await connection.execute(
            statement,
            [
                {"transport": t, "chat": c, "ref_key": key, "external_id": external_id}
                for (t, c, key), external_id in latest.items()
            ],
        )

    async def find(self, transport: str, chat: str, external_id: str) -> str | None:
        ref_key: str | None = await self._s.scalar(
            select(MessageRefRow.ref_key).where(
                MessageRefRow.transport == transport,
                MessageRefRow.chat == chat,
                MessageRefRow.external_id == external_id,
            )
        )
        return ref_key
