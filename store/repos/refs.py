"""Which message a transport gave each thing we sent (a card, a digest), per chat."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import MessageRefRow


class SqlMessageRefRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, transport: str, chat: str, ref_key: str) -> str | None:
        row = await self._s.get(MessageRefRow, (transport, chat, ref_key))
        return row.external_id if row else None

    async def put(self, transport: str, chat: str, ref_key: str, external_id: str) -> None:
        await self._s.merge(
            MessageRefRow(transport=transport, chat=chat, ref_key=ref_key, external_id=external_id)
        )
        await self._s.flush()

    async def find(self, transport: str, chat: str, external_id: str) -> str | None:
        ref_key: str | None = await self._s.scalar(
            select(MessageRefRow.ref_key).where(
                MessageRefRow.transport == transport,
                MessageRefRow.chat == chat,
                MessageRefRow.external_id == external_id,
            )
        )
        return ref_key
